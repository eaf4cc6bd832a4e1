"""Service settings: a dataclass read from ``ASTRODASH_*`` environment variables.

Every field can be set as ``ASTRODASH_<FIELD NAME IN UPPER CASE>``, e.g. ``ASTRODASH_MAX_FILE_BYTES=10000000``,
``ASTRODASH_CORS_ORIGINS=https://a.org,https://b.org``, ``ASTRODASH_TRUSTED_PROXIES=10.0.0.0/8``,
``ASTRODASH_STORAGE_URL=sqlite:////srv/astrodash/models.db``.  Lists are comma-separated; booleans are
``1/0``, ``true/false``, ``yes/no``, ``on/off``; numbers are not negative.

Mistakes stop start-up (:class:`SettingsError`): an ``ASTRODASH_*`` variable that is neither a field nor one of
:data:`OTHER_VARIABLES` (read elsewhere) is named with the closest known name, and a malformed value is named
with the form expected.  :func:`describe` lists the effective settings and where each came from.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "ASTRODASH_"
MB = 1024 * 1024

#: ``ASTRODASH_*`` variables read outside :class:`Settings` (by the library, the command line and the built-in
#: plugins): known names, so they are not refused, but not settings of the server.
OTHER_VARIABLES = {
    "ASTRODASH_DATA": "template spectra folder for training and evaluation (astrodash_core.training)",
    "ASTRODASH_PLUGINS": "which external plugins load (astrodash_core.plugins)",
    "ASTRODASH_TRANSFORMER_MODEL": "the transformer's model file, instead of astrodash_core/data's (astrodash_plugins.models)",
    "ASTRODASH_OSC_URL": "supernova catalogue base URL or folder (astrodash_plugins.catalogues)",
    "ASTRODASH_CATALOGUE_TIMEOUT": "seconds per catalogue request (astrodash_plugins.catalogues)",
    "ASTRODASH_CATALOGUE_MAX_BYTES": "largest catalogue answer (astrodash_plugins.catalogues)",
    "ASTRODASH_TNS_BOT_ID": "Transient Name Server bot id (astrodash_plugins.catalogues.tns)",
    "ASTRODASH_TNS_BOT_NAME": "Transient Name Server bot name (astrodash_plugins.catalogues.tns)",
    "ASTRODASH_TNS_API_KEY": "Transient Name Server bot API key (astrodash_plugins.catalogues.tns)",
    "ASTRODASH_TNS_URL": "Transient Name Server base URL, default https://www.wis-tns.org "
                         "(astrodash_plugins.catalogues.tns)",
}


class SettingsError(ValueError):
    """An unknown ``ASTRODASH_*`` variable or a malformed value; the message names the variable."""


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
    # a file the worker processes share the buckets through (astrodash serve --workers N makes one for its
    # workers; set it to share them between servers of one host; empty: each process counts on its own)
    rate_limit_state_file: str = ""
    # API keys (off by default): X-API-Key on every request but the probes and the API description; keys from
    # api_keys_file and from the storage plugin (astrodash keys add), re-read every api_keys_refresh_s seconds;
    # with keys on, each key also has its own bucket of rate_limit_per_key requests a minute (0: none)
    require_api_key: bool = False
    api_keys_file: str = ""
    api_keys_refresh_s: float = 1.0
    rate_limit_per_key: int = 600
    # GET /metrics (Prometheus): with API keys on it needs a key with the admin scope, unless this opens it to
    # every client (then keep it off the public side of the reverse proxy)
    metrics_public: bool = False
    trusted_proxies: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    storage_url: str = field(default_factory=default_storage_url)
    # the uploaded-model store's quota: total bytes of model files and number of models
    model_store_max_bytes: int = 1024 * MB
    model_store_max_count: int = 1000
    # dynamic micro-batching of /process (max_batch 1 turns it off)
    micro_batch_max: int = 32
    # a batch that could start waits this long for more requests; none (the default): 0 with classification
    # worker processes (a batch starts at once, and requests arriving while micro_batch_in_flight batches are
    # under way form the next one), 5 when classification runs in this process's threads
    micro_batch_wait_ms: float | None = None
    # batches under way at once; 0: classify_processes + 2 (the event loop reads and answers some batches'
    # requests while the worker processes classify another, and each finds its next batch queued), or 1 when
    # classification runs in this process's threads (they would compete with each other and the event loop)
    micro_batch_in_flight: int = 0
    # classification worker processes per server process: reading, preprocessing, inference and the building
    # and encoding of answers run there, so the event loop only does HTTP; 0 classifies in worker threads of
    # the server process (as an app given its own classifier object always does)
    classify_processes: int = 1
    # worker processes of their own for /batch-process: a batch's parts alternate between them and the
    # classification worker processes, so a batch uses both cores of a 2-core machine while single requests keep
    # their micro-batches in the classification processes; 0: none (each holds the models, ~240 MB); not used
    # when classification runs in the server process's threads
    batch_processes: int = 1
    # overload: /process and /batch-process requests in progress at once before new ones get 503 + Retry-After
    max_pending_process: int = 32
    max_pending_batches: int = 2
    overload_retry_after_s: int = 2
    # a kept-alive connection whose /process or /batch-process was refused with that 503 is not read again for
    # this many seconds (astrodash serve), so clients retrying at once cannot keep the event loop busy with
    # refusals; 0 reads on at once
    overload_pause_s: float = 1.0
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
    # the /process result cache (per worker process): entries and bytes of encoded answers (0 turns it off)
    result_cache_max_entries: int = 1024
    result_cache_max_bytes: int = 64 * MB
    # start-up (when the ASGI server runs the app's lifespan, as astrodash serve does): a model that cannot be
    # loaded or a model store that cannot be opened stops it; false starts degraded (/ready says why)
    strict_startup: bool = True
    # resumable uploads (/api/v1/uploads): the largest upload, the bytes every open upload may hold together,
    # and the seconds after its last chunk an unfinished or unsubmitted upload is deleted
    upload_max_bytes: int = 512 * MB
    upload_max_total_bytes: int = 4096 * MB
    upload_ttl: int = 24 * 3600
    # freed memory each astrodash serve process and classification worker process keeps for reuse instead of
    # giving it back to the system, at the top of each glibc heap (astrodash_asgi.allocator): a zip batch's parts
    # then reuse the same pages instead of faulting fresh ones in; 0 keeps glibc's defaults
    malloc_keep_bytes: int = 256 * MB
    # /ready answers 503 while more than this many batch-job items wait in the queue
    ready_max_queue: int = 1_000_000
    # /ready's store and queue checks run in the background every this many seconds and /ready answers from
    # the newest (checking itself when that is older than twice this); 0 checks on every /ready
    ready_check_s: float = 1.0

    @classmethod
    def from_env(cls, environ=None, strict: bool = True, **overrides) -> "Settings":
        """Defaults, then ``ASTRODASH_*`` variables, then ``overrides``; :class:`SettingsError` for a malformed
        value and (``strict``) for an ``ASTRODASH_*`` variable nobody reads."""
        environ = os.environ if environ is None else environ
        if strict:
            check_environment(environ)
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f, raw)
        values.update(overrides)
        return cls(**values)


def variable(field_name: str) -> str:
    """The environment variable of a settings field: ``max_file_bytes`` -> ``ASTRODASH_MAX_FILE_BYTES``."""
    return PREFIX + field_name.upper()


def known_variables() -> set[str]:
    """Every ``ASTRODASH_*`` name something reads: the fields of :class:`Settings` and :data:`OTHER_VARIABLES`."""
    return {variable(f.name) for f in dataclasses.fields(Settings)} | set(OTHER_VARIABLES)


def unknown_variables(environ=None) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) for each ``ASTRODASH_*`` variable in ``environ`` nobody reads."""
    environ = os.environ if environ is None else environ
    known = known_variables()
    out = []
    for name in sorted(environ):
        if name.upper().startswith(PREFIX) and name not in known:
            # compared without the shared prefix, which would make every name look alike
            close = difflib.get_close_matches(name.upper()[len(PREFIX):], sorted(k[len(PREFIX):] for k in known),
                                              n=1, cutoff=0.6)
            out.append((name, PREFIX + close[0] if close else None))
    return out


