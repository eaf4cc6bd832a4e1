"""The one plugin manager: built-in plugins and third-party ones from the ``astrodash`` entry-point group.

Environment variable ``ASTRODASH_PLUGINS`` restricts which *external* plugins load: unset loads all of them,
a comma-separated list of entry-point names loads only those, and an empty value (or ``none``) loads none.
Built-in plugins (modules under ``astrodash_plugins``) always load.
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
from importlib.metadata import entry_points
from typing import Any, Callable

import pluggy

from . import hookspecs

ENV_VAR = "ASTRODASH_PLUGINS"
ENTRY_POINT_GROUP = "astrodash"

#: Built-in plugins: entry-point name (as in pyproject.toml) -> module.  They are registered under these names
#: even when the package metadata (entry points) is not installed, before any third-party plugin.
BUILTIN_PLUGINS = {
    "readers": "astrodash_plugins.readers",
    "models": "astrodash_plugins.models",
    "storage": "astrodash_plugins.storage",
    "catalogues": "astrodash_plugins.catalogues",
}

log = logging.getLogger(__name__)

pm = pluggy.PluginManager("astrodash")
pm.add_hookspecs(hookspecs)

_lock = threading.RLock()
_loaded = False
_cache: dict[str, Any] = {}
#: name -> why it was not loaded ("failed: ..." or "disabled by ASTRODASH_PLUGINS")
_not_loaded: dict[str, str] = {}


def _allowed_external() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    names = {n.strip() for n in value.split(",") if n.strip()}
    return set() if names <= {"none"} else names


def _fail(name: str, why: str) -> None:
    """Report a third-party plugin that cannot be used, by name, and keep it out (pluggy's block list)."""
    log.warning("astrodash: plugin %r skipped: %s", name, why)
    _not_loaded[name] = f"failed: {why}"
    if not pm.is_blocked(name) and pm.get_plugin(name) is None:
        pm.set_blocked(name)


def _screen(ep) -> None:
    """Load an external entry point and check it in a scratch manager (registration validates the hook
    signatures, ``check_pending`` catches hooks that match no spec), so a broken plugin is skipped by name
    instead of failing ``load_setuptools_entrypoints`` for every plugin after it."""
    try:
        plugin = ep.load()
        scratch = pluggy.PluginManager("astrodash")
        scratch.add_hookspecs(hookspecs)
        scratch.register(plugin, name=ep.name)
        scratch.check_pending()
    except Exception as exc:  # anything a third party's import or hooks may raise
        _fail(ep.name, f"{type(exc).__name__}: {exc}")


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        # built-ins first, once, under their entry-point names: pluggy calls the last registered first, so
        # third parties can override them, and load_setuptools_entrypoints skips the names already registered
        for name, modname in BUILTIN_PLUGINS.items():
            module = importlib.import_module(modname)
            if not pm.is_registered(module):
                pm.register(module, name=name)
        allowed = _allowed_external()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in BUILTIN_PLUGINS:
                if ep.value != BUILTIN_PLUGINS[ep.name]:
                    _not_loaded.setdefault(f"{ep.name} ({ep.value})", "failed: name taken by a built-in plugin")
                    log.warning("astrodash: plugin %r (%s) skipped: the name is a built-in plugin's", ep.name,
                                ep.value)
                continue
            if allowed is not None and ep.name not in allowed:
                _not_loaded[ep.name] = f"disabled by {ENV_VAR}"
                pm.set_blocked(ep.name)
                continue
            if not pm.is_blocked(ep.name) and pm.get_plugin(ep.name) is None:
                _screen(ep)
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # e.g. two distributions giving one plugin object two names
            log.warning("astrodash: loading the %r entry points stopped: %s: %s", ENTRY_POINT_GROUP,
                        type(exc).__name__, exc)
        pm.check_pending()


def register(plugin, name: str | None = None) -> None:
    """Register a plugin object or module at run time (tests, notebooks, embedding applications)."""
    _load()
    with _lock:
        pm.register(plugin, name=name)
        _cache.clear()


def unregister(plugin=None, name: str | None = None) -> None:
    """Remove a plugin registered with :func:`register`."""
    with _lock:
        pm.unregister(plugin, name=name)
        _cache.clear()


def _collect(hook_name: str, make: Callable[[list], Any], check: Callable[..., str | None] | None = None):
    """What every plugin registers through ``hook_name``, in pluggy's call order (last registered first).

    Each plugin's hook is called on its own: one that raises is reported by name and its registrations are
    dropped, the others' are kept.  ``check(*args, **kw)`` names what is wrong with one registration (it is
    then reported and skipped) or returns None."""
    cached = _cache.get(hook_name)  # the usual call, once per file read: no locks (a dict read is atomic)
    if cached is not None:  # filled only after loading finished; (un)registering clears it under the lock
        return cached
    _load()
    with _lock:
        if hook_name not in _cache:
            items: list = []
            for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
                mine: list = []
                try:
                    impl.function(register=lambda *args, **kw: mine.append((args, kw)))
                except Exception as exc:  # a third party's bug must not take every reader down
                    log.warning("astrodash: plugin %r failed in %s: %s: %s", impl.plugin_name, hook_name,
                                type(exc).__name__, exc)
                    _not_loaded[impl.plugin_name] = f"failed in {hook_name}: {type(exc).__name__}: {exc}"
                    continue
                for args, kw in mine:
                    problem = check(*args, **kw) if check else None
                    if problem:
                        log.warning("astrodash: plugin %r registered %s: skipped", impl.plugin_name, problem)
                        _not_loaded.setdefault(impl.plugin_name, f"failed in {hook_name}: registered {problem}")
                        continue
                    items.append((args, kw))
            _cache[hook_name] = make(items)
        return _cache[hook_name]


def get_readers() -> list:
    """Every registered reader, later-registered (third-party) plugins first so they can override."""
    return _collect("register_readers", lambda items: [args[0] for args, _ in items], _check_reader)


def _check_reader(reader=None, *extra, **kw) -> str | None:
    """What makes ``reader`` break the :class:`hookspecs.SpectrumReader` contract, or None."""
    if extra or kw or not isinstance(reader, hookspecs.SpectrumReader):
        return f"{reader!r:.60}, which is not a reader (name, suffixes, sniff, read)"
    if not isinstance(reader.name, str) or not isinstance(reader.suffixes, tuple) or not all(
            isinstance(x, str) and x.startswith(".") and x == x.lower() for x in reader.suffixes):
        return f"reader {reader!r:.60} with a bad name or suffixes (a str; a tuple of lower-case '.ext')"
    return None


def get_model_providers() -> dict[str, dict]:
    """``{name: {"loader": callable, "default_for": str | None}}`` of every registered model."""

    def make(items):
        out: dict[str, dict] = {}
        for args, kw in items:
            name, loader = args[0], args[1]
            out.setdefault(name, {"loader": loader, "default_for": kw.get("default_for", args[2] if len(args) > 2 else None)})
        return out

    return _collect("register_models", make)


def get_storage_backends() -> dict[str, Callable]:
    """``{scheme: factory}`` of every registered storage backend."""
    return _collect("register_storage", lambda items: {args[0]: args[1] for args, _ in reversed(items)})


def open_storage(url: str):
    """The storage backend for ``url`` (by its scheme); ValueError when no plugin handles that scheme."""
    scheme = url.split(":", 1)[0].lower()
    backends = get_storage_backends()
    if scheme not in backends:
        raise ValueError(f"no storage backend for {scheme!r} URLs (have: {', '.join(sorted(backends))})")
    return backends[scheme](url)


def get_catalogues() -> dict:
    """``{name: catalogue or None}`` of every registered catalogue (None: not configured), third-party first.
    Catalogues are made anew on each call, so a change of their environment variables takes effect."""
    factories = _collect("register_catalogues", lambda items: [(args[0], args[1]) for args, _ in items])
    out: dict = {}
    for name, factory in factories:
        if name not in out:
            out[name] = factory()
    return out


def plugin_names() -> list[str]:
    """Names of the registered plugins (built-in and third-party)."""
    _load()
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)


def _hooks_of(plugin) -> list[str]:
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())


def plugin_info() -> list[dict[str, Any]]:
    """One dict per plugin, loaded or not: ``name``, ``module``, ``distribution``, ``version``, ``builtin``,
    ``hooks`` and ``status`` ("loaded", "failed: why", "disabled by ASTRODASH_PLUGINS")."""
    _load()
    from .version import __version__

    get_readers(), get_model_providers(), get_storage_backends()  # a plugin whose hook raises shows up too
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda kv: kv[0]):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        builtin = BUILTIN_PLUGINS.get(name) == getattr(plugin, "__name__", None)
        out.append({
            "name": name,
            "module": getattr(plugin, "__name__", None) or type(plugin).__module__ + "." + type(plugin).__qualname__,
            "distribution": dist.project_name if dist else ("astrodash" if builtin else None),
            "version": dist.version if dist else (__version__ if builtin else None),
            "builtin": builtin,
            "hooks": _hooks_of(plugin),
            "status": _not_loaded.get(name, "loaded"),
        })
    for name, why in sorted(_not_loaded.items()):
        if pm.get_plugin(name) is None:
            out.append({"name": name, "module": None, "distribution": None, "version": None, "builtin": False,
                        "hooks": [], "status": why})
    return out
