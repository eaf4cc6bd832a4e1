"""The Classifier: sources in, :class:`Classification` results out, in batches, with models loaded once."""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import interpret, labels
from .errors import AstrodashError, ModelFileError
from .preprocess import PIPELINE_VERSION, PreprocessSettings, preprocess
from .reader_dispatch import read_spectrum
from .redshift import (Z_MAX, Z_MIN, RedshiftEstimate, candidate_rows, estimate_from_rows, estimate_many,
                       estimate_observed, trimmed_network_redshifts)
from .results import Classification
from .spectrum import Spectrum
from .templates import PER_CLASS, TemplateBank
from .variants import Variant

#: Chunks of a batch classified at once: while the caller's thread classifies one chunk, a helper thread
#: classifies the next, so the Python between the compiled kernels (which run without the GIL) overlaps with them
#: and a second core is used.  1: every chunk in the caller's thread.
CHUNK_THREADS: int = min(2, os.cpu_count() or 1)
#: The largest chunk :meth:`Classifier.classify` makes, and the smallest batch it splits in two (smaller batches
#: are one chunk: below this the network's blocks and the correlations lose more to small batches than the second
#: thread gains).
MAX_CHUNK = 512
MIN_SPLIT = 128

KNOWN_Z = Variant.KNOWN_Z
AGNOSTIC = Variant.AGNOSTIC
REDSHIFT = Variant.REDSHIFT


def _source_name(source) -> str:
    """What to call a source in an error: its name, else the file it names, else its type."""
    if isinstance(source, Spectrum):
        return source.name
    if isinstance(source, tuple) and len(source) == 2:
        return str(source[1])
    return _source_file(source) or getattr(source, "name", None) or type(source).__name__


def _source_file(source) -> str | None:
    """The file a source names or was read from (None for arrays and unnamed streams)."""
    if isinstance(source, Spectrum):
        return source.meta.get("source")
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        return str(source)
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
        return source[1]
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


def _read(source) -> Spectrum:
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], (bytes, bytearray)):
        return read_spectrum(bytes(source[0]), filename=source[1])
    return read_spectrum(source)