def check_environment(environ=None) -> None:
    """:class:`SettingsError` naming every unknown ``ASTRODASH_*`` variable (and what it may have meant)."""
    unknown = unknown_variables(environ)
    if unknown:
        parts = [f"{name} (did you mean {close}?)" if close else name for name, close in unknown]
        raise SettingsError(f"unknown setting{'s' if len(parts) > 1 else ''} {', '.join(parts)}: astrodash reads "
                            "no such variable; unset it or correct its name (docs/http.md lists the settings)")


def describe(environ=None) -> list[dict]:
    """The effective settings: ``{"variable", "value", "source"}`` per field (source ``environment`` or
    ``default``), then the :data:`OTHER_VARIABLES` that are set (source ``environment``)."""
    environ = os.environ if environ is None else environ
    settings = Settings.from_env(environ)
    rows = []
    for f in dataclasses.fields(Settings):
        name = variable(f.name)
        rows.append({"variable": name, "value": _show(f.name, getattr(settings, f.name)),
                     "source": "environment" if name in environ else "default"})
    for name in sorted(OTHER_VARIABLES):
        if name in environ:
            rows.append({"variable": name, "value": environ[name], "source": "environment",
                         "note": OTHER_VARIABLES[name]})
    return rows


def _show(name: str, value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if name.endswith("_url") and isinstance(value, str) and "@" in value:  # never print a password
        scheme, _, rest = value.partition("://")
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else value
    return str(value)


def _expected(kind: str) -> str:
    if kind.startswith("list"):
        return "a comma-separated list"
    return {"bool": "true or false (also 1/0, yes/no, on/off)", "int": "a whole number, not negative, e.g. 600",
            "float": "a number, not negative, e.g. 2.5"}.get(kind, "text")


def _convert(f: dataclasses.Field, raw: str):
    typ = str(f.type)
    optional = typ.endswith(" | None")
    kind = typ[: -len(" | None")] if optional else typ
    name = variable(f.name)
    if optional and raw.strip().lower() in ("", "none"):
        return None
    try:
        value = _parse(kind, raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is malformed: expected {_expected(kind)}") from None
    check = _CHECKS.get(f.name)
    try:
        if check is not None:
            check(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is malformed: expected {_CHECK_FORMS[f.name]} ({exc})") from None
    return value


def _parse(kind: str, raw: str):
    if kind.startswith("list"):
        return [p.strip() for p in raw.split(",") if p.strip()]
    text = raw.strip()
    if kind == "bool":
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind == "int":
        x = float(text)  # "1e6" is a whole number too
        if not x.is_integer():
            raise ValueError(raw)
        if x < 0:
            raise ValueError(raw)
        return int(x)
    if kind == "float":
        x = float(text)
        if not x == x or x in (float("inf"), float("-inf")) or x < 0:
            raise ValueError(raw)
        return x
    return raw


def _check_networks(items) -> None:
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or network") from None


def _check_url(url: str) -> None:
    scheme, sep, rest = url.partition(":")
    if not sep or not scheme.isalnum() or not rest.strip("/"):
        raise ValueError(url)


_CHECKS = {"trusted_proxies": _check_networks, "storage_url": _check_url}
_CHECK_FORMS = {"trusted_proxies": "comma-separated addresses or networks such as 10.0.0.0/8,192.168.1.7",
                "storage_url": "a URL such as sqlite:////srv/astrodash/models.db or file:///srv/astrodash"}
