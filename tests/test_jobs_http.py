"""The batch-processor API in process: submit (JSON, files, zip), validation, idempotency, results paged and
streamed, cancel, listing, and the progress WebSocket.  Results are checked against ``/process`` on the same
spectra, which classifies through a different route."""
from __future__ import annotations

import csv
import io
import json
import time

import anyio
import msgpack
import numpy as np
import pytest
from starlette.testclient import TestClient

from asgi_support import anyio_backend, client, make_app, make_zip, params, spectrum_bytes  # noqa: F401

pytestmark = pytest.mark.anyio
JOBS = "/api/batch-processor"


def arrays(seed: int, n: int = 600) -> dict:
    rng = np.random.default_rng(seed)
    wave = np.linspace(3500, 9000, n)
    flux = 1 + 0.3 * np.sin(wave / (200 + 40 * seed)) + 0.01 * rng.standard_normal(n)
    return {"wave": wave.round(3).tolist(), "flux": flux.round(6).tolist()}


def same_classification(a: dict, b: dict) -> bool:
    """Equal types, ages and flags; probabilities equal to float32 rounding (batch sizes differ)."""
    def flat(c):
        return [(m["type"], m["age"], m.get("rlap"), m.get("reliable")) for m in [c["best_match"], *c["best_matches"]]]

    probs = [[m["probability"] for m in [c["best_match"], *c["best_matches"]]] for c in (a, b)]
    return flat(a) == flat(b) and np.allclose(probs[0], probs[1], rtol=1e-5, atol=1e-7)