class Classifier:
    """Classifies spectra with a known-redshift model and a redshift-agnostic one.

    ``model`` (a name, a path or a loaded :class:`~astrodash_core.models.Model`) replaces the default
    known-redshift model; ``agnostic_model`` the default agnostic one; ``redshift_model`` the default redshift
    model (which estimates z when none is given).  Models load on first use, once; a Classifier is cheap to
    call repeatedly and safe to share between threads.
    """

    def __init__(self, model=None, agnostic_model=None, redshift_model=None):
        self._spec: dict[str, Any] = {KNOWN_Z: model, AGNOSTIC: agnostic_model, REDSHIFT: redshift_model}
        self._models: dict = {}
        self._lock = threading.Lock()

    def model_for(self, variant: str):
        """The loaded model used for ``variant`` ("known-z", "agnostic" or "redshift")."""
        with self._lock:
            if variant not in self._models:
                from .models import Model, default_model, load_model

                spec = self._spec[variant]
                if spec is None:
                    model = default_model(variant)
                elif isinstance(spec, Model):
                    model = spec
                else:
                    model = load_model(spec)
                if variant == AGNOSTIC and labels.is_transformer_labels(model.labels):
                    raise ModelFileError(f"model {model.name!r} has type-only classes (no ages): it classifies at a "
                                         "known or estimated redshift, it cannot be the redshift-agnostic model")
                settings = PreprocessSettings.from_dict(model.preprocessing)
                if settings.version != PIPELINE_VERSION:
                    raise ModelFileError(f"model {model.name!r} was trained with preprocessing version "
                                         f"{settings.version}; this astrodash preprocesses with version "
                                         f"{PIPELINE_VERSION}: retrain or use a matching astrodash")
                self._models[variant] = model
            return self._models[variant]

    def classify(self, sources, redshift=None, *, top_n: int = 5, smoothing: int = 0, min_wave=None,
                 max_wave=None, probabilities: bool = False, include_spectrum: bool = False,
                 rlap: bool = True) -> list[Classification]:
        """Classify one source or many; see :func:`astrodash_core.classify`."""
        single = isinstance(sources, (str, Spectrum, bytes)) or hasattr(sources, "__fspath__") or (
            isinstance(sources, np.ndarray) and sources.ndim == 2 and sources.dtype != object)
        if single:
            sources = [sources]
        elif not isinstance(sources, Sequence):
            sources = list(sources)
        return list(self.iter_classify(sources, redshift, top_n=top_n, smoothing=smoothing, min_wave=min_wave,
                                       max_wave=max_wave, probabilities=probabilities,
                                       include_spectrum=include_spectrum, rlap=rlap,
                                       chunk_size=batch_chunk_size(len(sources))))

    def iter_classify(self, sources: Iterable, redshift=None, *, top_n: int = 5, smoothing: int = 0,
                      min_wave=None, max_wave=None, probabilities: bool = False, include_spectrum: bool = False,
                      rlap: bool = True, chunk_size: int = 512) -> Iterator[Classification]:
        """Classify a stream of sources chunk by chunk; memory stays flat however many there are.

        ``redshift`` is None, one number for all, or a sequence aligned with ``sources``.  With
        :data:`CHUNK_THREADS` > 1, chunks go in pairs: the first of a pair on a helper thread, the second in the
        caller's, then both are yielded, in order; a lone chunk (one chunk in all, or the last) runs in the caller's
        thread.  Each chunk is classified as it would be alone, so the results are the same.
        """
        if top_n < 1:
            raise ValueError("top_n must be at least 1")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        z_iter = _redshift_iter(redshift)
        it = iter(sources)

        def chunks():
            while True:
                chunk = list(islice(it, chunk_size))
                if not chunk:
                    return
                yield chunk, [next(z_iter) for _ in chunk]

        def run(chunk, zs):
            return self._classify_chunk(chunk, zs, top_n, smoothing, min_wave, max_wave, probabilities,
                                        include_spectrum, rlap)

        pending = chunks()
        if CHUNK_THREADS < 2:
            for chunk, zs in pending:
                yield from run(chunk, zs)
            return
        helper = None  # started with the first pair of chunks: a batch of one chunk runs in the caller's thread
        try:
            while True:
                first = next(pending, None)
                if first is None:
                    return
                second = next(pending, None)
                if second is None:  # a last chunk alone: nothing to overlap it with
                    yield from run(*first)
                    return
                if helper is None:
                    helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrodash-chunk")
                ahead = helper.submit(run, *first)
                try:
                    mine = run(*second)
                finally:
                    done = ahead.result()
                yield from done
                yield from mine
        finally:
            if helper is not None:
                helper.shutdown(wait=True)

    def redshift_model(self):
        """The redshift model that estimates z when none is given, or None when none is installed."""
        try:
            model = self.model_for(REDSHIFT)
        except ModelFileError:
            if self._spec[REDSHIFT] is not None:
                raise  # the one asked for is broken: say so
            with self._lock:
                self._models[REDSHIFT] = None  # none installed: estimate from the templates alone
            return None
        if model is not None and model.variant != REDSHIFT:
            raise ModelFileError(f"model {model.name!r} is a {model.variant} model, not a redshift model")
        return model

    def bank(self):
        """The template bank for redshift and rlap, or None when none is installed."""
        with self._lock:
            if "bank" not in self._models:
                from .templates import default_bank

                try:
                    self._models["bank"] = default_bank()
                except FileNotFoundError:
                    self._models["bank"] = None
            return self._models["bank"]

    def _estimate_redshifts(self, items, smoothing, min_wave, max_wave, results):
        """Redshifts of spectra given none (:func:`astrodash_core.redshift.estimate_observed`: the redshift
        model, or the templates of the classes the agnostic model finds likely).  Returns [(index, spectrum,
        z, z_error, estimate)] for the known-z pass; spectra that cannot be estimated are classified by the agnostic
        model alone (redshift None).  The :class:`RedshiftEstimate` carries the alternatives (other redshifts
        the redshift model's posterior allows, with their masses), over which the known-z pass averages."""
        model = self.model_for(AGNOSTIC)
        bank = self.bank()
        settings = PreprocessSettings.from_dict(model.preprocessing)
        pre = preprocess([s for _, s in items], redshift=0.0, settings=settings, smoothing=smoothing,
                         min_wave=min_wave, max_wave=max_wave, on_error="collect")
        ok = pre.ok
        # the agnostic model's probabilities, computed for the rows that need them only: with a redshift model
        # and a bank, just the spectra the templates decide at the ends of its range
        probs = _RowProbs(model, pre.flux)
        if bank is None:  # the agnostic model's answer is the result
            probs(np.flatnonzero(ok))
        to_estimate = []
        for j, (i, spec) in enumerate(items):
            if not ok[j]:
                results[i] = Classification(name=spec.name, error=pre.errors[j], model=model.name)
            elif bank is None:
                results[i] = self._result(spec, model, probs([j])[0], pre, j, None, "estimated", None)
            else:
                to_estimate.append(j)
        if not to_estimate:
            return []
        rows = pre.take(to_estimate)  # what the bank's templates are correlated with
        try:
            bank.check_rows(rows)
        except ModelFileError:  # the agnostic model preprocesses differently: those rows made the bank's way
            rows = preprocess([items[j][1] for j in to_estimate], redshift=0.0, settings=bank.settings,
                              smoothing=smoothing, min_wave=min_wave, max_wave=max_wave, on_error="collect")
            for j in (j for j, usable in zip(to_estimate, rows.ok) if not usable):
                i, spec = items[j]
                results[i] = self._result(spec, model, probs([j])[0], pre, j, None, "estimated", None)
            to_estimate = [j for j, usable in zip(to_estimate, rows.ok) if usable]
            rows = rows.take(rows.ok)
            if not to_estimate:
                return []

        z_model = self.redshift_model()
        network = None if z_model is None else trimmed_network_redshifts(
            z_model, [items[j][1] for j in to_estimate], smoothing, min_wave, max_wave,
            uncut=pre.flux[to_estimate] if z_model.preprocessing == model.preprocessing else None)
        of_row = np.asarray(to_estimate, dtype=np.int64)
        estimates = estimate_observed(rows, lambda idx: probs(of_row[idx]), bank, z_model, match=False,
                                      network=network)
        return [(*items[j], est.redshift, est.error, est) for j, est in zip(to_estimate, estimates)]

    def _result(self, spec, model, probs, pre, j, z, z_source, z_error, top_n=5, probabilities=False,
                include_spectrum=False):
        """The classification of row j of ``pre``, without rlap (:func:`_add_rlap` adds it for a whole chunk)."""
        threshold = float(model.provenance.get("reliability", {}).get("threshold",
                                                                      interpret.DEFAULT_RELIABLE_THRESHOLD))
        if labels.is_transformer_labels(model.labels):  # type-only classes: no ages to merge
            best, matches = interpret.type_only_matches(probs, top_n, threshold)
        else:
            best = interpret.best_match(probs, threshold)
            matches = interpret.ranked_matches(probs, top_n)
        lo, hi = int(pre.lo[j]), int(pre.hi[j])
        for m in [best, *matches]:
            m.redshift = z
        wave = pre.settings.grid.wave
        return Classification(
            name=spec.name, redshift=z, redshift_source=z_source, redshift_error=z_error, model=model.name,
            matches=matches, best_match=best, probabilities=probs.copy() if probabilities else None,
            spectrum=(wave[lo:hi].copy(), pre.flux[j, lo:hi].copy()) if include_spectrum else None)

    def _classify_chunk(self, sources, zs, top_n, smoothing, min_wave, max_wave, probabilities, include_spectrum,
                        rlap=True):
        """One chunk's classifications, under the forward passes' BLAS limit (``nn.BLAS_THREADS``) held for the
        whole chunk: setting and restoring it around each of the chunk's forward passes cost about 0.1 ms each."""
        from . import nn

        with nn.blas_threads(nn.BLAS_THREADS):
            return self._classify_chunk_limited(sources, zs, top_n, smoothing, min_wave, max_wave, probabilities,
                                                include_spectrum, rlap)

    def _classify_chunk_limited(self, sources, zs, top_n, smoothing, min_wave, max_wave, probabilities,
                                include_spectrum, rlap=True):
        results: list[Classification | None] = [None] * len(sources)
        known: list[tuple[int, Spectrum, float, str, float | None]] = []
        unknown: list[tuple[int, Spectrum]] = []
        read_warnings: dict[int, list[str]] = {}  # what the reader repaired (rows dropped, errors unknown)
        for i, (source, z) in enumerate(zip(sources, zs)):
            try:
                spec = _read(source)
            except AstrodashError as exc:
                results[i] = Classification(name=_source_name(source), error=str(exc))
                continue
            read_warnings[i] = list(spec.meta.get("warnings", ()))
            if z is None and spec.redshift is not None:
                z = spec.redshift
            if z is None:
                unknown.append((i, spec))
                continue
            try:
                z = float(z)
            except (TypeError, ValueError):
                results[i] = Classification(name=spec.name, error=f"redshift {str(z)!r} is not a number")
                continue
            if not np.isfinite(z) or z <= -1:
                results[i] = Classification(name=spec.name, error=f"redshift {z!r} is not a finite number above -1")
                continue
            known.append((i, spec, z, "given", None))
        estimates = {}  # row of `known` -> its RedshiftEstimate
        if unknown:
            for i, s, z, err, est in self._estimate_redshifts(unknown, smoothing, min_wave, max_wave, results):
                estimates[len(known)] = est
                known.append((i, s, z, "estimated", err))
        # row of `known` -> other redshifts to average over ((z, weight relative to the estimate), ...)
        alternatives = {j: _relative_alternatives(est) for j, est in estimates.items() if est.alternatives}
        if known:
            model = self.model_for(KNOWN_Z)
            # rlap compares with the templates of a subtype and age: a type-only model's classes have no age
            bank = self.bank() if rlap and not labels.is_transformer_labels(model.labels) else None
            settings = PreprocessSettings.from_dict(model.preprocessing)
            pre = preprocess([s for _, s, _, _, _ in known], redshift=[z for _, _, z, _, _ in known],
                             settings=settings, smoothing=smoothing, min_wave=min_wave, max_wave=max_wave,
                             on_error="collect")
            ok = pre.ok
            probs = np.zeros((len(known), len(model.labels)), dtype=np.float32)
            if ok.any():
                probs[ok] = model.predict(pre.flux[ok])
            if alternatives:
                _average_over_alternatives(model, settings, known, alternatives, ok, probs, smoothing, min_wave,
                                           max_wave)
            classified = []
            for j, (i, spec, z, z_source, z_err) in enumerate(known):
                if not ok[j]:
                    results[i] = Classification(name=spec.name, error=pre.errors[j], model=model.name,
                                                redshift=z, redshift_source=z_source)
                else:
                    result = self._result(spec, model, probs[j], pre, j, z, z_source, z_err, top_n,
                                          probabilities, include_spectrum)
                    if j in alternatives:
                        result.redshift_alternatives = tuple(estimates[j].alternatives)
                        result.redshift_mass = estimates[j].mass
                    results[i] = result
                    classified.append((j, result))
            if bank is not None and classified:
                rlap_pre = pre
                try:
                    bank.check_rows(pre)
                except ModelFileError:  # the model preprocesses differently: rows for rlap made the bank's way
                    rlap_pre = preprocess([s for _, s, _, _, _ in known], redshift=[z for _, _, z, _, _ in known],
                                          settings=bank.settings, smoothing=smoothing, min_wave=min_wave,
                                          max_wave=max_wave, on_error="collect")
                    classified = [(j, r) for j, r in classified if rlap_pre.ok[j]]
                _add_rlap(rlap_pre, bank, classified)
        final: list[Classification] = []
        for r, source in zip(results, sources):
            if r is None:  # every source is classified or has its error by now
                raise RuntimeError(f"no result for {_source_name(source)}")
            r.file = _source_file(source)
            final.append(r)
        for i, w in read_warnings.items():
            final[i].warnings = w
        return final


