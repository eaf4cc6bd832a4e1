"""Hook specifications: how plugins add readers, models and storage backends.

Plugins follow the ``register(...)`` callback style of llm and datasette: a plugin module implements a hook
and calls ``register`` once for each thing it provides::

    from astrodash_core import hookimpl

    @hookimpl
    def register_readers(register):
        register(MyReader())

Contracts
---------
Written out as the ``typing.Protocol`` classes below (:class:`SpectrumReader`, :class:`ModelLoader`,
:class:`ModelStore` with the optional :class:`KeyStore`, :class:`StorageFactory`, and the ``register`` callables
each hook receives).

Reader
    ``name: str``; ``suffixes: tuple[str, ...]`` (lower case, with the dot, e.g. ``(".dat", ".txt")``);
    ``sniff(head: bytes, filename: str) -> float`` a confidence in [0, 1] that the content is this format
    (``head`` is the first 64 KiB); ``read(data: bytes, filename: str) -> list[Spectrum]`` (one or more
    spectra, e.g. every epoch of a SNID template) raising ``SpectrumReadError`` on bad content; optionally
    ``read_many(items: list[tuple[bytes, str]]) -> list[list[Spectrum] | Exception]``, ``read`` of each item
    with a file's failure in its place, for a reader that reads several files faster together.
Model provider
    ``register(name, loader, default_for=None)``: ``loader()`` returns a loaded model object (see
    ``astrodash_core.models``); ``default_for`` is ``"known-z"`` or ``"agnostic"`` to offer a default.
Storage backend
    ``register(scheme, factory)``: ``factory(url: str)`` returns a storage object for URLs of that scheme
    (see ``astrodash_plugins.storage``).  A backend that can also hold batch jobs gives its storage object a
    ``jobs()`` method returning a :class:`JobStore`; without it the batch-processor API answers 503.
Catalogue
    ``register(name, factory)``: ``factory()`` returns an object with ``spectra(name: str) -> list[Spectrum]``
    (see ``astrodash_core.catalogue``), or None when it is not configured.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .models import Model
    from .spectrum import Spectrum

hookspec = pluggy.HookspecMarker("astrodash")
hookimpl = pluggy.HookimplMarker("astrodash")


# ---- the contracts, as typing.Protocol classes ----------------------------------------------------------

@runtime_checkable
class SpectrumReader(Protocol):
    """What ``register_readers`` registers (``astrodash_core.reader_base.Reader`` is a convenient base class)."""

    #: the format's name, e.g. "fits" (``Spectrum.meta["format"]``)
    name: str
    #: lower-case suffixes with the dot, longest first where they overlap, e.g. (".fits.gz", ".fits")
    suffixes: tuple[str, ...]

    def sniff(self, head: bytes, filename: str) -> float:
        """Confidence in [0, 1] that ``head`` (the first 64 KiB) is this format."""
        ...

    def read(self, data: bytes, filename: str) -> list[Spectrum]:
        """Every spectrum in ``data``; raises ``SpectrumReadError`` naming ``filename`` on bad content."""
        ...


class ModelLoader(Protocol):
    """What ``register_models`` registers: called (once, lazily) to load the model."""

    def __call__(self) -> Model: ...


@runtime_checkable
class ModelStore(Protocol):
    """A storage backend for uploaded models (synchronous, thread-safe; records are dicts with an ``id``)."""

    def put(self, data: bytes, record: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, model_id: str) -> dict[str, Any] | None: ...

    def read(self, model_id: str) -> bytes: ...

    def list(self, owner: str | None = None) -> list[dict[str, Any]]: ...

    def update(self, model_id: str, fields: dict[str, Any]) -> dict[str, Any] | None: ...

    def delete(self, model_id: str) -> bool: ...


#: A batch's status while items wait or run, and once it is over (the JobStore contract and the HTTP API's).
BATCH_ACTIVE = ("queued", "processing")
BATCH_FINISHED = ("completed", "failed", "cancelled")
BATCH_STATUSES = BATCH_ACTIVE + BATCH_FINISHED


class BatchExists(Exception):
    """A batch with this id is already stored."""

    def __init__(self, batch_id: str):
        super().__init__(f"batch {batch_id!r} already exists")
        self.batch_id = batch_id


class IdempotencyMismatch(Exception):
    """An idempotency key was used before with a different request."""

    def __init__(self, key: str, batch_id: str):
        super().__init__(f"idempotency key {key!r} was used for batch {batch_id!r} with a different request")
        self.key, self.batch_id = key, batch_id


class UploadSpaceError(Exception):
    """Another upload would pass the bound on the bytes open uploads may hold."""

    def __init__(self, held: int, bound: int):
        self.held, self.bound = held, bound
        super().__init__(f"open uploads hold {held} of the {bound} bytes allowed")


@runtime_checkable
class JobStore(Protocol):
    """Durable batch jobs (synchronous, thread-safe, shared by every server process that uses the same store).

    Batches are dicts with ``id``, ``owner``, ``status`` (queued, processing, completed, failed, cancelled),
    ``priority``, ``created_at``/``started_at``/``finished_at`` (epoch seconds), ``params``, ``opts_key``,
    ``metadata``, ``timeout_ms``, ``total``, ``completed``, ``failed``, ``processing_ms``, ``error``, ``archive``.
    Items are numbered 0.. within their batch.  ``astrodash_plugins.storage.jobs_sqlite`` is the reference
    implementation; its docstrings give each method's contract."""

    def save_archive(self, batch_id: str, data: bytes) -> str: ...

    def drop_archive(self, path: str | None) -> None: ...

    def create_batch(self, batch: dict[str, Any], items: Any, idempotency: tuple[str, str] | None = None
                     ) -> tuple[dict[str, Any], bool]: ...

    def get_batch(self, batch_id: str) -> dict[str, Any] | None: ...

    def list_batches(self, statuses: tuple[str, ...] | None = None, owner: str | None = None, limit: int = 100,
                     after: tuple[float, str] | None = None) -> list[dict[str, Any]]: ...

    def results(self, batch_id: str, after_seq: int = 0, limit: int | None = 100) -> list[dict[str, Any]]: ...

    def queue_length(self) -> int: ...

    def claim(self, worker: str, limit: int, order: Any, dead: Any = ..., now: float | None = None,
              lease_s: float = ...) -> list[dict[str, Any]]: ...

    def complete(self, worker: str, outcomes: list[dict[str, Any]], now: float | None = None) -> int: ...

    def drop_cancelled(self, worker: str, batch_ids: list[str]) -> set[str]: ...

    def renew(self, worker: str, now: float | None = None, lease_s: float = ...) -> None: ...

    def fail_batch(self, batch_id: str, error: str, now: float | None = None) -> None: ...

    def cancel(self, batch_id: str, now: float | None = None) -> dict[str, Any] | None: ...

    def expire(self, ttl_s: float, key_ttl_s: float, now: float | None = None) -> int: ...

    def release_archives(self) -> int: ...

    # metrics and analytics (the batch-processor metrics, analytics and /metrics)
    def active_batches(self) -> int: ...

    def activity(self, since: float) -> dict[str, Any]: ...

    def finished_series(self, start: float, end: float, step: float) -> list[dict[str, Any]]: ...

    # configuration every server process applies (POST /api/batch-processor/configure)
    def get_config(self, name: str) -> tuple[dict[str, Any], float] | None: ...

    def set_config(self, name: str, value: dict[str, Any], now: float | None = None) -> float: ...