async def wait_done(c, batch_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = (await c.get(f"{JOBS}/status/{batch_id}")).json()
        if s["status"] in ("completed", "failed", "cancelled"):
            return s
        await anyio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish: {s}")


@pytest.fixture
async def app(tmp_path):
    app = make_app(tmp_path, rate_limit_enabled=False)
    yield app
    await app.state.astrodash.shutdown()


async def test_json_batch_matches_process_for_each_spectrum(app):
    data = [{"input": arrays(k), "request_id": f"r{k}", "name": f"s{k}"} for k in range(3)]
    data.append({"input": [[1.0, 2.0], [3.0, 4.0]], "name": "tiny"})
    data.append({"input": {"wave": [1, 2, 3]}, "name": "no-flux"})
    async with client(app) as c:
        r = await c.post(f"{JOBS}/submit", json={"data": data, "priority": "high", "metadata": {"night": "n1"},
                                                  "params": {"knownZ": True, "zValue": 0.02}})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["status"] == "queued" and body["request_count"] == 5
        assert r.headers["location"] == f"{JOBS}/status/{body['batch_id']}"
        status = await wait_done(c, body["batch_id"])
        assert (status["status"], status["completed_requests"], status["failed_requests"],
                status["total_requests"], status["progress"]) == ("completed", 3, 2, 5, 100.0)
        assert status["metadata"] == {"night": "n1"} and status["total_time_ms"] >= 0
        page = (await c.get(f"{JOBS}/results/{body['batch_id']}")).json()
        by_id = {r["request_id"]: r for r in page["results"]}
        assert set(by_id) == {"r0", "r1", "r2", "3", "4"} and page["has_more"] is False
        assert "at least 10" in by_id["3"]["error"] and "flux" in by_id["4"]["error"]
        for k in range(3):
            rows = "\n".join(f"{w} {f}" for w, f in zip(data[k]["input"]["wave"], data[k]["input"]["flux"]))
            single = (await c.post("/api/v1/process", files={"file": (f"s{k}.dat", rows.encode())},
                                   data=params(knownZ=True, zValue=0.02))).json()
            got = by_id[f"r{k}"]
            assert same_classification(got["output"]["classification"], single["classification"])
            assert got["output"]["redshift"] == pytest.approx(0.02)
            assert got["confidence"] == got["output"]["classification"]["best_match"]["probability"]
            assert "spectrum" not in got["output"]  # only with includeSpectrum


async def test_files_and_zip_in_one_multipart_batch_with_per_item_errors(app):
    good = spectrum_bytes()
    archive = make_zip({"a.dat": good, "sub/b.dat": good, "../evil.dat": good, "broken.dat": b"not a spectrum"})
    async with client(app) as c:
        r = await c.post(f"{JOBS}/submit", files=[("files", ("one.dat", good)), ("zip_file", ("z.zip", archive))],
                         data={"params": json.dumps({"knownZ": True, "zValue": 0.0, "includeSpectrum": True}),
                               "priority": "low", "batch_id": "night-42"})
        assert r.status_code == 202, r.text
        assert r.json()["batch_id"] == "night-42" and r.json()["request_count"] == 5
        await wait_done(c, "night-42")
        results = (await c.get(f"{JOBS}/results/night-42")).json()["results"]
        by_name = {x["name"]: x for x in results}
        assert set(by_name) == {"one.dat", "a.dat", "sub/b.dat", "../evil.dat", "broken.dat"}
        assert "unsafe entry name" in by_name["../evil.dat"]["error"]
        assert by_name["broken.dat"]["error"] and by_name["broken.dat"]["output"] is None
        ref = by_name["one.dat"]["output"]
        assert "spectrum" in ref and len(ref["spectrum"]["x"]) > 100
        assert same_classification(by_name["a.dat"]["output"]["classification"], ref["classification"])
        assert same_classification(by_name["sub/b.dat"]["output"]["classification"], ref["classification"])
        # the archive is removed once the batch is finished and the engine has tidied up
        engine = app.state.astrodash.engine
        engine.store.release_archives()
        assert not list(engine.store.archive_dir.glob("*.zip"))


@pytest.mark.parametrize("body, field", [
    ({}, "data"), ({"data": []}, "data"), ({"data": [{"x": 1}]}, "data[0]"),
    ({"data": [{"input": [[1, 2]]}], "priority": "urgent"}, "priority"),
    ({"data": [{"input": [[1, 2]]}], "timeout_ms": 0}, "timeout_ms"),
    ({"data": [{"input": [[1, 2]]}], "batch_id": "../x"}, "batch_id"),
    ({"data": [{"input": [[1, 2]]}], "params": {"smoothing": -1}}, "smoothing"),
    ({"data": [{"input": [[1, 2]]}], "params": [1]}, "params"),
    ({"data": [{"input": [[1, 2]]}], "metadata": "x"}, "metadata"),
])
async def test_invalid_submissions_are_422_naming_the_field(app, body, field):
    async with client(app) as c:
        r = await c.post(f"{JOBS}/submit", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text


async def test_existing_id_is_409_unknown_model_404_and_other_media_415(app):
    async with client(app) as c:
        ok = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(1)}], "batch_id": "dup"})
        assert ok.status_code == 202
        again = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(2)}], "batch_id": "dup"})
        assert again.status_code == 409 and again.json()["field"] == "batch_id"
        missing = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(2)}],
                                                       "params": {"model_id": "0123abcd"}})
        assert missing.status_code == 404
        text = await c.post(f"{JOBS}/submit", content=b"hello", headers={"content-type": "text/plain"})
        assert text.status_code == 415
        assert (await c.get(f"{JOBS}/status/nope")).status_code == 404
        assert (await c.get(f"{JOBS}/results/nope")).status_code == 404
        assert (await c.delete(f"{JOBS}/cancel/nope")).status_code == 404


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Idempotency-Key"])
async def test_idempotent_retries(app, header):
    good = spectrum_bytes()
    async with client(app) as c:
        def send(files, key="k-1"):
            return c.post(f"{JOBS}/submit", files=files, data=params(knownZ=True, zValue=0.01),
                          headers={header: key})

        first = await send([("files", ("a.dat", good)), ("files", ("b.dat", good))])
        # a retry with another multipart boundary but the same content is the same batch
        second = await send([("files", ("a.dat", good)), ("files", ("b.dat", good))])
        assert first.status_code == second.status_code == 202
        assert first.json()["batch_id"] == second.json()["batch_id"]
        assert second.headers["idempotent-replayed"] == "true"
        other = await send([("files", ("a.dat", good))])
        assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
        listed = (await c.get(f"{JOBS}/batches")).json()["batches"]
        assert [b["batch_id"] for b in listed] == [first.json()["batch_id"]]


