"""``POST /api/batch-processor/submit`` bodies (JSON or multipart) checked into a :class:`Submission`.

What is wrong with the request as a whole (no items, an unknown priority, bad params, a malformed batch id) is
a 422 naming the field; what is wrong with one item is that item's error when it runs.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field

from ..errors import ApiError, invalid
from ..params import Options, json_field, options_from
from ..zips import Archive, ZipLimits
from . import inputs
from .scheduling import PRIORITIES

BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
#: ``timeout_ms`` accepted range (one item's reading and classification)
TIMEOUT_MS = (1, 3_600_000)
#: params keys only the batch processor knows (the rest are /process's)
BATCH_PARAMS = ("includeSpectrum", "model_id")


@dataclass
class Submission:
    batch_id: str
    priority: str
    params: dict
    opts: Options
    timeout_ms: int | None
    metadata: dict
    items: list = field(default_factory=list)  # [{"request_id", "name", "input"}]
    archive: bytes | None = None  # a zip whose members are items (after ``items``)
    upload: dict | None = None  # or a complete resumable upload holding that zip (its record, with ``path``)
    digest: str = ""

    @property
    def include_spectrum(self) -> bool:
        return bool(self.params.get("includeSpectrum"))


def _batch_id(value) -> str:
    if value is None or value == "":
        return uuid.uuid4().hex
    if not isinstance(value, str) or not BATCH_ID.match(value):
        raise invalid("batch_id", "must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting "
                                  "with a letter or digit")
    return value


def _priority(value) -> str:
    if value is None or value == "":
        return "normal"
    if value not in PRIORITIES:
        raise invalid("priority", f"must be one of {', '.join(PRIORITIES)}, got {value!r}")
    return value


def _timeout(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        ms = int(value) if not isinstance(value, bool) and float(value) == int(float(value)) else None
    except (TypeError, ValueError):
        ms = None
    if ms is None or not TIMEOUT_MS[0] <= ms <= TIMEOUT_MS[1]:
        raise invalid("timeout_ms", f"must be a whole number of milliseconds from {TIMEOUT_MS[0]} to "
                                    f"{TIMEOUT_MS[1]}, got {value!r}")
    return ms


def _params(value, model_id: str | None = None) -> tuple[dict, Options]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise invalid("params", "must be a JSON object")
    model_id = value.get("model_id") or model_id
    if model_id is not None and not isinstance(model_id, str):
        raise invalid("model_id", "must be a model id (a string)")
    if value.get("oscRef"):
        raise invalid("oscRef", "is not supported in batches; classify catalogue spectra one at a time (/process)")
    include = value.get("includeSpectrum", False)
    if not isinstance(include, bool):
        raise invalid("includeSpectrum", f"must be true or false, got {include!r}")
    opts = options_from(value, (model_id or "").strip() or None)
    return {**value, "model_id": opts.model_id}, opts


def _metadata(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("metadata", "must be a JSON object")
    return value


def _digest(parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p if isinstance(p, bytes) else str(p).encode()).digest())
    return h.hexdigest()


def from_json(raw: bytes, max_bytes: int, max_depth: int, max_items: int) -> Submission:
    """A JSON submission: ``{"data": [{"input": ...}, ...], "priority", "batch_id", "timeout_ms", "metadata",
    "params"}``."""
    body = json_field("body", raw, max_bytes, max_depth)
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object with a data list")
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise invalid("data", "must be a non-empty list of {\"input\": ...} items")
    if len(data) > max_items:
        raise ApiError(413, f"data: {len(data)} items; at most {max_items} are accepted in one batch", field="data")
    params, opts = _params(body.get("params"))
    sub = Submission(_batch_id(body.get("batch_id")), _priority(body.get("priority")), params, opts,
                     _timeout(body.get("timeout_ms")), _metadata(body.get("metadata")))
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "input" not in item:
            raise invalid(f"data[{i}]", "must be an object with an input")
        rid, name = item.get("request_id"), item.get("name")
        for key, v in (("request_id", rid), ("name", name)):
            if v is not None and not isinstance(v, str):
                raise invalid(f"data[{i}].{key}", "must be a string")
        value = item["input"]
        name = name or inputs.array_name(value, f"item {i}")
        sub.items.append({"request_id": inputs.text((rid or str(i))[:128]), "name": inputs.text(name[:256]),
                          "input": inputs.array_input(value)})
    sub.digest = _digest([b"json", json.dumps(body, sort_keys=True, separators=(",", ":"))])
    return sub


def from_form(form, max_json_bytes: int, max_depth: int, max_items: int, zip_limits: ZipLimits,
              uploads=None) -> Submission:
    """A multipart submission: repeated ``files`` and/or one ``zip_file`` (or the ``upload_id`` of a complete
    resumable upload holding one, which ``uploads(upload_id)`` resolves), with ``params`` (JSON), ``priority``,
    ``batch_id``, ``timeout_ms``, ``metadata`` (JSON) and ``model_id`` fields.  ``zip_limits`` bound the archive;
    its entries count towards ``max_items`` with the files."""
    zips, files = form.files_named("zip_file"), form.files_named("files")
    upload_id = form.get("upload_id")
    if not zips and not files and not upload_id:
        raise invalid("files", "send one or more files and/or a zip_file (or the upload_id of a complete upload)")
    if len(zips) > 1 or (zips and upload_id):
        raise invalid("zip_file", "send one zip archive per batch (a zip_file or an upload_id)")
    upload = None
    if upload_id:
        if uploads is None:
            raise ApiError(503, "uploads unavailable: the storage backend does not hold them")
        upload = uploads(upload_id)
    raw_params = json_field("params", form.get("params"), max_json_bytes, max_depth)
    params, opts = _params(raw_params, (form.get("model_id") or "").strip() or None)
    metadata = _metadata(json_field("metadata", form.get("metadata"), max_json_bytes, max_depth))
    sub = Submission(_batch_id(form.get("batch_id")), _priority(form.get("priority")), params, opts,
                     _timeout(form.get("timeout_ms")), metadata)
    parts = [b"form", json.dumps({"params": params, "metadata": metadata, "priority": sub.priority,
                                  "batch_id": form.get("batch_id") or "", "timeout_ms": sub.timeout_ms},
                                 sort_keys=True)]
    for f in files:
        sub.items.append({"request_id": str(len(sub.items)), "name": f.filename,
                          "input": inputs.file_input(f.filename, f.data)})
        parts += [f.filename, f.data]
    if zips or upload is not None:
        # 400/413 for the whole archive, before anything is stored; an upload is read from its file
        if zips:
            source, zip_name = zips[0].data, zips[0].filename
        else:
            assert upload is not None
            source, zip_name = upload["path"], upload["filename"]
        archive = Archive(source, zip_name, zip_limits)
        try:
            for k, name in enumerate(archive.names()):
                sub.items.append({"request_id": str(len(sub.items)), "name": name,
                                  "input": inputs.member_input(k, name)})
        finally:
            archive.close()
        if zips:
            sub.archive = zips[0].data
            parts += [zips[0].filename, zips[0].data]
        elif upload is not None:
            sub.upload = upload
            parts += [upload["filename"], upload["sha256"]]
    if not sub.items:
        raise invalid("zip_file", "the archive holds no spectra")
    if len(sub.items) > max_items:
        raise ApiError(413, f"{len(sub.items)} items; at most {max_items} are accepted in one batch", field="files")
    sub.digest = _digest(parts)
    return sub