class _RowProbs:
    """A model's probabilities of rows of ``flux``, each row computed once, when first asked for (the agnostic
    model's are needed for some spectra only)."""

    def __init__(self, model, flux: np.ndarray):
        self._model, self._flux = model, flux
        self._probs = np.zeros((len(flux), len(model.labels)), dtype=np.float32)
        self._done = np.zeros(len(flux), dtype=bool)

    def __call__(self, rows) -> np.ndarray:
        """Probabilities [len(rows), classes] of the rows ``rows`` (indices)."""
        rows = np.asarray(rows, dtype=np.int64)
        todo = np.unique(rows[~self._done[rows]])
        if todo.size:
            self._probs[todo] = self._model.predict(self._flux[todo])
            self._done[todo] = True
        return self._probs[rows]


def _relative_alternatives(est) -> tuple:
    """An estimate's alternatives with their masses relative to the estimate's own: the estimate counts as the
    posterior's highest peak (it is one, unless the templates overruled the network at the end of its range)."""
    ref = max(est.mass or 0.0, est.top_mass or 0.0) or 1.0
    return tuple((z, m / ref) for z, m in est.alternatives)


def _average_over_alternatives(model, settings, known, alternatives, ok, probs, smoothing, min_wave, max_wave):
    """For spectra whose estimated redshift has alternatives, replace their known-z probabilities (rows of
    ``probs``, in place) by the average over the estimate (weight 1) and the alternatives (their posterior
    masses relative to the estimate's): p(class) = sum over z of p(class | z) p(z).  An alternative the spectrum cannot be preprocessed
    at (too little of it left on the grid) is left out."""
    rows = [j for j in sorted(alternatives) if ok[j]]
    owner = [j for j in rows for _ in alternatives[j]]
    if not owner:
        return
    pre = preprocess([known[j][1] for j in owner], redshift=[z for j in rows for z, _ in alternatives[j]],
                     settings=settings, smoothing=smoothing, min_wave=min_wave, max_wave=max_wave, on_error="collect")
    weights = np.array([w for j in rows for _, w in alternatives[j]]) * pre.ok
    alt_probs = np.zeros((len(owner), probs.shape[1]), dtype=np.float32)
    if pre.ok.any():
        alt_probs[pre.ok] = model.predict(pre.flux[pre.ok])
    at = np.searchsorted(rows, owner)  # rows is sorted: each alternative's place among them
    total = probs[rows].astype(np.float64)
    norm = np.ones(len(rows))
    np.add.at(total, at, weights[:, None] * alt_probs)
    np.add.at(norm, at, weights)
    probs[rows] = (total / norm[:, None]).astype(np.float32)


