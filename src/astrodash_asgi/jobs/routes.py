"""The batch-processor HTTP API over the job engine: submit, status, results, list, cancel.

A batch belongs to the API key that submitted it (``request.state.api_key``; everyone's when keys are off) and
is visible only to that key.
"""
from __future__ import annotations

import time

import anyio.to_thread
from starlette.requests import HTTPConnection, Request
from starlette.responses import StreamingResponse

from astrodash_core.hookspecs import BATCH_ACTIVE, BATCH_STATUSES, BatchExists, IdempotencyMismatch

from ..common import app_state, check_model, form_of
from ..errors import ApiError, invalid, not_found
from ..negotiation import respond
from ..uploads import resolve as resolve_upload
from ..zips import limits_from
from . import export, submit

PREFIX = "/api/batch-processor"
PAGE = (1, 1000, 100)  # limit: least, most, default
IDEMPOTENCY_HEADERS = ("idempotency-key", "x-idempotency-key")
MAX_OFFSET = 2 ** 62


def owner_of(request: HTTPConnection) -> str:
    return getattr(request.state, "api_key", None) or ""


async def _engine(request: Request):
    state = await app_state(request)
    engine = state.engine
    engine.ensure_running()
    return state, engine, engine.store


async def _batch(request: Request, store, batch_id: str) -> dict:
    batch = await anyio.to_thread.run_sync(store.get_batch, batch_id)
    if batch is None or batch["owner"] != owner_of(request):
        raise not_found(f"batch {batch_id!r} not found")
    return batch


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return PAGE[2]
    if not raw.isdigit() or not PAGE[0] <= int(raw) <= PAGE[1]:
        raise invalid("limit", f"must be a whole number from {PAGE[0]} to {PAGE[1]}, got {raw!r}")
    return int(raw)


async def _view(engine, store, batch: dict) -> dict:
    return await anyio.to_thread.run_sync(engine.current_view, store, batch)


# --- submit ---------------------------------------------------------------------------------------------------
async def _submission(request: Request, state) -> submit.Submission:
    s = state.settings
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await request.body()
        return await anyio.to_thread.run_sync(submit.from_json, raw, s.max_request_bytes, s.json_max_depth,
                                              s.job_max_items)
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await form_of(request, state)
        limits = limits_from(s, s.job_max_items)
        store = state.engine.store
        uploads = (lambda uid: resolve_upload(store, uid, owner_of(request))) \
            if getattr(store, "get_upload", None) is not None else None
        return await anyio.to_thread.run_sync(submit.from_form, form, s.json_max_bytes, s.json_max_depth,
                                              s.job_max_items, limits, uploads)
    raise ApiError(415, f"send application/json or multipart/form-data, not {kind or 'no content type'!r}")


def _idempotency_key(request: Request) -> str | None:
    for name in IDEMPOTENCY_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            value = value.strip()
            if not 1 <= len(value) <= 255:
                raise invalid(name, "must be 1-255 characters")
            return value
    return None


def _store_batch(store, sub: submit.Submission, owner: str, key: str | None):
    archive = store.save_archive(sub.batch_id, sub.archive) if sub.archive is not None else None
    if sub.upload is not None:  # the upload's file becomes the archive (linked; the upload stays until stored)
        archive = store.link_upload(sub.upload["id"], sub.batch_id)
    record = {"id": sub.batch_id, "owner": owner, "priority": sub.priority, "params": sub.params,
              "opts_key": repr(sub.opts.batch_key),
              "metadata": sub.metadata, "timeout_ms": sub.timeout_ms, "archive": archive}
    try:
        batch, created = store.create_batch(record, sub.items, (key, sub.digest) if key else None)
    except BaseException:
        store.drop_archive(archive)
        raise
    if not created and batch.get("archive") != archive:
        store.drop_archive(archive)
    if created and sub.upload is not None:
        store.finish_upload(sub.upload["id"], sub.batch_id)
    return batch, created


async def submit_batch(request: Request):
    state, engine, store = await _engine(request)
    key = _idempotency_key(request)
    sub = await _submission(request, state)
    await check_model(state, sub.opts.model_id, sub.opts.model_type)
    try:
        batch, created = await anyio.to_thread.run_sync(_store_batch, store, sub, owner_of(request), key)
    except BatchExists:
        raise ApiError(409, f"batch_id: a batch {sub.batch_id!r} already exists", field="batch_id") from None
    except IdempotencyMismatch as exc:
        raise ApiError(422, f"Idempotency-Key: {exc}", field="Idempotency-Key") from None
    del sub
    request.state.spectra = batch["total"]
    engine.wake()
    view = await _view(engine, store, batch)
    body = {k: view[k] for k in ("batch_id", "status", "estimated_completion_time", "queue_position")}
    body["request_count"] = batch["total"]
    location = f"{request.scope.get('root_path', '')}{PREFIX}/status/{batch['id']}"
    headers = {"location": location}
    if not created:
        headers["idempotent-replayed"] = "true"
    return respond(request, body, status_code=202, headers=headers)


