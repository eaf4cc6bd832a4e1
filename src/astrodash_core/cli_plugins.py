"""``astrodash plugins``: the plugins that are loaded, with their versions, and those that failed to load."""
from __future__ import annotations

import argparse
import json


def cmd_plugins(args) -> int:
    """Print one line (or JSON object) per plugin; exit status 1 when a plugin failed to load."""
    from .plugins import plugin_info

    info = plugin_info()
    if args.json:
        for row in info:
            print(json.dumps(row))
    else:
        rows = [(r["name"], r["version"] or "-", r["distribution"] or "-", "built-in" if r["builtin"] else "external",
                 ",".join(h.removeprefix("register_") for h in r["hooks"]) or "-", r["status"]) for r in info]
        header = ("NAME", "VERSION", "DISTRIBUTION", "KIND", "PROVIDES", "STATUS")
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        for line in (header, *rows):
            print("  ".join(str(c).ljust(w) for c, w in zip(line[:-1], widths)) + "  " + str(line[-1]))
    return 1 if any(r["status"].startswith("failed") for r in info) else 0


def add_plugins_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list the loaded plugins (readers, models, storage) with their versions")
    p.add_argument("--json", action="store_true", help="one JSON object per plugin")
    p.set_defaults(func=cmd_plugins)
