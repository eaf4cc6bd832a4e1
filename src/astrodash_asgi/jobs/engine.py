"""The batch-job engine: one per server process, running stored batches through the app's micro-batcher.

It loops: lease a chunk of queued items from the job store (the batch chosen by :mod:`.scheduling`, filled up
with items of other batches that have the same model and options), read them, classify them through the same
:class:`~astrodash_asgi.batching.MicroBatcher` as ``/process`` (so concurrent requests and batches share forward
passes), and store the results, all in one transaction per chunk.  Every server process runs one; the store's
leases make sure each item runs once.  Items leased by a process that died are queued again (at once for a
process of this host that is gone, after the lease otherwise), so after a crash and a restart every accepted
batch finishes and finished items are kept as they are.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone

import anyio
import anyio.to_thread
import msgpack

from astrodash_core.errors import AstrodashError, ModelFileError
from astrodash_core.hookspecs import BATCH_ACTIVE, BATCH_FINISHED

from ..background import BackgroundLoop
from ..common import payload, read_upload
from ..errors import ApiError
from ..params import options_from
from ..zips import Archive, limits_from
from . import inputs, scheduling

log = logging.getLogger("astrodash.jobs")
#: Spectra per second assumed for estimates until this process has measured its own throughput.
PRIOR_RATE = 100.0
HOUSEKEEPING_S = 60.0
OPEN_ARCHIVES = 4


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


class Engine:
    def __init__(self, state):
        self.state = state
        s = state.settings
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.chunk = max(1, int(s.job_chunk))
        self.weights = dict(scheduling.WEIGHTS)
        self.ageing_s = float(s.job_ageing_s)
        self.rate = PRIOR_RATE  # spectra per second, moving average over chunks
        self.processed = 0  # items this process has run
        self._runner = BackgroundLoop("astrodash-jobs", self._loop)
        self._wake: asyncio.Event | None = None
        self._archives: OrderedDict[str, Archive] = OrderedDict()
        self._last_housekeeping = 0.0

    # --- the store ----------------------------------------------------------------------------------------------
    @property
    def store(self):
        """The job store of the app's storage backend; 503 when there is none."""
        try:
            storage = self.state.storage
        except Exception as exc:  # noqa: BLE001 - any backend failure is "unavailable" to the client
            raise ApiError(503, f"batch jobs unavailable: the store cannot be opened ({exc})") from None
        jobs = getattr(storage, "jobs", None)
        if jobs is None:
            raise ApiError(503, "batch jobs unavailable: the storage backend does not hold jobs")
        return jobs()

    # --- life cycle ---------------------------------------------------------------------------------------------
    def ensure_running(self) -> None:
        """Start the loop on the running event loop, unless it runs already."""
        if not self._runner.running():
            self._wake = asyncio.Event()
            self._runner.start()

    async def stop(self) -> None:
        await self._runner.stop()
        self._close_archives()

    def wake(self) -> None:
        """New work was stored: look for it now instead of at the next poll."""
        if self._wake is not None:
            self._wake.set()

    async def _loop(self) -> None:
        idle = float(self.state.settings.job_poll_s)
        ahead: asyncio.Task | None = None  # the next chunk, claimed and read while this one is classified
        try:
            while True:
                try:
                    store = self.store
                    if time.time() - self._last_housekeeping > HOUSEKEEPING_S:
                        self._last_housekeeping = time.time()
                        await anyio.to_thread.run_sync(self._housekeeping, store)
                    if ahead is not None:
                        chunk, ahead = await ahead, None
                    else:
                        chunk = await self.fetch_chunk(store)
                    if chunk is not None:
                        ahead = asyncio.get_running_loop().create_task(self.fetch_chunk(store))
                        await self.run_chunk(store, chunk)
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                    log.exception("batch-job loop failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                wake = self._wake
                assert wake is not None  # set by ensure_running before the loop starts
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), idle)
                except asyncio.TimeoutError:
                    pass
        finally:
            if ahead is not None:
                ahead.cancel()

    def _housekeeping(self, store) -> None:
        ttl = float(self.state.settings.job_ttl)
        gone = store.expire(ttl, max(ttl, 86400.0))
        store.release_archives()
        if gone:
            log.info("expired %d finished batches", gone)

    # --- scheduling -----------------------------------------------------------------------------------------------
    def order(self, batches: list[dict], now: float) -> list[dict]:
        return scheduling.order(batches, now, self.weights, self.ageing_s)

    def _claim(self, store) -> list[dict]:
        return store.claim(self.worker, self.chunk, self.order, dead=self._dead)

    def _dead(self, owner: str) -> bool:
        """Whether the process that holds a lease is gone (only known for processes of this host)."""
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    # --- running a chunk ------------------------------------------------------------------------------------------
    async def fetch_chunk(self, store) -> list[tuple] | None:
        """Lease the next chunk and read its spectra: [(item, spectrum, redshift, error, read ms)], or None when
        there is no work.  A batch whose uploaded model is gone fails here, whole."""
        items = await anyio.to_thread.run_sync(self._claim, store)
        if not items:
            return None
        batches: dict[str, dict] = {}
        for it in items:
            batches.setdefault(it["batch"]["id"], it["batch"])
        usable = set()
        for bid, b in batches.items():
            opts = options_from(b["params"], b["params"].get("model_id"))
            b["opts"] = opts
            if opts.model_id or opts.model_type == "transformer":
                try:
                    await anyio.to_thread.run_sync(self.state.classifier_for, opts.model_id, opts.model_type)
                except (KeyError, ModelFileError) as exc:
                    why = "no longer stored" if isinstance(exc, KeyError) else str(exc)
                    await anyio.to_thread.run_sync(store.fail_batch, bid, f"model {opts.model_id or opts.model_type}: {why}")
                    continue
            usable.add(bid)
        return await anyio.to_thread.run_sync(self._prepare, [it for it in items if it["batch"]["id"] in usable])

    async def run_chunk(self, store, prepared: list[tuple]) -> None:
        """Classify a fetched chunk and store its outcomes.  Items of a batch cancelled since the chunk was
        fetched are dropped (cancelled), not run."""
        started = time.perf_counter()
        ids = {it["batch"]["id"] for it, *_ in prepared}
        cancelled = await anyio.to_thread.run_sync(store.drop_cancelled, self.worker, sorted(ids))
        prepared = [p for p in prepared if p[0]["batch"]["id"] not in cancelled]
        results: list = [None] * len(prepared)
        groups: dict = {}
        for k, (it, spec, z, error, _) in enumerate(prepared):
            if error is None:
                groups.setdefault(it["batch"]["opts"].batch_key, []).append((k, spec, z))
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for key, members in groups.items():
                tg.start_soon(self._classify, key, members, results)
        n_run = sum(len(m) for m in groups.values())
        share_ms = (time.perf_counter() - t0) * 1000.0 / max(n_run, 1)
        outcomes = await anyio.to_thread.run_sync(self._outcomes, prepared, results, share_ms)
        await anyio.to_thread.run_sync(store.complete, self.worker, outcomes)
        elapsed = time.perf_counter() - started
        if prepared and elapsed > 0:
            rate = len(prepared) / elapsed
            self.rate = 0.8 * self.rate + 0.2 * rate if self.processed else rate
        self.processed += len(prepared)

    async def _classify(self, key, members: list[tuple], results: list) -> None:
        """Classify ``members`` ((index, spectrum, redshift)) as one micro-batcher job; results by index."""
        try:
            out = await self.state.batcher.submit_many(key, [(spec, z) for _, spec, z in members])
        except Exception as exc:  # noqa: BLE001 - becomes these items' error
            out = [exc] * len(members)
        for (k, _, _), r in zip(members, out):
            results[k] = r

    def _prepare(self, items: list[dict]) -> list[tuple]:
        """(item, spectrum, redshift, error, read ms) for each item, in a worker thread."""
        out = []
        for it in items:
            t0 = time.perf_counter()
            opts = it["batch"]["opts"]
            spec = z = error = None
            try:
                spec, z = self._spectrum(it, opts)
            except AstrodashError as exc:
                error = str(exc)
            except ApiError as exc:
                error = str(exc.detail)
            except Exception as exc:  # noqa: BLE001 - a reader bug is this item's error, not the batch's
                log.exception("reading batch item %s/%s failed", it["batch"]["id"], it["idx"])
                error = f"not read: {type(exc).__name__}"
            out.append((it, spec, z, error, (time.perf_counter() - t0) * 1000.0))
        return out

    def _spectrum(self, it: dict, opts):
        data = inputs.decode(it["input"])
        z = opts.redshift
        if "arrays" in data:
            spec, own_z = inputs.spectrum_from_arrays(data["arrays"], it["name"])
            return spec, own_z if own_z is not None else z
        if "member" in data:
            archive = self._archive(it["batch"])
            name, content, error = archive.read(archive.infos[data["member"]])
            if error is not None or content is None:
                raise AstrodashError(f"{name}: {error or 'no content'}")
            return read_upload(content, name, opts.known_z), z
        return read_upload(data["data"], data["file"], opts.known_z), z

    def _archive(self, batch: dict) -> Archive:
        bid = batch["id"]
        if bid in self._archives:
            self._archives.move_to_end(bid)
            return self._archives[bid]
        if not batch.get("archive") or not os.path.exists(batch["archive"]):
            raise AstrodashError("the batch's archive is no longer stored")
        s = self.state.settings  # as many entries as a submit accepted, whichever bound was set then
        limits = limits_from(s, max(s.job_max_items, s.zip_max_entries))
        archive = Archive(batch["archive"], os.path.basename(batch["archive"]), limits)
        self._archives[bid] = archive
        while len(self._archives) > OPEN_ARCHIVES:
            self._archives.popitem(last=False)[1].close()
        return archive

    def _close_archives(self) -> None:
        while self._archives:
            self._archives.popitem()[1].close()

    def _outcomes(self, prepared: list[tuple], results: list, share_ms: float) -> list[dict]:
        outcomes = []
        for (it, _, _, error, read_ms), r in zip(prepared, results):
            b = it["batch"]
            opts = b["opts"]
            ms = read_ms + (share_ms if error is None else 0.0)
            out = {"batch_id": b["id"], "idx": it["idx"], "processing_ms": round(ms, 3)}
            if error is None and isinstance(r, Exception):
                error = f"not classified: {r}" if isinstance(r, (AstrodashError, ModelFileError)) else \
                    f"not classified: {type(r).__name__}"
            if error is None and r.error:
                error = r.error
            if error is None and b.get("timeout_ms") and ms > b["timeout_ms"]:
                error = f"took {ms:.0f} ms, more than timeout_ms ({b['timeout_ms']})"
            if error is not None:
                out["error"] = error
            else:
                body = payload(r, opts.model_type, opts.model_id,
                               include_spectrum=bool(b["params"].get("includeSpectrum")))
                out["result"] = msgpack.packb(body, use_bin_type=True)
            outcomes.append(out)
        return outcomes

    # --- what clients see -----------------------------------------------------------------------------------------
    def queue_places(self, active: list[dict], now: float) -> dict[str, tuple[int, int]]:
        """{batch id: (batches served before it, their items still to run)} for the unfinished ``active``
        batches, in the order they will be served."""
        places, ahead = {}, 0
        for pos, b in enumerate(self.order(active, now)):
            places[b["id"]] = (pos, ahead)
            ahead += b["total"] - b["completed"] - b["failed"]
        return places

    def view(self, batch: dict, places: dict[str, tuple[int, int]] | None = None, now: float | None = None) -> dict:
        """The status document of ``batch`` (``places``: :meth:`queue_places` of the unfinished batches, for its
        queue position and estimate)."""
        now = time.time() if now is None else now
        total, done = batch["total"], batch["completed"] + batch["failed"]
        status = batch["status"]
        position, eta = 0, batch.get("finished_at")
        if status in BATCH_ACTIVE:
            pos, ahead = (places or {}).get(batch["id"], (0, 0))
            position = pos if status == "queued" else 0
            eta = now + (ahead + total - done) / max(self.rate, 1e-3)
        started = batch.get("started_at")
        elapsed = 0.0 if started is None else ((batch.get("finished_at") or now) - started) * 1000.0
        view = {"batch_id": batch["id"], "status": status,
                "progress": round(100.0 * done / total, 2) if total else 100.0,
                "completed_requests": batch["completed"], "failed_requests": batch["failed"],
                "total_requests": total, "estimated_completion_time": iso(eta),
                "processing_time_ms": round(elapsed, 1), "queue_position": position,
                "priority": batch["priority"], "created_at": iso(batch["created_at"]),
                "started_at": iso(started), "finished_at": iso(batch.get("finished_at")),
                "metadata": batch.get("metadata") or {}}
        if batch.get("error"):
            view["error"] = batch["error"]
        if status in BATCH_FINISHED:
            view["total_time_ms"] = round(((batch.get("finished_at") or now) - batch["created_at"]) * 1000.0, 1)
        return view

    def active(self, store) -> list[dict]:
        return store.list_batches(BATCH_ACTIVE, limit=100_000)

    def current_views(self, store, batches: list[dict]) -> list[dict]:
        """:meth:`view` of each batch with the queue as it is now, read once (reads the store: call it from a
        worker thread)."""
        now = time.time()
        unfinished = any(b["status"] in BATCH_ACTIVE for b in batches)
        places = self.queue_places(self.active(store), now) if unfinished else None
        return [self.view(b, places, now) for b in batches]

    def current_view(self, store, batch: dict) -> dict:
        return self.current_views(store, [batch])[0]