def _best_match_rows(bank, best) -> np.ndarray:
    """Bank rows of the best match's type (subtype or broad) inside its merged age range."""
    first, last = (float(x) for x in best.age.split(" to "))
    centres = 0.5 * (labels.AGE_EDGES[:-1] + labels.AGE_EDGES[1:])
    bins = np.nonzero((centres > first) & (centres < last))[0]
    rows = bank.rows(best.type, per_class=PER_CLASS)
    return rows[np.isin(bank.label[rows] % labels.N_AGE_BINS, bins)]


def _add_rlap(pre, bank, items, n_top: int = 3) -> None:
    """rlap at each result's redshift for its top ``n_top`` matches and its best match: for each, the highest
    rlap over the templates of its classes, at most ``PER_CLASS`` of each (None when the bank has none).
    ``items`` are (row of ``pre``, Classification); one batched correlation serves them all.

    The rows of ``pre`` were de-redshifted by ``preprocess`` at each result's redshift, so they are correlated
    with the (rest-frame) templates at lag 0, within the usual tolerance: passing the redshift again would shift
    them twice.  They must have been preprocessed as the bank's templates were (:meth:`TemplateBank.check_rows`)."""
    from .rlap import RLAP_WARNING

    bank.check_rows(pre)

    plans, spec, t_row = [], [], []
    offset = 0
    cache: dict[tuple, np.ndarray] = {}  # a chunk's spectra share few classes: their rows are looked up once

    def rows_of(m, look_up):
        key = (look_up, m.type, m.age)
        if key not in cache:
            cache[key] = look_up(m)
        return cache[key]

    def class_rows(m):
        return bank.rows(m.type, m.age, PER_CLASS)

    def best_rows(m):
        return _best_match_rows(bank, m)

    for j, r in items:
        targets = [*r.matches[:n_top], r.best_match]
        groups = [rows_of(m, class_rows) for m in r.matches[:n_top]] + [rows_of(r.best_match, best_rows)]
        rows = np.unique(np.concatenate(groups))
        plans.append((offset, rows, targets, groups, r.best_match))
        offset += rows.size
        spec.append(np.full(rows.size, j, dtype=np.int64))
        t_row.append(rows)
    if offset == 0:
        return
    rlap = bank.rlap_pairs(pre, np.concatenate(spec), np.concatenate(t_row), np.zeros(len(pre)))
    for start, rows, targets, groups, best in plans:
        by_row = dict(zip(rows.tolist(), rlap[start:start + rows.size].tolist()))
        for m, g in zip(targets, groups):
            m.rlap = max(by_row[x] for x in g.tolist()) if g.size else None
        best.rlap_warning = None if best.rlap is None else bool(best.rlap < RLAP_WARNING)
        best.reliable = interpret.reliable_with_rlap(best.reliable, best.rlap_warning)


