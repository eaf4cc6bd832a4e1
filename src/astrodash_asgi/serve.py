"""``astrodash serve``: the API on uvicorn, one JSON access-log line per request on stderr."""
from __future__ import annotations

import copy

SWITCH_INTERVAL_S = 0.001


def log_config(level: str = "info") -> dict:
    """uvicorn's logging configuration plus the ``astrodash`` loggers (access lines are JSON already)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["astrodash"] = {"format": "%(message)s"}
    config["handlers"]["astrodash"] = {"class": "logging.StreamHandler", "formatter": "astrodash",
                                       "stream": "ext://sys.stderr"}
    config["loggers"]["astrodash"] = {"handlers": ["astrodash"], "level": level.upper(), "propagate": False}
    return config


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the app (settings from ``ASTRODASH_*`` variables); ``workers > 1`` starts that many processes."""
    import sys

    import uvicorn

    # the event loop shares the GIL with the worker threads that parse and classify: a shorter switch interval
    # (5 ms by default) lets it take the GIL back sooner, so /health and small requests stay quick during a batch
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run("astrodash_asgi.app:create_app", factory=True, host=host, port=port, workers=max(1, workers),
                log_level=log_level, log_config=log_config(log_level), access_log=False, proxy_headers=False,
                server_header=False)
