"""``POST /api/v1/batch-process``: a ``zip_file`` or repeated ``files``; results keyed by file name.

The response is streamed: the archive's entries are cut out, still compressed, :data:`CHUNK` at a time in a
worker thread, and inflated, read, classified and encoded :data:`CALL` at a time where classification runs (a
classification worker process, unless configured otherwise, and the batch worker processes when there are
some, so a single request waits behind at most :data:`AHEAD` such calls of each running batch, one when the
batch workers take their share), and each chunk's ``"name": result`` pairs are sent as soon as
they are ready, so the server holds one chunk's spectra and results however large the batch, and the event
loop only forwards bytes.  The body is one JSON object (or msgpack map) in input order, exactly as if it had
been built whole.  The status is decided by the first chunk (a 503 when the model cannot be loaded); a later
chunk that fails unexpectedly reports ``{"error"}`` for each of its files instead of cutting the document
short.  Each chunk is classified while the one before it is being sent (one chunk ahead), so the
classification worker is not idle while a client reads, and a chunk's first parts are sent to it before the
chunk before them has finished, so it is not idle between chunks either.
"""
from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections import deque

import anyio.to_thread
import msgpack
from starlette.requests import Request
from starlette.responses import StreamingResponse

from astrodash_core.errors import ModelFileError

from .classification import encode_entries, encode_pairs
from .common import app_state, check_model, form_of, unavailable, unique_names
from .errors import ApiError, invalid
from .forms import UploadedFile
from .negotiation import JSON, MSGPACK, wants_msgpack
from .params import parse_params
from .zips import Archive, limits_from

CHUNK = 256
#: entries per call to where classification runs (a part of a chunk)
CALL = 64
#: parts of a batch sent and not yet answered, over all the runners it uses: the next part is cut out and sent
#: while the one before it is classified (with the batch worker processes: one on each)
AHEAD = 2
#: the cores this server may run on: shared out between the worker processes a batch's parts go to, each part
#: classifying on CORES // runners threads (two processes on two cores, each on one thread: a 1,000-file zip
#: 3,340 -> 3,990 spectra/s against each on two threads, four threads on two cores)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
log = logging.getLogger("astrodash.server")


