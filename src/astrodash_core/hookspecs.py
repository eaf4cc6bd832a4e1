"""Hook specifications: how plugins add readers, models and storage backends.

Plugins follow the ``register(...)`` callback style of llm and datasette: a plugin module implements a hook
and calls ``register`` once for each thing it provides::

    from astrodash_core import hookimpl

    @hookimpl
    def register_readers(register):
        register(MyReader())

Contracts
---------
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
import pluggy

hookspec = pluggy.HookspecMarker("astrodash")
hookimpl = pluggy.HookimplMarker("astrodash")


@hookspec
def register_readers(register):
    """Register spectrum readers: call ``register(reader)`` for each."""


@hookspec
def register_models(register):
    """Register models: call ``register(name, loader, default_for=None)`` for each."""


@hookspec
def register_storage(register):
    """Register storage backends: call ``register(scheme, factory)`` for each URL scheme."""


@hookspec
def register_catalogues(register):
    """Register catalogues that give a supernova's spectra by name: call ``register(name, factory)`` for each."""