# --- read -----------------------------------------------------------------------------------------------------
async def status(request: Request):
    _, engine, store = await _engine(request)
    batch = await _batch(request, store, request.path_params["batch_id"])
    return respond(request, await _view(engine, store, batch))


async def results(request: Request):
    _, engine, store = await _engine(request)
    batch = await _batch(request, store, request.path_params["batch_id"])
    media = export.streamed_media(request.headers.get("accept", ""))
    if media is not None:
        return _stream(store, batch, media)
    limit = _limit(request)
    cursor, offset = request.query_params.get("cursor"), request.query_params.get("offset")
    if cursor is not None and offset is not None:
        raise invalid("cursor", "send either cursor or offset, not both")
    after = 0
    if cursor:
        try:
            after = export.decode_cursor(cursor)
        except ValueError as exc:
            raise invalid("cursor", str(exc)) from None
    elif offset is not None:
        if not offset.isdigit() or int(offset) > MAX_OFFSET:
            raise invalid("offset", f"must be a whole number from 0 to {MAX_OFFSET}, got {offset!r}")
        after = int(offset)
    rows = await anyio.to_thread.run_sync(store.results, batch["id"], after, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    records = await anyio.to_thread.run_sync(lambda: [export.record(r) for r in rows])
    done = batch["completed"] + batch["failed"]
    body = {"batch_id": batch["id"], "status": batch["status"], "results": records,
            "cursor": export.encode_cursor(rows[-1]["seq"]) if has_more and rows else None,
            "has_more": has_more, "total_count": done,
            "metadata": {"total_processing_time_ms": round(batch["processing_ms"], 3),
                         "average_per_request_ms": round(batch["processing_ms"] / done, 3) if done else None,
                         "batch_size": batch["total"]}}
    return respond(request, body)


def _stream(store, batch: dict, media: str):
    def pages():
        after = 0
        while True:
            rows = store.results(batch["id"], after, export.STREAM_PAGE)
            if not rows:
                return
            after = rows[-1]["seq"]
            yield [export.record(r) for r in rows]
            if len(rows) < export.STREAM_PAGE:
                return

    chunks = export.stream(pages(), media)

    async def body():
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                return
            yield chunk

    disposition = {"content-disposition": f'attachment; filename="{batch["id"]}.csv"'} if media == export.CSV else {}
    return StreamingResponse(body(), media_type=media, headers={"vary": "Accept", **disposition})


async def list_batches(request: Request):
    _, engine, store = await _engine(request)
    wanted = request.query_params.get("status")
    statuses: tuple[str, ...] | None = None
    if wanted:
        chosen: list[str] = []
        for s in wanted.split(","):
            s = s.strip()
            if s == "active":
                chosen += BATCH_ACTIVE
            elif s in BATCH_STATUSES:
                chosen.append(s)
            else:
                raise invalid("status", f"{s!r} is not one of active, {', '.join(BATCH_STATUSES)}")
        statuses = tuple(dict.fromkeys(chosen))
    limit = _limit(request)
    after = None
    cursor = request.query_params.get("cursor")
    if cursor:
        try:
            after = export.decode_batch_cursor(cursor)
        except ValueError as exc:
            raise invalid("cursor", str(exc)) from None
    rows = await anyio.to_thread.run_sync(lambda: store.list_batches(statuses, owner_of(request), limit + 1, after))
    has_more = len(rows) > limit
    rows = rows[:limit]
    now = time.time()
    places = engine.queue_places(await anyio.to_thread.run_sync(engine.active, store), now)
    next_cursor = export.encode_batch_cursor(rows[-1]["created_at"], rows[-1]["id"]) if has_more and rows else None
    return respond(request, {"batches": [engine.view(b, places, now) for b in rows], "cursor": next_cursor,
                             "has_more": has_more})


async def cancel(request: Request):
    _, engine, store = await _engine(request)
    batch = await _batch(request, store, request.path_params["batch_id"])
    if batch["status"] in ("completed", "failed"):
        raise ApiError(409, f"batch {batch['id']!r} is already {batch['status']}")
    batch = await anyio.to_thread.run_sync(store.cancel, batch["id"])
    return respond(request, await _view(engine, store, batch))
