"""Service settings: a dataclass read from ``ASTRODASH_*`` environment variables.

Every field can be set as ``ASTRODASH_<FIELD NAME IN UPPER CASE>``, e.g. ``ASTRODASH_MAX_FILE_BYTES=10000000``,
``ASTRODASH_CORS_ORIGINS=https://a.org,https://b.org``, ``ASTRODASH_TRUSTED_PROXIES=10.0.0.0/8``,
``ASTRODASH_STORAGE_URL=sqlite:////srv/astrodash/models.db``.  Lists are comma-separated; booleans are
``1/0``, ``true/false``, ``yes/no``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "ASTRODASH_"
MB = 1024 * 1024


def default_storage_url() -> str:
    """SQLite database under ``$XDG_DATA_HOME/astrodash`` (``~/.local/share/astrodash``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite:///" + str(Path(base) / "astrodash" / "models.db")


@dataclass
class Settings:
    # body and upload limits (bytes); enforced while the body streams in
    max_file_bytes: int = 50 * MB
    max_request_bytes: int = 100 * MB
    max_field_bytes: int = 1 * MB
    max_files: int = 1000
    # form fields (non-file parts): how many, and their total size
    max_form_fields: int = 100
    max_form_fields_bytes: int = 4 * MB
    # slow clients: request line + headers within header_timeout_s (astrodash serve); each body chunk within
    # body_timeout_s and, after that long, at least body_min_rate bytes/s on average; open connections per
    # client address (astrodash serve; 0 = no limit)
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    body_min_rate: float = 1024.0
    max_connections_per_client: int = 64
    # JSON in form fields and bodies (params, class_mapping, input_shape, PUT /models/{id}): size and depth
    json_max_bytes: int = 64 * 1024
    json_max_depth: int = 32
    # zip archives: entry count, total uncompressed size, compression ratio
    zip_max_entries: int = 10000
    zip_max_total_bytes: int = 512 * MB
    zip_max_ratio: float = 100.0
    # rate limiting: token bucket per client
    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 100
    trusted_proxies: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    storage_url: str = field(default_factory=default_storage_url)
    # the uploaded-model store's quota: total bytes of model files and number of models
    model_store_max_bytes: int = 1024 * MB
    model_store_max_count: int = 1000
    # dynamic micro-batching of /process (max_batch 1 turns it off)
    micro_batch_max: int = 32
    micro_batch_wait_ms: float = 5.0
    # overload: /process and /batch-process requests in progress at once before new ones get 503 + Retry-After
    max_pending_process: int = 32
    max_pending_batches: int = 2
    overload_retry_after_s: int = 2
    top_n: int = 5
    warmup: bool = True
    # batch jobs (/api/batch-processor): finished batches and their results are deleted after job_ttl seconds;
    # items per batch; items the engine takes at a time (a cancel stops a running batch within one chunk);
    # seconds between looks for work submitted to other server processes; how fast waiting raises a batch's
    # priority (see astrodash_asgi.jobs.scheduling)
    job_ttl: int = 7 * 24 * 3600
    job_max_items: int = 100_000
    job_chunk: int = 256
    job_poll_s: float = 0.5
    job_ageing_s: float = 30.0

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Defaults, then ``ASTRODASH_*`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f, raw)
        values.update(overrides)
        return cls(**values)


def _convert(f: dataclasses.Field, raw: str):
    kind = str(f.type)
    name = PREFIX + f.name.upper()
    try:
        if kind.startswith("list"):
            return [p.strip() for p in raw.split(",") if p.strip()]
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(float(raw))
        if kind == "float":
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind}") from None