class _Batch:
    """The batch's entries (archive members read lazily, or uploaded files) and how to encode its parts."""

    def __init__(self, state, opts, archive: Archive | None, files: list[UploadedFile], use_msgpack: bool):
        self.state, self.opts, self.archive, self.use_msgpack = state, opts, archive, use_msgpack
        self.files = files if archive is None else []  # the entries when there is no archive
        raw = archive.names() if archive is not None else [f.filename for f in files]
        self.names = unique_names(raw)
        self._calls: deque = deque()  # (start, stop, runner, call) of the parts sent and not yet taken, in order
        self._sent = 0  # the entries sent so far

    def __len__(self) -> int:
        return len(self.archive.infos) if self.archive is not None else len(self.files)

    def _entries(self, start: int, stop: int) -> list:
        if self.archive is not None:
            # compressed: inflated where they are read (a third of the bytes to send a classification worker)
            return [self.archive.member(i) for i in self.archive.infos[start:stop]]
        return [(f.filename, f.data, None) for f in self.files[start:stop]]

    def chunk(self, start: int, stop: int) -> bytes:
        """The encoded ``name: result`` pairs of entries [start, stop) (JSON: comma-led after the first), in a
        worker thread; the inflating, reading, classifying and encoding go where classification runs, :data:`CALL`
        entries at a time, each part cut out of the archive here while the part before it is classified.  At most
        :data:`AHEAD` parts are sent and not yet answered (a single request waits behind at most that many), and
        sending ahead runs on into the next chunk, so the classification worker is not left idle between chunks.
        Chunks are taken in order, one at a time; a chunk that fails drops what was sent ahead for it and after it."""
        while self._calls and self._calls[0][0] < start:
            self._calls.popleft()
        if not self._calls or self._calls[0][0] != start:  # the first chunk, or the one after a failed chunk
            self._calls.clear()
            self._sent = start
        parts, classified, done = [], 0, start
        try:
            while done < stop:
                self._send_ahead()
                _, done, _, call = self._calls.popleft()
                part, n = call.result()
                parts.append(part)
                classified += n
        except BaseException:
            self._calls.clear()  # e.g. a worker process lost: the next chunk sends its parts again
            raise
        self.state.metrics.classified("batch-process", 0, classified)
        return b"".join(parts)

    def _send_ahead(self) -> None:
        """Send parts until :data:`AHEAD` are in flight, or none is left, each to the runner with the fewest in
        flight (:meth:`~astrodash_asgi.state.AppState.part_runners`: the classification workers, and the batch
        workers when there are some, so with two they take turns, one part each).  A part never spans two
        chunks."""
        runners = self.state.part_runners()
        threads = max(1, CORES // len(runners))  # two processes at work on two cores: one thread each
        while len(self._calls) < AHEAD and self._sent < len(self):
            busy = [sum(1 for call in self._calls if call[2] is r) for r in runners]
            runner = runners[busy.index(min(busy))]
            i = self._sent
            j = min(i + CALL, (i // CHUNK + 1) * CHUNK, len(self))
            self._calls.append((i, j, runner, runner.submit(encode_entries, self._entries(i, j), self.names[i:j],
                                                            self.opts, self.state.settings.top_n, CALL, i == 0,
                                                            self.use_msgpack, threads)))
            self._sent = j

    def failed_chunk(self, start: int, stop: int, message: str) -> bytes:
        return encode_pairs({name: {"error": message} for name in self.names[start:stop]}, start == 0,
                            self.use_msgpack)

    def opening(self) -> bytes:
        return msgpack.Packer().pack_map_header(len(self)) if self.use_msgpack else b"{"

    def closing(self) -> bytes:
        return b"" if self.use_msgpack else b"}"


class _Ahead:
    """The encoded chunks of ``bounds`` in order, each started in a worker thread when the one before it is taken
    (:meth:`next`), so classification goes on while the event loop sends the previous chunk to a client that
    reads it; at most one chunk is being classified ahead of the one sent."""

    def __init__(self, batch: _Batch, bounds: list[tuple[int, int]]):
        self.batch, self.bounds = batch, list(bounds)
        self._future: asyncio.Future | None = None
        self._start()

    def _start(self) -> None:
        if not self.bounds:
            self._future = None
            return
        start, stop = self.bounds.pop(0)
        self._future = asyncio.get_running_loop().run_in_executor(None, self.batch.chunk, start, stop)
        # a chunk still running when the client goes away finishes unread: its error is not "never retrieved"
        self._future.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def next(self) -> bytes:
        """The next chunk's bytes (its exception raised); the chunk after it starts as this one is taken."""
        future = self._future
        if future is None:
            raise RuntimeError("no chunk left to classify")
        try:
            return await future
        finally:
            self._start()


async def batch_process(request: Request):
    state = await app_state(request)
    admission = state.admit("batch")  # held until the streamed body is finished (or dropped)
    try:
        return await _batch_process(request, state, admission)
    except BaseException:
        admission.release()
        raise


async def _batch_process(request: Request, state, admission):
    form = await form_of(request, state)
    model_id = (form.get("model_id") or "").strip() or None
    s = state.settings
    opts = parse_params(form.get("params"), model_id, s.json_max_bytes, s.json_max_depth)
    zips, files = form.files_named("zip_file"), form.files_named("files")
    if zips and files:
        raise invalid("zip_file", "send either zip_file or files, not both")
    if not zips and not files:
        raise invalid("files", "send a zip_file or one or more files")
    if len(zips) > 1:
        raise invalid("zip_file", "send one zip archive per request")
    await check_model(state, opts.model_id, opts.model_type)
    archive = None
    if zips:
        limits = limits_from(s, s.zip_max_entries)
        archive = await anyio.to_thread.run_sync(Archive, zips[0].data, zips[0].filename, limits)
    batch = _Batch(state, opts, archive, files, wants_msgpack(request.headers.get("accept", "")))
    del form, zips, files  # the chunks hold what they need; the archive keeps its own bytes
    request.state.spectra = len(batch)
    bounds = [(i, min(i + CHUNK, len(batch))) for i in range(0, len(batch), CHUNK)]
    try:  # the first chunk decides the status: a model that cannot be loaded is a 503, not a broken body
        first = await anyio.to_thread.run_sync(batch.chunk, *bounds[0]) if bounds else b""
    except ModelFileError as exc:
        raise unavailable(exc) from None
    ahead = _Ahead(batch, bounds[1:])  # the next chunk is classified while this one is sent

    async def body():
        try:
            yield batch.opening() + first
            for start, stop in bounds[1:]:
                try:
                    yield await ahead.next()
                except ApiError as exc:  # e.g. the archive inflating past its declared sizes
                    yield batch.failed_chunk(start, stop, str(exc.detail))
                except Exception as exc:  # noqa: BLE001 - never cut the document short
                    log.exception("batch chunk %d-%d failed", start, stop)
                    yield batch.failed_chunk(start, stop, f"not classified: {type(exc).__name__}")
            yield batch.closing()
        finally:
            admission.release()

    media = MSGPACK if batch.use_msgpack else JSON
    stream = body()
    weakref.finalize(stream, admission.release)  # a body never started (client gone first) releases too
    return StreamingResponse(stream, media_type=media, headers={"vary": "Accept"})