@runtime_checkable
class UploadStore(Protocol):
    """Resumable uploads (``/api/v1/uploads``), optional on a job store: records and the files their bytes are
    written to; ``astrodash_plugins.storage.jobs_sqlite`` is the reference implementation."""

    def upload_file(self, upload_id: str) -> str: ...

    def create_upload(self, upload: dict[str, Any], ttl_s: float, max_total_bytes: int,
                      now: float | None = None) -> dict[str, Any]: ...

    def get_upload(self, upload_id: str, now: float | None = None) -> dict[str, Any] | None: ...

    def record_upload(self, upload_id: str, received: int, ttl_s: float, complete: bool = False,
                      sha256: str | None = None, now: float | None = None) -> dict[str, Any] | None: ...

    def link_upload(self, upload_id: str, batch_id: str) -> str: ...

    def finish_upload(self, upload_id: str, batch_id: str) -> None: ...

    def delete_upload(self, upload_id: str) -> bool: ...

    def expire_uploads(self, now: float | None = None) -> int: ...
@runtime_checkable
class KeyStore(Protocol):
    """Optional API-key methods of a storage backend (``astrodash keys``; ``ASTRODASH_REQUIRE_API_KEY``).
    Only a key's SHA-256 (hex) is stored; scopes are names such as ``"admin"``."""

    def add_key(self, name: str, key_hash: str, scopes: tuple[str, ...] = ()) -> dict[str, Any]: ...

    def list_keys(self) -> list[dict[str, Any]]: ...

    def key_hashes(self) -> list[dict[str, Any]]: ...

    def revoke_key(self, name: str) -> bool: ...


class StorageFactory(Protocol):
    """What ``register_storage`` registers: a storage object for a URL of its scheme."""

    def __call__(self, url: str) -> ModelStore: ...


class RegisterReader(Protocol):
    def __call__(self, reader: SpectrumReader) -> None: ...


class RegisterModel(Protocol):
    def __call__(self, name: str, loader: ModelLoader, default_for: str | None = None) -> None: ...


class RegisterStorage(Protocol):
    def __call__(self, scheme: str, factory: StorageFactory) -> None: ...


# ---- the hooks ----------------------------------------------------------------------------------------------

@hookspec
def register_readers(register: RegisterReader) -> None:
    """Register spectrum readers: call ``register(reader)`` for each."""


@hookspec
def register_models(register: RegisterModel) -> None:
    """Register models: call ``register(name, loader, default_for=None)`` for each."""


@hookspec
def register_storage(register: RegisterStorage) -> None:
    """Register storage backends: call ``register(scheme, factory)`` for each URL scheme."""


@hookspec
def register_catalogues(register):
    """Register catalogues that give a supernova's spectra by name: call ``register(name, factory)`` for each."""
