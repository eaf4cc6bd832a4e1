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
    spectra, e.g. every epoch of a SNID template) raising ``SpectrumReadError`` on bad content.
Model provider
    ``register(name, loader, default_for=None)``: ``loader()`` returns a loaded model object (see
    ``astrodash_core.models``); ``default_for`` is ``"known-z"`` or ``"agnostic"`` to offer a default.
Storage backend
    ``register(scheme, factory)``: ``factory(url: str)`` returns a storage object for URLs of that scheme
    (see ``astrodash_plugins.storage``).
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
