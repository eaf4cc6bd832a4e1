"""Dynamic micro-batching: concurrent submissions share passes; options never mix; off means one each."""
import time

import anyio
import pytest

from asgi_support import anyio_backend, client, make_app, params, spectrum_bytes  # noqa: F401
from astrodash_asgi.batching import MicroBatcher

pytestmark = pytest.mark.anyio


def recorder(calls, delay=0.0):
    def run(key, items):
        calls.append((key, list(items)))
        time.sleep(delay)
        return [f"{key}:{i}" for i in items]
    return run


async def _submit_all(batcher, jobs):
    out = {}

    async def one(key, item):
        out[(key, item)] = await batcher.submit(key, item)

    async with anyio.create_task_group() as tg:
        for key, item in jobs:
            tg.start_soon(one, key, item)
    return out


async def test_concurrent_items_share_batches_and_keys_stay_apart():
    calls = []
    b = MicroBatcher(recorder(calls, delay=0.02), max_batch=8, max_wait=0.01)
    jobs = [("a", f"a{i}") for i in range(20)] + [("b", f"b{i}") for i in range(4)]
    out = await _submit_all(b, jobs)
    assert out == {(k, i): f"{k}:{i}" for k, i in jobs}
    assert all(len(items) <= 8 and all(i.startswith(key) for i in items) for key, items in calls)
    assert len(calls) <= 6                       # far fewer passes than the 24 requests
    assert sorted(i for k, items in calls if k == "b" for i in items) == ["b0", "b1", "b2", "b3"]


async def test_batching_off_runs_each_alone():
    calls = []
    b = MicroBatcher(recorder(calls), max_batch=1)
    out = await _submit_all(b, [("k", i) for i in range(5)])
    assert len(calls) == 5 and all(len(items) == 1 for _, items in calls) and len(out) == 5


async def test_errors_reach_every_caller_of_the_group_and_the_batcher_recovers():
    def run(key, items):
        if key == "bad":
            raise RuntimeError("boom")
        return items

    b = MicroBatcher(run, max_batch=4, max_wait=0.005)
    with pytest.raises(RuntimeError, match="boom"):
        await b.submit("bad", 1)
    assert await b.submit("good", 2) == 2


async def test_a_cancelled_waiter_does_not_block_the_others():
    calls = []
    b = MicroBatcher(recorder(calls, delay=0.05), max_batch=4, max_wait=0.001, max_in_flight=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(b.submit, "k", 0)
        await anyio.sleep(0.01)                       # item 0 is running; item 1 waits its turn
        with anyio.move_on_after(0.01):
            await b.submit("k", 1)
    assert await b.submit("k", 2) == "k:2"
    assert [i for _, items in calls for i in items] == [0, 2]


async def test_the_next_batch_runs_while_one_runs_and_no_more_than_max_in_flight():
    spans = []

    def run(key, items):
        t0 = time.monotonic()
        time.sleep(0.1)
        spans.append((items, t0, time.monotonic()))
        return [f"{key}:{i}" for i in items]

    b = MicroBatcher(run, max_batch=4, max_wait=0.001, max_in_flight=2)
    out = {}

    async def one(i):
        out[i] = await b.submit("k", i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 0)
        await anyio.sleep(0.02)  # item 0 runs
        tg.start_soon(one, 1)  # forms the second batch and runs beside it
        await anyio.sleep(0.02)
        for i in (2, 3):  # two batches run: these wait, then share the third
            tg.start_soon(one, i)
        await anyio.sleep(0.02)
        with anyio.move_on_after(0.01):
            await b.submit("k", 9)  # waits for a free place, then gives up: never runs
    assert out == {i: f"k:{i}" for i in range(4)}
    by_items = {tuple(items): (t0, t1) for items, t0, t1 in spans}
    assert sorted(by_items) == [(0,), (1,), (2, 3)]
    assert by_items[(1,)][0] < by_items[(0,)][1]  # 1 started before 0 ended
    assert by_items[(2, 3)][0] >= by_items[(0,)][1]  # the third waited for a place
    assert all(9 not in items for items, _, _ in spans)


async def test_process_requests_are_micro_batched(tmp_path):
    app = make_app(tmp_path, micro_batch_max=16, micro_batch_wait_ms=20)
    batcher = app.state.astrodash.batcher
    data = spectrum_bytes()
    async with client(app) as c:
        await c.post("/api/v1/process", files={"file": ("a.dat", data)}, data=params(knownZ=True, zValue=0.01))
        before = batcher.batches
        results = []

        async def one(i):
            r = await c.post("/api/v1/process", files={"file": (f"s{i}.dat", data)},
                             data=params(knownZ=True, zValue=0.01 + i / 1000))
            results.append((i, r))

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)
    assert all(r.status_code == 200 for _, r in results)
    for i, r in results:   # each caller gets its own result back
        assert r.json()["redshift"] == pytest.approx(0.01 + i / 1000)
    assert batcher.batches - before < 12