async def test_results_page_with_cursor_and_offset_and_stream_in_every_format(app):
    n = 7
    async with client(app) as c:
        r = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(k), "name": f"s{k}"} for k in range(n)],
                                                  "params": {"knownZ": True, "zValue": 0.0}})
        bid = r.json()["batch_id"]
        await wait_done(c, bid)
        pages, cursor = [], None
        while True:
            q = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await c.get(f"{JOBS}/results/{bid}", params=q)).json()
            pages.append(page["results"])
            cursor = page["cursor"]
            assert page["has_more"] == (cursor is not None)
            if not page["has_more"]:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        records = [x for p in pages for x in p]
        assert sorted(x["name"] for x in records) == [f"s{k}" for k in range(n)]
        by_offset = (await c.get(f"{JOBS}/results/{bid}", params={"offset": 3, "limit": 2})).json()
        assert by_offset["results"] == records[3:5] and by_offset["total_count"] == n
        meta = by_offset["metadata"]
        assert meta["batch_size"] == n and meta["total_processing_time_ms"] == pytest.approx(
            sum(x["processing_time_ms"] for x in records), rel=1e-6, abs=0.01)
        nd = await c.get(f"{JOBS}/results/{bid}", headers={"accept": "application/x-ndjson"})
        assert nd.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(line) for line in nd.text.splitlines()] == records
        mp = await c.get(f"{JOBS}/results/{bid}", headers={"accept": "application/msgpack"})
        assert list(msgpack.Unpacker(io.BytesIO(mp.content), raw=False)) == records
        rows = list(csv.reader(io.StringIO((await c.get(f"{JOBS}/results/{bid}",
                                                        headers={"accept": "text/csv"})).text)))
        assert rows[0][:3] == ["request_id", "name", "type"] and len(rows) == n + 1
        for row, rec in zip(rows[1:], records):
            best = rec["output"]["classification"]["best_match"]
            assert row[1] == rec["name"] and row[2] == best["type"] and float(row[4]) == best["probability"]
        assert (await c.get(f"{JOBS}/results/{bid}", params={"cursor": "garbage!"})).status_code == 422
        assert (await c.get(f"{JOBS}/results/{bid}", params={"limit": 0})).status_code == 422


async def test_cancel_keeps_results_so_far_and_runs_nothing_more(app):
    engine = app.state.astrodash.engine
    async with client(app) as c:
        await engine.stop()  # nothing runs until the test says so
        engine.ensure_running = lambda: None
        r = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(k)} for k in range(6)],
                                                  "params": {"knownZ": True, "zValue": 0.0}})
        bid = r.json()["batch_id"]
        store = engine.store
        engine.chunk = 2
        await engine.run_chunk(store, await engine.fetch_chunk(store))
        fetched = await engine.fetch_chunk(store)  # leased and read, as the next chunk is while one runs
        cancelled = await c.delete(f"{JOBS}/cancel/{bid}")
        await engine.run_chunk(store, fetched)  # dropped: fetched before the cancel, never run
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert store.claim(engine.worker, 10, engine.order) == []
        s = (await c.get(f"{JOBS}/status/{bid}")).json()
        assert (s["status"], s["completed_requests"], s["total_requests"]) == ("cancelled", 2, 6)
        assert len((await c.get(f"{JOBS}/results/{bid}")).json()["results"]) == 2
        assert [b["batch_id"] for b in (await c.get(f"{JOBS}/batches",
                                                    params={"status": "cancelled"})).json()["batches"]] == [bid]
        assert (await c.get(f"{JOBS}/batches", params={"status": "active"})).json()["batches"] == []
        assert (await c.get(f"{JOBS}/batches", params={"status": "bogus"})).status_code == 422


