"""Resumable uploads (``/api/v1/uploads``): an archive larger than one request may carry, sent in chunks.

``POST /api/v1/uploads`` with ``{"total_size", "sha256"?, "filename"?}`` reserves room and answers the
``upload_id``; ``PATCH /api/v1/uploads/{id}`` with ``Content-Range: bytes START-END/TOTAL`` appends one chunk,
which must start where the bytes received so far end (``Upload-Offset``); ``HEAD``/``GET`` tell that offset, so an
interrupted client resumes from it; ``DELETE`` abandons the upload.  A chunk is kept whole or not at all (one cut
short leaves the offset where it was).  Once the last byte is in, the file's size and SHA-256 (when one was
declared) are checked: a mismatch empties the upload so it can be sent again.  A complete upload becomes a batch by
sending its ``upload_id`` to ``POST /api/batch-processor/submit`` in place of a ``zip_file``.

Bounds: ``ASTRODASH_UPLOAD_MAX_BYTES`` per upload (413), ``ASTRODASH_UPLOAD_MAX_TOTAL_BYTES`` over every open
upload (507), and ``ASTRODASH_UPLOAD_TTL`` seconds after its last chunk an upload expires and its file is
deleted.  The bytes live beside the job store's archives; a chunk is written under an exclusive lock on the
upload's file, so two writers (in any worker) never interleave.  With API keys, an upload belongs to its key.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import uuid

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request

from astrodash_core.hookspecs import UploadSpaceError

from .errors import ApiError, invalid, not_found
from .forms import read_small_body
from .jobs.engine import iso
from .negotiation import respond
from .params import json_field

PREFIX = "/api/v1/uploads"
RANGE_RE = re.compile(r"^bytes (\d{1,19})-(\d{1,19})/(\d{1,19}|\*)$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
FILENAME_RE = re.compile(r"^[^/\\\0]{1,255}$")
WRITE_BUFFER = 1024 * 1024


def _owner(request: Request) -> str:
    return getattr(request.state, "api_key", None) or ""


def _store(request: Request):
    store = request.app.state.astrodash.engine.store
    if getattr(store, "create_upload", None) is None:
        raise ApiError(503, "uploads unavailable: the storage backend does not hold them")
    return store


def view(u: dict, root: str = "") -> dict:
    return {"upload_id": u["id"], "filename": u["filename"], "total_size": u["total_size"], "offset": u["received"],
            "complete": u["status"] in ("complete", "submitted"), "status": u["status"], "sha256": u["sha256"],
            "batch_id": u["batch_id"], "created_at": iso(u["created_at"]), "expires_at": iso(u["expires_at"]),
            "location": f"{root}{PREFIX}/{u['id']}"}


def _headers(u: dict) -> dict:
    return {"upload-offset": str(u["received"]), "upload-length": str(u["total_size"]), "cache-control": "no-store"}


async def _upload(request: Request, store) -> dict:
    upload_id = request.path_params["upload_id"]
    u = await anyio.to_thread.run_sync(store.get_upload, upload_id)
    if u is None or u["owner"] != _owner(request):
        raise not_found(f"upload {upload_id!r} not found (never made, deleted, or expired after "
                        "ASTRODASH_UPLOAD_TTL)")
    return u


# --- create --------------------------------------------------------------------------------------------------------
def _creation(body, max_bytes: int) -> dict:
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object {total_size, sha256?, filename?}")
    for key in body:
        if key not in ("total_size", "sha256", "filename"):
            raise invalid(str(key), "is not a field of an upload (total_size, sha256, filename)")
    size = body.get("total_size")
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise invalid("total_size", f"must be a whole number of bytes, at least 1, got {size!r}")
    sha = body.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not SHA256_RE.fullmatch(sha.lower())):
        raise invalid("sha256", "must be 64 hexadecimal digits (the SHA-256 of the whole file)")
    name = body.get("filename", "upload.zip")
    if not isinstance(name, str) or not FILENAME_RE.fullmatch(name):
        raise invalid("filename", "must be a file name of 1-255 characters, without '/', '\\' or NUL")
    if size > max_bytes:  # after the checks of form, so a malformed request is a 422 whatever its size
        raise ApiError(413, f"total_size: {size} bytes; at most {max_bytes} are accepted "
                            "(ASTRODASH_UPLOAD_MAX_BYTES)", field="total_size")
    return {"total_size": size, "sha256": sha.lower() if sha else None, "filename": name}


async def create(request: Request):
    s = request.app.state.astrodash.settings
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"send application/json, not {kind or 'no content type'!r}")
    body = json_field("body", await read_small_body(request, s.max_field_bytes), s.json_max_bytes, s.json_max_depth)
    fields = _creation(body, s.upload_max_bytes)
    store = _store(request)
    record = {"id": uuid.uuid4().hex, "owner": _owner(request), **fields}
    try:
        u = await anyio.to_thread.run_sync(store.create_upload, record, float(s.upload_ttl),
                                           s.upload_max_total_bytes)
    except UploadSpaceError as exc:
        raise ApiError(507, f"no room for {fields['total_size']} more bytes: {exc} "
                            "(ASTRODASH_UPLOAD_MAX_TOTAL_BYTES); finish or delete other uploads") from None
    out = view(u, request.scope.get("root_path", ""))
    return respond(request, out, status_code=201, headers={**_headers(u), "location": out["location"]})


# --- read, delete ----------------------------------------------------------------------------------------------------
async def resource(request: Request):
    """``GET``/``HEAD`` (the offset), ``PATCH`` (a chunk) and ``DELETE`` on one upload."""
    handler = {"GET": status, "HEAD": status, "PATCH": append, "DELETE": delete}[request.method]
    return await handler(request)


async def status(request: Request):
    u = await _upload(request, _store(request))
    return respond(request, view(u, request.scope.get("root_path", "")), headers=_headers(u))


async def delete(request: Request):
    store = _store(request)
    u = await _upload(request, store)
    await anyio.to_thread.run_sync(store.delete_upload, u["id"])
    return respond(request, {"upload_id": u["id"], "deleted": True})


# --- append a chunk --------------------------------------------------------------------------------------------------
def _range(request: Request, total: int) -> tuple[int, int]:
    raw = request.headers.get("content-range")
    if raw is None:
        raise invalid("Content-Range", "send the chunk's place as Content-Range: bytes START-END/TOTAL")
    m = RANGE_RE.fullmatch(raw.strip())
    if not m:
        raise invalid("Content-Range", f"must read bytes START-END/TOTAL (END inclusive), got {raw!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise invalid("Content-Range", f"END ({end}) is before START ({start})")
    if m.group(3) != "*" and int(m.group(3)) != total:
        raise ApiError(416, f"Content-Range: TOTAL {m.group(3)} is not the upload's declared size {total}",
                       headers={"content-range": f"bytes */{total}"}, field="Content-Range")
    if end >= total:
        raise ApiError(416, f"Content-Range: bytes {start}-{end} lie outside the declared size ({total} bytes: "
                            f"0-{total - 1})", headers={"content-range": f"bytes */{total}"}, field="Content-Range")
    return start, end


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(WRITE_BUFFER):
            h.update(chunk)
    return h.hexdigest()


class _Locked:
    """The upload's file, opened for appending under an exclusive, non-blocking lock (409 when held)."""

    def __init__(self, path: str, upload_id: str):
        self.path, self.upload_id = path, upload_id

    def __enter__(self):
        try:
            self.fh = open(self.path, "r+b")
        except FileNotFoundError:
            raise not_found(f"upload {self.upload_id!r} not found (its file is gone)") from None
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise ApiError(409, f"another chunk of upload {self.upload_id!r} is being written; wait for it and "
                                "ask for the offset again") from None
        return self.fh

    def __exit__(self, *exc):
        fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
        self.fh.close()