def batch_chunk_size(n: int) -> int:
    """The chunk size :meth:`Classifier.classify` uses for ``n`` sources: one chunk below :data:`MIN_SPLIT`, else
    an even number of equal chunks of at most :data:`MAX_CHUNK` (pairs of them run at once, see
    :data:`CHUNK_THREADS`)."""
    if CHUNK_THREADS < 2 or n < MIN_SPLIT:
        return max(min(n, MAX_CHUNK), 1)
    pairs = math.ceil(n / (2 * MAX_CHUNK))
    return math.ceil(n / (2 * pairs))


def _redshift_iter(redshift):
    if redshift is None or np.ndim(redshift) == 0:
        while True:
            yield redshift
    else:
        yield from redshift
        raise ValueError("fewer redshifts than sources")


_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    global _default
    with _default_lock:
        if _default is None:
            _default = Classifier()
        return _default


def classify(sources, redshift=None, model=None, top_n: int = 5, smoothing: int = 0, min_wave=None,
             max_wave=None, probabilities: bool = False, rlap: bool = True) -> list[Classification]:
    """Classify spectra: paths, ``(bytes, filename)`` pairs, file objects, arrays or Spectrum objects.

    ``redshift``: one number for all, a sequence aligned with ``sources`` (None entries unknown), or None.
    A spectrum with a known redshift (given, or found in its file) is classified by the known-redshift
    model; one without by the redshift-agnostic model, with ``redshift_source="estimated"``.  One bad source
    never fails the others: its result carries ``error``.  Without a redshift, the agnostic model's likely
    classes and cross-correlation with their templates estimate it (``redshift_source="estimated"``,
    ``redshift_error``), then the known-redshift model classifies at that redshift (its probabilities averaged
    with those at the redshift posterior's other peaks, weighted by their posterior mass).  ``rlap`` adds SNID's
    rlap for the top three matches and the best match.
    """
    clf = default_classifier() if model is None else Classifier(model=model)
    return clf.classify(sources, redshift, top_n=top_n, smoothing=smoothing, min_wave=min_wave,
                        max_wave=max_wave, probabilities=probabilities, rlap=rlap)


