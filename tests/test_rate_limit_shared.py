"""Rate limits shared by worker processes: one set of buckets in a memory-mapped file."""
import json
import multiprocessing
import time

import httpx
import pytest

from astrodash_asgi.middleware.rate_limit import TokenBucket
from astrodash_asgi.middleware.shared_bucket import WINDOW, SharedTokenBucket
from astrodash_asgi.process import ServerProcess


class Clock:
    def __init__(self, t=500.0):
        self.t = t

    def __call__(self):
        return self.t


def test_two_handles_on_one_file_share_the_buckets_and_agree_with_the_in_memory_one(tmp_path):
    clock = Clock()
    path = str(tmp_path / "buckets")
    a, b = (SharedTokenBucket(path, 60, 5, "client", clock=clock) for _ in range(2))
    reference = TokenBucket(60, 5, clock=clock)
    seen = []
    for i in range(7):
        got = (a if i % 2 else b).take("10.0.0.1")
        want = reference.take("10.0.0.1")
        assert got == pytest.approx(want)
        seen.append(got[0])
    assert seen == [True] * 5 + [False] * 2
    clock.t += 2.0  # two tokens back, for both handles
    assert [a.take("10.0.0.1")[0], b.take("10.0.0.1")[0], a.take("10.0.0.1")[0]] == [True, True, False]
    assert a.take("10.0.0.2")[1] == 4.0  # another client, its own bucket
    # a namespace keeps apart buckets of other limits in the same file
    assert SharedTokenBucket(path, 60, 5, "key", clock=clock).take("10.0.0.1")[0] is True


def test_a_full_window_takes_over_the_slot_touched_longest_ago(tmp_path):
    clock = Clock()
    bucket = SharedTokenBucket(str(tmp_path / "b"), 60, 3, clock=clock, slots=WINDOW)
    for i in range(WINDOW):
        bucket.take(f"c{i}")
        clock.t += 0.001
    bucket.take("c5")                      # c5 used again: c0 is now the oldest
    assert bucket.take("c5")[1] < 1.1      # still c5's own bucket (3 - 3 takes + refill)
    assert bucket.take("new")[1] == 2.0     # a new client, in c0's slot
    assert bucket.take("c0")[1] == 2.0     # c0 starts again (in c1's slot)
    assert bucket.take("c5")[1] < 1.0


def _drain(path, n, out):
    bucket = SharedTokenBucket(path, 0.001, 40)
    out.put(sum(bucket.take("client")[0] for _ in range(n)))


def test_processes_draw_from_one_bucket(tmp_path):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(str(tmp_path / "b"), 100, out)) for _ in range(3)]
    for p in procs:
        p.start()
    allowed = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(allowed) == 40  # not 3 x 40


def _access_lines(server, n, timeout=30.0):
    """The server's access-log lines once ``n`` of them are written (each worker writes its own)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(l) for l in server.log_path.read_text().splitlines() if l.startswith("{")]
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.slow
def test_two_workers_give_a_client_one_burst_not_two(tmp_path):
    env = {"ASTRODASH_RATE_LIMIT_PER_MINUTE": "1", "ASTRODASH_RATE_LIMIT_BURST": "10", "ASTRODASH_WARMUP": "0"}
    with ServerProcess(tmp_path, env, workers=2, timeout=90) as server:
        codes, resets = [], set()
        for _ in range(40):  # a new connection each: the two workers take turns accepting them
            r = httpx.get(server.base + "/api/v1/line-list/elements", headers={"connection": "close"})
            codes.append(r.status_code)
            resets.add(r.headers["x-ratelimit-limit"])
        lines = _access_lines(server, 40)
    pids = {l["pid"] for l in lines if l["path"] == "/api/v1/line-list/elements"}
    assert len(pids) == 2, "both workers must have answered for this test to mean anything"
    assert codes.count(200) == 10 and codes.count(429) == 30 and codes[:10] == [200] * 10
    assert resets == {"1"}
