"""The one plugin manager: built-in plugins and third-party ones from the ``astrodash`` entry-point group.

Environment variable ``ASTRODASH_PLUGINS`` restricts which *external* plugins load: unset loads all of them,
a comma-separated list of entry-point names loads only those, and an empty value (or ``none``) loads none.
Built-in plugins (modules under ``astrodash_plugins``) always load.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
from importlib.metadata import entry_points
from typing import Any, Callable

import pluggy

from . import hookspecs

ENV_VAR = "ASTRODASH_PLUGINS"
ENTRY_POINT_GROUP = "astrodash"

#: Built-in plugin modules; registered even when the package metadata (entry points) is not installed.
BUILTIN_PLUGINS = (
    "astrodash_plugins.readers",
    "astrodash_plugins.models",
    "astrodash_plugins.storage",
    "astrodash_plugins.catalogues",
)

pm = pluggy.PluginManager("astrodash")
pm.add_hookspecs(hookspecs)

_lock = threading.RLock()
_loaded = False
_cache: dict[str, Any] = {}


def _allowed_external() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    names = {n.strip() for n in value.split(",") if n.strip()}
    return set() if names <= {"none"} else names


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        # built-ins first: pluggy calls the last-registered first, so third parties can override them
        for modname in BUILTIN_PLUGINS:
            try:
                module = importlib.import_module(modname)
            except ModuleNotFoundError as exc:
                if exc.name != modname:
                    raise
                continue
            if not pm.is_registered(module):
                pm.register(module, name=modname)
        allowed = _allowed_external()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            builtin = ep.value.split(":")[0].startswith("astrodash_plugins")
            if not builtin and allowed is not None and ep.name not in allowed:
                continue
            if builtin and ep.value in BUILTIN_PLUGINS:
                continue  # registered above under its module name, whether or not metadata exists
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break the library
                print(f"astrodash: plugin {ep.name!r} failed to load: {exc}", file=sys.stderr)
                continue
            if pm.get_plugin(ep.name) is None and not pm.is_registered(plugin):
                pm.register(plugin, name=ep.name)


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


def _collect(hook_name: str, make: Callable[[list], Any]):
    _load()
    with _lock:
        if hook_name not in _cache:
            items: list = []
            getattr(pm.hook, hook_name)(register=lambda *args, **kw: items.append((args, kw)))
            _cache[hook_name] = make(items)
        return _cache[hook_name]


def get_readers() -> list:
    """Every registered reader, later-registered (third-party) plugins first so they can override."""
    return _collect("register_readers", lambda items: [args[0] for args, _ in items])


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
    _load()
    return sorted(name for name, _ in pm.list_name_plugin())
