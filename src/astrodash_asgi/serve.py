"""``astrodash serve``: the API on uvicorn, one JSON access-log line per request on stderr."""
from __future__ import annotations

import copy

STATE_FILE_VAR = "ASTRODASH_RATE_LIMIT_STATE_FILE"
METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR_PREFIX = "astrodash-metrics-"


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


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def make_metrics_dir(tmp: str | None = None) -> str:
    """A fresh directory for prometheus_client's multiprocess mode (``astrodash-metrics-<pid>-*`` in the temporary
    directory); those left by servers that were killed (their pid is gone) are removed first."""
    import os
    import shutil
    import tempfile

    tmp = tmp or tempfile.gettempdir()
    for name in os.listdir(tmp):
        if name.startswith(METRICS_DIR_PREFIX):
            pid = name[len(METRICS_DIR_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-", dir=tmp)


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the app (settings from ``ASTRODASH_*`` variables); ``workers > 1`` starts that many processes."""
    import os
    import tempfile

    import uvicorn

    # Numba's OpenMP threads (the threaded preprocessing of batches) spin after each parallel region by default,
    # burning a core the event loop and the classification worker need (0.6 ms of CPU per /process request
    # measured); passive waiting costs a futex wake instead.  Set before any parallel kernel loads libgomp, in this
    # process and the worker processes it spawns; an operator's own OMP_WAIT_POLICY is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    # several workers count every client's requests in one set of buckets: a file they share, made here unless
    # ASTRODASH_RATE_LIMIT_STATE_FILE names one (or is set empty: each worker on its own)
    made = None
    if workers > 1 and STATE_FILE_VAR not in os.environ:
        fd, made = tempfile.mkstemp(prefix="astrodash-rate-limits-", suffix=".bin")
        os.close(fd)
        os.environ[STATE_FILE_VAR] = made
    # and /metrics adds up every worker's values: prometheus_client's multiprocess mode, in a directory made
    # fresh for this start and removed at the end (unless PROMETHEUS_MULTIPROC_DIR names one already)
    metrics_dir = None
    if workers > 1 and not os.environ.get(METRICS_DIR_VAR):
        metrics_dir = make_metrics_dir()
        os.environ[METRICS_DIR_VAR] = metrics_dir
    try:
        # the protocol class (astrodash_asgi.protocol) adds the header timeout and the per-client connection
        # bound, and shortens the GIL switch interval in each worker process; the loop (astrodash_asgi.event_loop)
        # takes new connections and the probes ahead of the work queued for other requests
        uvicorn.run("astrodash_asgi.app:create_app", factory=True, host=host, port=port, workers=max(1, workers),
                    log_level=log_level, log_config=log_config(log_level), access_log=False, proxy_headers=False,
                    server_header=False, http="astrodash_asgi.protocol:GuardedH11Protocol",
                    loop="astrodash_asgi.event_loop:loop_factory")
    finally:
        if made:
            os.environ.pop(STATE_FILE_VAR, None)
            if os.path.exists(made):
                os.unlink(made)
        if metrics_dir:
            import shutil

            os.environ.pop(METRICS_DIR_VAR, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