async def test_a_chunk_runs_whole_and_small_requests_of_its_key_join_it():
    """submit_many: one queued job that is never split; the passes and items are counted for /health."""
    calls = []
    b = MicroBatcher(recorder(calls), max_batch=4, max_wait=0.05)
    out = {}

    async def chunk():
        out["chunk"] = await b.submit_many("k", ["c0", "c1", "c2", "c3", "c4", "c5"])

    async def single(item):
        out[item] = await b.submit("k", item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(single, "s0")  # queued first: leads, and the chunk joins its pass only if it fits
        tg.start_soon(chunk)
        tg.start_soon(single, "s1")
    assert out["chunk"] == [f"k:c{i}" for i in range(6)] and out["s0"] == "k:s0" and out["s1"] == "k:s1"
    chunk_calls = [items for _, items in calls if "c0" in items]
    assert len(chunk_calls) == 1 and chunk_calls[0][-6:] == [f"c{i}" for i in range(6)]  # never split
    assert b.batches == len(calls) and b.items == 8
    assert await b.submit_many("k", []) == [] and len(calls) == b.batches  # nothing to run, no pass


async def test_batching_off_counts_each_pass():
    calls = []
    b = MicroBatcher(recorder(calls), max_batch=1)
    await _submit_all(b, [("k", i) for i in range(3)])
    assert (b.batches, b.items) == (3, 3) == (len(calls), sum(len(i) for _, i in calls))


def test_automatic_batching_follows_where_classification_runs(tmp_path):
    """Left automatic, micro-batching pipelines with worker processes (processes + 2 under way, no wait) and
    gathers in-process (one at a time, 5 ms): concurrent batches in the server's threads compete for the GIL.
    Values an operator sets are kept."""
    from astrodash_asgi.settings import Settings
    from astrodash_asgi.state import batching_for

    auto = Settings()
    assert (auto.micro_batch_wait_ms, auto.micro_batch_in_flight) == (None, 0)
    resolved = [(s.micro_batch_wait_ms, s.micro_batch_in_flight) for s in (batching_for(auto, n) for n in (0, 1, 3))]
    assert resolved == [(5.0, 1), (0.0, 3), (0.0, 5)]
    mine = batching_for(Settings(micro_batch_wait_ms=7.0, micro_batch_in_flight=2), 1)
    assert (mine.micro_batch_wait_ms, mine.micro_batch_in_flight) == (7.0, 2)
    state = make_app(tmp_path).state.astrodash  # an app given its classifier classifies in-process
    assert state.runner.processes == 0 and state.settings.micro_batch_wait_ms == 5.0
    assert (state.batcher.max_wait, state.batcher.max_in_flight) == (0.005, 1)


async def test_a_pass_that_cannot_run_fails_every_caller_of_its_batch_instead_of_leaving_them_waiting(monkeypatch):
    # the worker-thread hop itself fails (a thread pool shut down, say): the leader sees that error, and the
    # other callers of the same batch get one too, at once
    async def no_thread(*args, **kwargs):
        raise RuntimeError("no worker thread")

    b = MicroBatcher(lambda key, items: items, max_batch=4, max_wait=0.05)
    monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
    outcomes = []

    async def one(item):
        try:
            await b.submit("k", item)
        except RuntimeError as exc:
            outcomes.append(str(exc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
    assert sorted(outcomes) == ["no worker thread", "the micro-batch was interrupted",
                                "the micro-batch was interrupted"]
