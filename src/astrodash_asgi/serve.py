"""``astrodash serve``: the API on uvicorn, one JSON access-log line per request on stderr."""
from __future__ import annotations

import copy

STATE_FILE_VAR = "ASTRODASH_RATE_LIMIT_STATE_FILE"


def log_config(level: str = "info") -> dict:
    """uvicorn's logging configuration plus the ``astrodash`` loggers (access lines are JSON already)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["astrodash"] = {"format": "%(message)s"}
    config["handlers"]["astrodash"] = {"class": "logging.StreamHandler", "formatter": "astrodash",
                                       "stream": "ext://sys.stderr"}
    config["loggers"]["astrodash"] = {"handlers": ["astrodash"], "level": level.upper(), "propagate": False}
    return config


def check_settings(environ=None) -> str | None:
    """Why the ``ASTRODASH_*`` environment cannot start a server (an unknown variable, a malformed value, an
    unreadable keys file), or None when it can."""
    from astrodash_core.apikeys import read_keys_file

    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env(environ)
        if settings.require_api_key and settings.api_keys_file:
            read_keys_file(settings.api_keys_file)
    except SettingsError as exc:
        return str(exc)
    except ValueError as exc:
        return f"ASTRODASH_API_KEYS_FILE: {exc}"
    return None


def print_settings(environ=None, out=None) -> None:
    """One line per setting: ``VARIABLE=value`` and its source (default or environment)."""
    import sys

    from .settings import describe

    out = out or sys.stdout
    rows = describe(environ)
    width = max(len(f"{r['variable']}={r['value']}") for r in rows)
    for r in rows:
        pair = f"{r['variable']}={r['value']}"
        note = f"  ({r['note']})" if r.get("note") else ""
        print(f"{pair:<{width}}  # {r['source']}{note}", file=out)


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the app (settings from ``ASTRODASH_*`` variables); ``workers > 1`` starts that many processes."""
    import os
    import tempfile

    import uvicorn

    # several workers count every client's requests in one set of buckets: a file they share, made here unless
    # ASTRODASH_RATE_LIMIT_STATE_FILE names one (or is set empty: each worker on its own)
    made = None
    if workers > 1 and STATE_FILE_VAR not in os.environ:
        fd, made = tempfile.mkstemp(prefix="astrodash-rate-limits-", suffix=".bin")
        os.close(fd)
        os.environ[STATE_FILE_VAR] = made
    try:
        # the protocol class (astrodash_asgi.protocol) adds the header timeout and the per-client connection
        # bound, and shortens the GIL switch interval in each worker process
        uvicorn.run("astrodash_asgi.app:create_app", factory=True, host=host, port=port, workers=max(1, workers),
                    log_level=log_level, log_config=log_config(log_level), access_log=False, proxy_headers=False,
                    server_header=False, http="astrodash_asgi.protocol:GuardedH11Protocol")
    finally:
        if made:
            os.environ.pop(STATE_FILE_VAR, None)
            if os.path.exists(made):
                os.unlink(made)
