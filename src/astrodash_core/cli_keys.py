"""``astrodash keys add|list|revoke``: the HTTP service's API keys, kept hashed by the storage plugin
(``ASTRODASH_STORAGE_URL``, or ``--storage-url``).  A new key is printed once and never again."""
from __future__ import annotations

import argparse
import json
import sys


def _store(args):
    from astrodash_asgi.settings import Settings

    from .plugins import open_storage

    url = args.storage_url or Settings.from_env().storage_url
    store = open_storage(url)
    if not all(hasattr(store, m) for m in ("add_key", "list_keys", "revoke_key", "key_hashes")):
        raise ValueError(f"the storage backend of {url.split(':', 1)[0]}: URLs keeps no API keys; list them in "
                         "ASTRODASH_API_KEYS_FILE instead")
    return store


def cmd_keys(args) -> int:
    from .apikeys import check_name, check_scopes, generate_key, hash_key

    try:
        store = _store(args)
        if args.action == "list":
            keys = store.list_keys()
            if args.json:
                for k in keys:
                    print(json.dumps(k))
            else:
                rows = [(k["name"], ",".join(k["scopes"]) or "-", k["created_at"]) for k in keys]
                header = ("NAME", "SCOPES", "CREATED")
                widths = [max(len(c) for c in col) for col in zip(header, *rows)]
                for row in (header, *rows):
                    print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            return 0
        name = check_name(args.name or "")
        if args.action == "revoke":
            if not store.revoke_key(name):
                print(f"astrodash keys: no key named {name!r}", file=sys.stderr)
                return 1
            print(f"revoked {name!r}", file=sys.stderr)
            return 0
        scopes = check_scopes(args.scope or ())
        key = generate_key()
        try:
            store.add_key(name, hash_key(key), scopes)
        except KeyError:
            print(f"astrodash keys: a key named {name!r} exists; revoke it first or choose another name",
                  file=sys.stderr)
            return 1
        print(key)
        print(f"API key {name!r} created (scopes: {', '.join(scopes) or 'none'}); it is shown only this once: "
              "store it now", file=sys.stderr)
        return 0
    except ValueError as exc:
        print(f"astrodash keys: {exc}", file=sys.stderr)
        return 2


def add_keys_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="add, list or revoke API keys of the HTTP service (kept hashed in the store)")
    p.add_argument("action", choices=("add", "list", "revoke"))
    p.add_argument("name", nargs="?", metavar="NAME", help="the key's name (add, revoke)")
    p.add_argument("--scope", action="append", choices=("admin",),
                   help="add: a scope of the key (admin: upload, change and delete models)")
    p.add_argument("--storage-url", help="the store (default: $ASTRODASH_STORAGE_URL or the default store)")
    p.add_argument("--json", action="store_true", help="list: one JSON object per key")
    p.set_defaults(func=cmd_keys)