async def append(request: Request):
    s = request.app.state.astrodash.settings
    store = _store(request)
    u = await _upload(request, store)
    if u["status"] != "open":
        raise ApiError(409, f"upload {u['id']!r} is {u['status']}" + (f" (batch {u['batch_id']})" if u["batch_id"]
                                                                      else "") + "; it takes no more chunks",
                       headers=_headers(u))
    start, end = _range(request, u["total_size"])
    length = end - start + 1
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != length:
        raise invalid("Content-Length", f"{declared} bytes do not fill Content-Range bytes {start}-{end} "
                                        f"({length} bytes)")
    ttl = float(s.upload_ttl)
    locked = _Locked(store.upload_file(u["id"]), u["id"])
    fh = await anyio.to_thread.run_sync(locked.__enter__)
    try:
        size = os.fstat(fh.fileno()).st_size  # the truth: what earlier chunks wrote, whatever the record says
        if start != size:
            what = "overlaps bytes already received" if start < size else "leaves a gap after the bytes received"
            raise ApiError(409, f"Content-Range: a chunk at {start} {what}; resume at {size} (Upload-Offset)",
                           headers={**_headers({**u, "received": size})}, field="Content-Range", offset=size)
        await anyio.to_thread.run_sync(store.record_upload, u["id"], size, ttl)  # a long chunk keeps it alive
        fh.seek(start)
        got = await _write_body(request, fh, start, length)
        if got != length:
            await anyio.to_thread.run_sync(fh.truncate, start)
            raise invalid("body", f"{got} bytes for Content-Range bytes {start}-{end} ({length} bytes); nothing "
                                  f"of this chunk was kept")
        received = start + length
        complete, digest = received == u["total_size"], None
        if complete:
            digest = await anyio.to_thread.run_sync(_sha256, locked.path)
            if u["sha256"] and digest != u["sha256"]:
                await anyio.to_thread.run_sync(fh.truncate, 0)
                await anyio.to_thread.run_sync(store.record_upload, u["id"], 0, ttl)
                raise ApiError(422, f"sha256: the {received} bytes received hash to {digest}, not the declared "
                                    f"{u['sha256']}; the upload was emptied, send it again from 0",
                               field="sha256", headers=_headers({**u, "received": 0}))
        upload_id = u["id"]
        u = await anyio.to_thread.run_sync(lambda: store.record_upload(upload_id, received, ttl, complete, digest))
        if u is None:  # deleted (or expired) while this chunk was written
            raise not_found(f"upload {upload_id!r} not found (deleted while the chunk was written)")
    finally:
        await anyio.to_thread.run_sync(locked.__exit__, None, None, None)
    return respond(request, view(u, request.scope.get("root_path", "")), headers=_headers(u))