async def test_queue_position_follows_priority(app):
    engine = app.state.astrodash.engine
    async with client(app) as c:
        await engine.stop()
        engine.ensure_running = lambda: None
        ids = {}
        for prio in ("low", "normal", "critical"):
            r = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(1)}] * 2, "priority": prio})
            ids[prio] = r.json()["batch_id"]
        pos = {p: (await c.get(f"{JOBS}/status/{b}")).json()["queue_position"] for p, b in ids.items()}
        assert pos == {"critical": 0, "normal": 1, "low": 2}
        first = engine.store.claim(engine.worker, 10, engine.order)
        # one chunk: the critical batch first, filled up with the others' items (same options) in queue order
        assert [it["batch"]["id"] for it in first] == [ids[p] for p in ("critical", "normal", "low") for _ in "ab"]


def test_progress_websocket_reports_until_completed(tmp_path):
    app = make_app(tmp_path, rate_limit_enabled=False)
    with TestClient(app) as c:
        bid = c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(k)} for k in range(40)],
                                             "params": {"knownZ": True, "zValue": 0.0}}).json()["batch_id"]
        with c.websocket_connect("/ws/batch-processor") as ws:
            ws.send_text("not json")
            assert "error" in ws.receive_json()
            ws.send_json({"action": "subscribe", "batch_id": "nope"})
            assert ws.receive_json() == {"error": "batch 'nope' not found", "batch_id": "nope"}
            ws.send_json({"action": "subscribe", "batch_id": bid})
            seen = []
            while True:
                msg = ws.receive_json()
                assert msg["batch_id"] == bid
                seen.append(msg)
                if msg["status"] == "completed":
                    break
        done = [m["completed_requests"] for m in seen]
        assert done == sorted(done) and done[-1] == 40 and "total_time_ms" in seen[-1]
        assert seen[-1] == c.get(f"{JOBS}/status/{bid}").json() | {"estimated_completion_time":
                                                                     seen[-1]["estimated_completion_time"]}


async def test_with_api_keys_a_batch_is_seen_only_by_the_key_that_submitted_it(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("alice-key-0123456789abcdef alice\nbob-key-0123456789abcdefgh bob\n")
    app = make_app(tmp_path, rate_limit_enabled=False, require_api_key=True, api_keys_file=str(keys))
    alice = {"x-api-key": "alice-key-0123456789abcdef"}
    bob = {"x-api-key": "bob-key-0123456789abcdefgh"}
    try:
        async with client(app) as c:
            assert (await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(1)}]})).status_code == 401
            r = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(1)}]}, headers=alice)
            bid = r.json()["batch_id"]
            assert (await c.get(f"{JOBS}/status/{bid}", headers=alice)).status_code == 200
            for path in (f"status/{bid}", f"results/{bid}"):
                assert (await c.get(f"{JOBS}/{path}", headers=bob)).status_code == 404
            assert (await c.delete(f"{JOBS}/cancel/{bid}", headers=bob)).status_code == 404
            assert (await c.get(f"{JOBS}/batches", headers=bob)).json()["batches"] == []
            mine = (await c.get(f"{JOBS}/batches", headers=alice)).json()["batches"]
            assert [b["batch_id"] for b in mine] == [bid]
            # the same batch id is free for another key's idempotency keys but not for its id
            again = await c.post(f"{JOBS}/submit", json={"data": [{"input": arrays(1)}], "batch_id": bid},
                                 headers=bob)
            assert again.status_code == 409
    finally:
        await app.state.astrodash.shutdown()


def test_results_format_follows_the_accept_header_like_every_other_answer():
    """The same negotiation as JSON against msgpack elsewhere: q-values first, then the order listed."""
    from astrodash_asgi.jobs.export import CSV, MSGPACK, NDJSON, streamed_media

    assert streamed_media("") is None and streamed_media("text/html") is None
    assert streamed_media("application/x-ndjson") == NDJSON and streamed_media("text/csv") == CSV
    assert streamed_media("application/json, text/csv") is None  # equal preference: the first listed
    assert streamed_media("application/json;q=0.1, text/csv") == CSV
    assert streamed_media("text/csv;q=0.5, application/json") is None
    assert streamed_media("application/msgpack;q=0, text/csv;q=0.2") == CSV  # q=0: not acceptable
    assert streamed_media("application/x-msgpack") == MSGPACK