def estimate_redshift(source, sn_type: str | None = None, age_bin=None, *, bank: TemplateBank | None = None,
                      classifier=None, z_min: float = Z_MIN, z_max: float = Z_MAX, min_wave=None, max_wave=None,
                      smoothing: int = 0) -> RedshiftEstimate:
    """Estimate the redshift of one spectrum (anything :func:`read_spectrum` accepts): the front end of the
    array algorithms in :mod:`astrodash_core.redshift`.

    With ``sn_type`` (a subtype or broad type) and/or ``age_bin`` the matching templates are used.  With
    neither, the redshift model's estimate with the best template of the agnostic model's likely classes
    near it; without a redshift model, or when ``z_min``/``z_max`` narrow the range, those templates'
    correlation over the range decides.
    """
    from .templates import default_bank

    bank = bank or default_bank()
    spec = read_spectrum(source)
    pre = preprocess(spec, redshift=0.0, settings=bank.settings, smoothing=smoothing, min_wave=min_wave,
                     max_wave=max_wave)
    if sn_type is not None or age_bin is not None:
        rows = bank.rows(sn_type, age_bin)
        if rows.size == 0:
            raise KeyError(f"no template for type {sn_type!r} at age {age_bin!r}")
        return estimate_from_rows(pre, bank, rows, z_min, z_max)
    classifier = classifier or default_classifier()
    probs = classifier.model_for(AGNOSTIC).predict(pre.flux)
    if (z_min, z_max) != (Z_MIN, Z_MAX):
        return estimate_many(pre, [candidate_rows(bank, probs[0])], bank, z_min, z_max)[0]
    model = classifier.redshift_model()
    network = None if model is None else trimmed_network_redshifts(
        model, [spec], smoothing, min_wave, max_wave,
        uncut=pre.flux if model.preprocessing == bank.settings.to_dict() else None)
    return estimate_observed(pre, probs, bank, model, network=network)[0]