async def _write_body(request: Request, fh, start: int, length: int) -> int:
    """Append the body (at most ``length`` bytes, else 413 and nothing kept); the bytes it had.  A client that
    goes away mid-chunk leaves nothing of it."""
    got, buf = 0, bytearray()
    try:
        async for part in request.stream():
            got += len(part)
            if got > length:
                await anyio.to_thread.run_sync(fh.truncate, start)
                raise ApiError(413, f"body: more than the {length} bytes of its Content-Range; nothing of this "
                                    "chunk was kept", field="body")
            buf += part
            if len(buf) >= WRITE_BUFFER:
                data, buf = bytes(buf), bytearray()
                await anyio.to_thread.run_sync(fh.write, data)
        if buf:
            await anyio.to_thread.run_sync(fh.write, bytes(buf))
        await anyio.to_thread.run_sync(_flush_to_disk, fh)
    except ClientDisconnect:
        await anyio.to_thread.run_sync(fh.truncate, start)
        raise ApiError(400, "body: the client went away mid-chunk; nothing of this chunk was kept",
                       field="body") from None
    return got


# --- a complete upload as a batch archive ------------------------------------------------------------------------------
def resolve(store, upload_id: str, owner: str) -> dict:
    """The complete upload ``upload_id`` of ``owner`` (for submit); 404, or 409 when it is not complete or was
    submitted already.  Call it from a worker thread."""
    if not isinstance(upload_id, str) or not re.fullmatch(r"[0-9a-f]{32}", upload_id):
        raise invalid("upload_id", "must be the upload_id POST /api/v1/uploads answered")
    u = store.get_upload(upload_id)
    if u is None or u["owner"] != owner:
        raise ApiError(404, f"upload_id: upload {upload_id!r} not found (never made, deleted, or expired)",
                       field="upload_id")
    if u["status"] == "submitted":
        raise ApiError(409, f"upload_id: upload {upload_id!r} was submitted already, as batch {u['batch_id']!r}",
                       field="upload_id", batch_id=u["batch_id"])
    if u["status"] != "complete":
        raise ApiError(409, f"upload_id: upload {upload_id!r} has {u['received']} of {u['total_size']} bytes; "
                            "send the rest first", field="upload_id")
    return {**u, "path": store.upload_file(upload_id)}


def _flush_to_disk(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())
