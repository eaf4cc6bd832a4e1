"""Batch jobs through a real ``astrodash serve``: killed with SIGKILL in the middle of a batch and restarted,
every accepted item finishes once and finished items are kept as they were; with two worker processes any
worker answers for any batch and every item runs once."""
from __future__ import annotations

import sqlite3
import time

import httpx
import numpy as np
import pytest

from astrodash_asgi.process import ServerProcess

JOBS = "/api/batch-processor"
pytestmark = pytest.mark.slow


def items(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    wave = np.linspace(3500, 9000, 400).round(2).tolist()
    out = []
    for k in range(n):
        flux = (1 + 0.3 * np.sin(np.asarray(wave) / (150 + k % 50)) + 0.02 * rng.standard_normal(400)).round(5)
        out.append({"input": {"wave": wave, "flux": flux.tolist()}, "name": f"s{k}"})
    return out


def item_rows(db_path, batch_id) -> dict[int, tuple]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT idx, status, seq, finished_at, attempts FROM batch_items WHERE batch_id = ?",
                          (batch_id,)).fetchall()
    return {r[0]: r[1:] for r in rows}


def wait_for(get, predicate, timeout=120.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = get()
        if predicate(value):
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s; last: {value}")


def test_sigkill_mid_batch_then_restart_finishes_every_item_once(tmp_path):
    n = 1200
    env = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_JOB_CHUNK": "8"}
    server = ServerProcess(tmp_path, env).start()
    try:
        with httpx.Client(base_url=server.base, timeout=60) as c:
            r = c.post(f"{JOBS}/submit", json={"data": items(n), "batch_id": "crash",
                                               "params": {"knownZ": False, "calculateRlap": True}})
            assert r.status_code == 202, r.text
            status = wait_for(lambda: c.get(f"{JOBS}/status/crash").json(),
                              lambda s: s["completed_requests"] + s["failed_requests"] >= 40)
            assert status["status"] == "processing"
    finally:
        server.kill()
    db = tmp_path / "models.db"
    before = item_rows(db, "crash")
    finished = {i: row for i, row in before.items() if row[0] in ("done", "failed")}
    assert 40 <= len(finished) < n, "the kill must land mid-batch"
    assert any(row[0] == "running" for row in before.values()) or len(finished) + sum(
        row[0] == "queued" for row in before.values()) == n

    with ServerProcess(tmp_path, env, port=server.port) as again, httpx.Client(base_url=again.base,
                                                                               timeout=60) as c:
        final = wait_for(lambda: c.get(f"{JOBS}/status/crash").json(), lambda s: s["status"] == "completed",
                         timeout=300, every=0.2)
        assert final["completed_requests"] + final["failed_requests"] == final["total_requests"] == n
        assert final["completed_requests"] == n
        records = [line for line in c.get(f"{JOBS}/results/crash",
                                          headers={"accept": "application/x-ndjson"}).text.splitlines()]
    after = item_rows(db, "crash")
    assert len(records) == n and all(row[0] == "done" for row in after.values())
    assert sorted(row[1] for row in after.values()) == list(range(1, n + 1))  # each counted once
    for i, row in finished.items():  # finished before the kill: not redone
        assert after[i] == row
    assert max(row[3] for row in after.values()) <= 2  # at most the item in flight at the kill ran again


def test_two_workers_share_batches_and_run_each_item_once(tmp_path):
    env = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_JOB_CHUNK": "4"}
    with ServerProcess(tmp_path, env, workers=2) as server, httpx.Client(base_url=server.base, timeout=60) as c:
        ids = []
        for k in range(3):
            r = c.post(f"{JOBS}/submit", json={"data": items(60), "params": {"knownZ": True, "zValue": 0.01}})
            assert r.status_code == 202
            ids.append(r.json()["batch_id"])
        for bid in ids:  # fresh connections land on either worker; each answers for every batch
            final = wait_for(lambda: httpx.get(f"{server.base}{JOBS}/status/{bid}").json(),
                             lambda s: s["status"] == "completed", timeout=180, every=0.1)
            assert final["completed_requests"] == 60
        listed = {b["batch_id"] for b in c.get(f"{JOBS}/batches", params={"status": "completed"}).json()["batches"]}
        assert listed == set(ids)
    for bid in ids:
        rows = item_rows(tmp_path / "models.db", bid)
        assert all(status == "done" and attempts == 1 for status, _, _, attempts in rows.values())
        assert sorted(seq for _, seq, _, _ in rows.values()) == list(range(1, 61))
