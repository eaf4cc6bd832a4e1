"""The SQLite job store: atomic submit, idempotency, leases, counting each item once, cancel, expiry, and a
property test of workers that crash at random points."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrodash_asgi.jobs.scheduling import order
from astrodash_core.hookspecs import BatchExists, IdempotencyMismatch, JobStore
from astrodash_plugins.storage.jobs_sqlite import SQLiteJobStore
from astrodash_plugins.storage.sqlite import SQLiteModelStore


def make_batch(store, bid, n, priority="normal", opts="k", created=None, key=None, digest="d"):
    items = [{"request_id": str(i), "name": f"{bid}-{i}", "input": f"{bid}:{i}".encode()} for i in range(n)]
    return store.create_batch({"id": bid, "priority": priority, "opts_key": opts, "params": {"a": 1}}, items,
                              (key, digest) if key else None)


def test_the_sqlite_backend_offers_a_job_store_in_the_same_database(tmp_path):
    models = SQLiteModelStore(tmp_path / "m.db")
    jobs = models.jobs()
    assert isinstance(jobs, JobStore) and jobs.db_path == models.db_path and models.jobs() is jobs


def test_reopening_a_store_keeps_its_batches_metadata_and_archives(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    assert store.archive_dir == tmp_path / "jobs"
    path = store.save_archive("b", b"PK")
    store.create_batch({"id": "b", "priority": "low", "opts_key": "k", "archive": path,
                        "metadata": {"night": "2026-11-29", "n": [1, 2]}, "params": {"knownZ": True}},
                       [{"request_id": "0", "name": "x", "input": b"i"}])
    again = SQLiteJobStore(tmp_path / "j.db")  # a restarted server opens the same files
    got = again.get_batch("b")
    assert got["metadata"] == {"night": "2026-11-29", "n": [1, 2]} and got["params"] == {"knownZ": True}
    assert got["archive"] == path and open(path, "rb").read() == b"PK"
    again.drop_archive(path)
    again.drop_archive(path)  # already gone: nothing to do
    again.drop_archive(None)
    assert not list((tmp_path / "jobs").glob("*"))


def test_create_returns_the_batch_as_stored(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    batch, created = store.create_batch({"id": "b", "priority": "high", "opts_key": "k", "owner": "alice",
                                         "params": {"zValue": 0.1}, "metadata": {"night": 3}, "timeout_ms": 250},
                                        [{"request_id": "r", "name": "x", "input": b"i"}])
    assert created
    stored = store.get_batch("b")
    for key in ("id", "owner", "priority", "params", "metadata", "timeout_ms", "total", "status", "opts_key"):
        assert batch[key] == stored[key], key
    assert (stored["metadata"], stored["timeout_ms"], stored["total"]) == ({"night": 3}, 250, 1)


def test_create_stores_batch_and_items_and_refuses_an_existing_id(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    batch, created = make_batch(store, "b1", 3)
    assert created and batch["total"] == 3 and batch["status"] == "queued"
    got = store.get_batch("b1")
    assert (got["total"], got["completed"], got["failed"], got["params"]) == (3, 0, 0, {"a": 1})
    with pytest.raises(BatchExists):
        make_batch(store, "b1", 1)
    assert store.get_batch("b1")["total"] == 3  # the failed second submit changed nothing
    assert store.queue_length() == 3


def test_idempotency_key_returns_the_first_batch_and_refuses_another_body(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    first, created = make_batch(store, "b1", 2, key="k", digest="same")
    again, created2 = make_batch(store, "b2", 5, key="k", digest="same")
    assert created and not created2 and again["id"] == "b1" and store.get_batch("b2") is None
    with pytest.raises(IdempotencyMismatch):
        make_batch(store, "b3", 2, key="k", digest="other")
    assert store.get_batch("b3") is None and store.queue_length() == 2


def _claim(store, worker, limit, now, dead=lambda o: False):
    return store.claim(worker, limit, order, dead=dead, now=now)


def test_claim_takes_the_best_batch_then_same_options_of_others(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    make_batch(store, "low", 3, "low", opts="A")
    make_batch(store, "crit", 2, "critical", opts="A")
    make_batch(store, "other", 3, "critical", opts="B")
    now = store.get_batch("other")["created_at"] + 0.001
    got = _claim(store, "w", 4, now)
    ids = [(it["batch"]["id"], it["idx"]) for it in got]
    # "crit" and "other" tie on priority; crit is older; its 2 items are filled up with same-options "low" items
    assert ids == [("crit", 0), ("crit", 1), ("low", 0), ("low", 1)]
    assert store.get_batch("crit")["status"] == "processing"
    assert store.get_batch("other")["status"] == "queued"


def test_complete_counts_each_item_once_and_only_for_the_lease_holder(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    make_batch(store, "b", 3)
    now = store.get_batch("b")["created_at"]
    got = _claim(store, "w1", 2, now)
    outcome = [{"batch_id": "b", "idx": it["idx"], "result": b"r", "processing_ms": 1.0} for it in got]
    assert store.complete("w2", outcome, now=now) == 0  # not w2's lease
    assert store.complete("w1", outcome, now=now) == 2
    assert store.complete("w1", outcome, now=now) == 0  # a retried write does not count twice
    b = store.get_batch("b")
    assert (b["completed"], b["failed"], b["status"]) == (2, 0, "processing")
    last = _claim(store, "w1", 5, now)
    assert [it["idx"] for it in last] == [2]
    store.complete("w1", [{"batch_id": "b", "idx": 2, "error": "bad", "processing_ms": 2.0}], now=now)
    b = store.get_batch("b")
    assert (b["completed"], b["failed"], b["status"]) == (2, 1, "completed") and b["processing_ms"] == 4.0
    rows = store.results("b")
    assert [r["seq"] for r in rows] == [1, 2, 3] and rows[2]["error"] == "bad" and rows[0]["result"] == b"r"
    assert [r["seq"] for r in store.results("b", after_seq=1, limit=1)] == [2]


def test_leases_of_dead_or_expired_workers_are_queued_again(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    make_batch(store, "b", 4)
    now = store.get_batch("b")["created_at"]
    a = _claim(store, "dead-one", 2, now)
    b = store.claim("slow-one", 1, order, now=now, lease_s=10)
    assert [it["idx"] for it in a] == [0, 1] and [it["idx"] for it in b] == [2]
    again = _claim(store, "w", 10, now + 1, dead=lambda o: o == "dead-one")
    assert sorted(it["idx"] for it in again) == [0, 1, 3] and all(
        it["attempts"] == 2 for it in again if it["idx"] < 2)
    later = _claim(store, "w2", 10, now + 11)  # slow-one's lease has run out
    assert [it["idx"] for it in later] == [2]
    # the dead worker's late write is refused: the items belong to "w" now
    assert store.complete("dead-one", [{"batch_id": "b", "idx": 0, "result": b"x"}], now=now + 2) == 0


def test_cancel_stops_queued_items_and_keeps_results_so_far(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    make_batch(store, "b", 5)
    now = store.get_batch("b")["created_at"]
    running = _claim(store, "w", 2, now)
    b = store.cancel("b", now=now)
    assert b["status"] == "cancelled" and store.queue_length() == 0
    assert _claim(store, "w", 10, now) == []
    # the two items in flight still store their results; the batch stays cancelled
    store.complete("w", [{"batch_id": "b", "idx": it["idx"], "result": b"r"} for it in running], now=now)
    b = store.get_batch("b")
    assert (b["status"], b["completed"]) == ("cancelled", 2) and len(store.results("b")) == 2
    assert store.cancel("missing") is None
    first = store.get_batch("b")["finished_at"]
    assert store.cancel("b", now=now + 50)["finished_at"] == first  # cancelling again changes nothing


@pytest.mark.parametrize("end", ["completed", "failed"])
def test_a_finished_batch_cannot_be_cancelled(tmp_path, end):
    store = SQLiteJobStore(tmp_path / "j.db")
    make_batch(store, "b", 1)
    now = store.get_batch("b")["created_at"]
    got = _claim(store, "w", 1, now)
    if end == "completed":
        store.complete("w", [{"batch_id": "b", "idx": got[0]["idx"], "result": b"r"}], now=now)
    else:
        store.fail_batch("b", "gone", now=now)
    after = store.cancel("b", now=now + 5)
    assert after["status"] == end and after["finished_at"] == now


def test_fail_batch_fails_every_unfinished_item(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    make_batch(store, "b", 3)
    now = store.get_batch("b")["created_at"]
    got = _claim(store, "w", 1, now)
    store.complete("w", [{"batch_id": "b", "idx": got[0]["idx"], "result": b"r"}], now=now)
    store.fail_batch("b", "model gone", now=now)
    b = store.get_batch("b")
    assert (b["status"], b["completed"], b["failed"], b["error"]) == ("failed", 1, 2, "model gone")
    assert [r["seq"] for r in store.results("b")] == [1, 2, 3]


def test_expire_removes_old_finished_batches_archives_and_keys(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    path = store.save_archive("old", b"PK-zip-bytes")
    store.create_batch({"id": "old", "priority": "low", "opts_key": "k", "archive": path},
                       [{"request_id": "0", "name": "x", "input": b"i"}], ("key", "d"))
    make_batch(store, "running", 1)
    t0 = store.get_batch("old")["created_at"]
    store.cancel("old", now=t0)
    assert store.expire(ttl_s=100, key_ttl_s=1000, now=t0 + 50) == 0
    assert store.expire(ttl_s=100, key_ttl_s=1000, now=t0 + 101) == 1
    assert store.get_batch("old") is None and not os.path.exists(path)
    assert store.get_batch("running") is not None  # unfinished batches never expire
    # the key outlives its batch: reusing it stores a new batch under that key
    _, created = store.create_batch({"id": "new", "priority": "low", "opts_key": "k"},
                                    [{"request_id": "0", "name": "x", "input": b"i"}], ("key", "d"))
    assert created


def test_list_batches_pages_newest_first_by_status_and_owner(tmp_path):
    store = SQLiteJobStore(tmp_path / "j.db")
    for k in range(5):
        store.create_batch({"id": f"b{k}", "priority": "normal", "opts_key": "k", "owner": "me" if k % 2 else ""},
                           [{"request_id": "0", "name": "x", "input": b"i"}])
    store.cancel("b4")
    page1 = store.list_batches(limit=2)
    assert [b["id"] for b in page1] == ["b4", "b3"]
    page2 = store.list_batches(limit=2, after=(page1[-1]["created_at"], page1[-1]["id"]))
    assert [b["id"] for b in page2] == ["b2", "b1"]
    assert [b["id"] for b in store.list_batches(("queued",), owner="")] == ["b2", "b0"]
    assert [b["id"] for b in store.list_batches(owner="me")] == ["b3", "b1"]
    # status, owner and a cursor together
    mine = store.list_batches(("queued", "cancelled"), owner="me", limit=1)
    assert [b["id"] for b in mine] == ["b3"]
    rest = store.list_batches(("queued", "cancelled"), owner="me", after=(mine[0]["created_at"], mine[0]["id"]))
    assert [b["id"] for b in rest] == ["b1"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       steps=st.lists(st.tuples(st.sampled_from(["w1", "w2", "w3"]), st.integers(1, 4),
                                st.sampled_from(["finish", "crash", "half"])), min_size=1, max_size=25))
def test_crashing_workers_never_lose_or_double_count_an_item(tmp_path_factory, sizes, steps):
    """Workers lease chunks and either finish them, crash holding them, or crash half way; with crashed
    workers noticed as dead, every item ends finished exactly once and the counters match the items."""
    store = SQLiteJobStore(tmp_path_factory.mktemp("prop") / "j.db")
    for k, n in enumerate(sizes):
        make_batch(store, f"b{k}", n, ["critical", "normal", "low"][k % 3])
    crashed: set[str] = set()
    generation = {"w1": 0, "w2": 0, "w3": 0}
    t = store.get_batch("b0")["created_at"]

    def name(w):
        return f"{w}.{generation[w]}"

    def dead(owner):
        return owner in crashed

    def run(worker, limit, how):
        got = store.claim(name(worker), limit, order, dead=dead, now=t)
        done = got if how == "finish" else got[: len(got) // 2] if how == "half" else []
        store.complete(name(worker), [{"batch_id": it["batch"]["id"], "idx": it["idx"], "result": b"r"}
                                      for it in done], now=t)
        if how != "finish" and got:
            crashed.add(name(worker))
            generation[worker] += 1

    for worker, limit, how in steps:
        run(worker, limit, how)
    for _ in range(sum(sizes)):  # a healthy worker finishes what is left
        run("w1", 100, "finish")
    for k, n in enumerate(sizes):
        b = store.get_batch(f"b{k}")
        rows = store.results(f"b{k}", limit=None)
        assert b["status"] == "completed" and b["completed"] == n and b["failed"] == 0
        assert sorted(r["seq"] for r in rows) == list(range(1, n + 1))
        assert sorted(int(r["request_id"]) for r in rows) == list(range(n))
