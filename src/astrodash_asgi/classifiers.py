"""The classifiers a process serves with: the default one, the transformer's and a few for uploaded models.

One :class:`Classifiers` lives in the server process (:class:`~astrodash_asgi.state.AppState`) and one in each
classification worker process (:mod:`astrodash_asgi.workers`); both load the same way, so a request gets the same
answer wherever it is classified.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from astrodash_core.classify import KNOWN_Z, Classifier

USER_MODEL_CACHE = 8


class Classifiers:
    """``get(model_id, model_type)``: the default Classifier, the transformer's (ModelFileError when it is not
    installed) or one for an uploaded model read from ``storage()`` (KeyError when there is no such model), the
    last :data:`USER_MODEL_CACHE` uploaded ones kept.  ``loaded(name, seconds)`` is told of every model load."""

    def __init__(self, default: Classifier, storage: Callable[[], Any],
                 loaded: Callable[[str, float], None] = lambda name, seconds: None):
        self.default = default
        self._storage = storage
        self._loaded = loaded
        self._lock = threading.Lock()
        self._user: OrderedDict[str, Classifier] = OrderedDict()
        self._transformer: Classifier | None = None

    def get(self, model_id: str | None, model_type: str = "dash") -> Classifier:
        if not model_id and model_type == "transformer":
            return self.transformer()
        if not model_id:
            return self.default
        with self._lock:
            if model_id in self._user:
                self._user.move_to_end(model_id)
                return self._user[model_id]
        from astrodash_core.models import Model

        t0 = time.perf_counter()
        model = Model.from_bytes(self._storage().read(model_id), model_id)
        clf = Classifier(model=model) if model.variant == KNOWN_Z else Classifier(agnostic_model=model)
        clf.model_for(model.variant)
        self._loaded("uploaded", time.perf_counter() - t0)
        with self._lock:
            self._user[model_id] = clf
            while len(self._user) > USER_MODEL_CACHE:
                self._user.popitem(last=False)
        return clf

    def transformer(self) -> Classifier:
        """The shipped transformer at the known or estimated redshift (the default models estimate it), loaded
        once; a failed load is not remembered, so installing the file and restarting is all it takes."""
        with self._lock:
            if self._transformer is not None:
                return self._transformer
        from astrodash_core.models import TRANSFORMER

        t0 = time.perf_counter()
        clf = Classifier(model=TRANSFORMER)
        clf.model_for(KNOWN_Z)
        self._loaded(TRANSFORMER, time.perf_counter() - t0)
        with self._lock:
            self._transformer = clf
        return clf

    def forget(self, model_id: str) -> None:
        """Drop an uploaded model's classifier (it was changed or deleted)."""
        with self._lock:
            self._user.pop(model_id, None)


def warm_up(classifier: Classifier) -> None:
    """Touch the whole pipeline once (given and estimated redshift, in a batch large enough for the threaded
    kernels), so the first request compiles and loads nothing.  Best effort: a failure is only logged."""
    import logging

    from astrodash_core.warmup import warm_up_inputs

    try:
        classifier.classify(*warm_up_inputs(), rlap=True)
    except Exception as exc:  # noqa: BLE001 - warm-up is best effort
        logging.getLogger("astrodash.server").warning("warm-up classification failed: %s", exc)
