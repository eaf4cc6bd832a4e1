"""Metrics in process: /metrics counts exactly the requests, spectra and passes made, by route template; the
batch processor's metrics and analytics agree with sums computed here over items planted in the job store; the
API-key rule of /metrics; the CPU meter and the multiprocess directory's housekeeping."""
from __future__ import annotations

import math
import os
import sqlite3
import time
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asgi_support import anyio_backend, client, make_app, spectrum_bytes  # noqa: F401
from astrodash_asgi.jobs.stats import CpuMeter
from astrodash_asgi.serve import METRICS_DIR_PREFIX, make_metrics_dir

pytestmark = pytest.mark.anyio
JOBS = "/api/batch-processor"
ELEMENT = "/api/v1/line-list/element/{element}"
ADMIN_KEY, USER_KEY = "admin-key-0123456789abcdef", "user-key-0123456789abcdef0"


def samples(text: str) -> dict:
    """{(sample name, frozenset of labels): value}, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed: dict, name: str, **labels) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


async def scrape(c, **headers) -> dict:
    r = await c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_requests_are_counted_by_route_template_status_and_latency(tmp_path):
    app = make_app(tmp_path, rate_limit_enabled=False)
    elapsed = 0.0
    async with client(app) as c:
        before = await scrape(c)
        codes = []
        for name in ("Si%20II", "H%20I", "Si%20II", "Zz", "Fe%20II"):
            t0 = time.perf_counter()
            codes.append((await c.get(f"/api/v1/line-list/element/{name}")).status_code)
            elapsed += time.perf_counter() - t0
        for path in ("/no/such/path", "/api/v1/nothing/here"):
            assert (await c.get(path)).status_code == 404
        after = await scrape(c)
    ok, missing = codes.count(200), codes.count(404)
    assert ok >= 3 and ok + missing == 5
    req = "astrodash_http_requests_total"
    assert value(after, req, method="GET", route=ELEMENT, status="200") - \
        value(before, req, method="GET", route=ELEMENT, status="200") == ok
    assert value(after, req, method="GET", route=ELEMENT, status="404") == missing
    assert value(after, req, method="GET", route="unmatched", status="404") == 2  # bounded: no raw paths
    assert not any("Si" in dict(labels).get("route", "") for _, labels in after)
    lat = "astrodash_http_request_duration_seconds"
    assert value(after, lat + "_count", method="GET", route=ELEMENT) == 5
    assert 0 < value(after, lat + "_sum", method="GET", route=ELEMENT) <= elapsed
    assert value(after, lat + "_bucket", method="GET", route=ELEMENT, le="+Inf") == 5
    assert value(after, req, method="GET", route="/metrics", status="200") == 1  # the first scrape


async def test_rate_limited_requests_are_counted_under_their_route(tmp_path):
    app = make_app(tmp_path, rate_limit_per_minute=1, rate_limit_burst=3)
    async with client(app) as c:
        codes = [(await c.get("/api/v1/line-list/elements")).status_code for _ in range(5)]
    async with client(app, peer=("127.0.0.9", 40000)) as other:  # the first client has no tokens left
        after = await scrape(other)
    assert codes == [200, 200, 200, 429, 429]
    assert value(after, "astrodash_rate_limited_total", route="/api/v1/line-list/elements") == 2
    assert value(after, "astrodash_http_requests_total", method="GET", route="/api/v1/line-list/elements",
                 status="429") == 2


async def test_spectra_classified_micro_batches_and_model_loads(tmp_path):
    app = make_app(tmp_path, rate_limit_enabled=False)
    async with client(app) as c:
        await app.state.astrodash.startup()
        before = await scrape(c)
        for z in (0.01, 0.02):  # two different files: two classifications, one spectrum per pass
            r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes(z))})
            assert r.status_code == 200 and r.headers["x-cache"] == "miss"
        again = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes(0.01))})
        batch = await c.post("/api/v1/batch-process", files=[("files", ("b.dat", spectrum_bytes(0.03))),
                                                              ("files", ("c.dat", spectrum_bytes(0.04))),
                                                              ("files", ("bad.dat", b"not a spectrum"))])
        after = await scrape(c)
    await app.state.astrodash.shutdown()
    assert again.headers["x-cache"] == "hit" and batch.status_code == 200
    spectra = "astrodash_spectra_classified_total"
    assert value(after, spectra, via="micro-batch") - value(before, spectra, via="micro-batch") == 2  # no hit
    assert value(after, spectra, via="batch-process") - value(before, spectra, via="batch-process") == 2
    size = "astrodash_micro_batch_size"
    assert value(after, size + "_count") - value(before, size + "_count") == 2
    assert value(after, size + "_sum") - value(before, size + "_sum") == 2
    for model in ("known-z", "agnostic"):
        assert value(after, "astrodash_model_load_seconds_count", model=model) == 1


async def test_metrics_need_the_admin_scope_with_keys_unless_public(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"{ADMIN_KEY} ops admin\n{USER_KEY} bob\n")
    app = make_app(tmp_path, require_api_key=True, api_keys_file=str(keys), rate_limit_enabled=False)
    async with client(app) as c:
        codes = [(await c.get("/metrics", headers=h)).status_code
                 for h in ({}, {"x-api-key": USER_KEY}, {"x-api-key": ADMIN_KEY})]
        user_json = await c.get(f"{JOBS}/metrics", headers={"x-api-key": USER_KEY})
    assert codes == [401, 403, 200] and user_json.status_code == 200
    app = make_app(tmp_path / "public", require_api_key=True, api_keys_file=str(keys), metrics_public=True,
                   rate_limit_enabled=False)
    async with client(app) as c:
        open_codes = [(await c.get("/metrics", headers=h)).status_code for h in ({}, {"x-api-key": USER_KEY})]
        others = (await c.get("/api/v1/line-list/elements")).status_code
    assert open_codes == [200, 200] and others == 401  # only /metrics is opened


# --- the batch processor's numbers, from the job store ----------------------------------------------------------
def _plant(store, db_path):
    """Batch a (10 items, submitted 50 min ago): 3 finished 40 min ago, 2 (one failed) 20 min ago, 4 finished
    30 s ago, 1 still running; batch b: 5 items queued.  Returns (now, created_a, finished items)."""
    now = time.time()
    created = now - 3000.0
    items = [{"request_id": f"r{i}", "name": f"s{i}", "input": b"x"} for i in range(10)]
    store.create_batch({"id": "a", "priority": "normal", "opts_key": "k"}, items)
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE batches SET created_at = ? WHERE id = 'a'", (created,))
    claimed = store.claim("w", 10, lambda batches, t: batches, now=created)
    assert len(claimed) == 10
    plan = [(now - 2400.0, 0, None, 10.0), (now - 2400.0, 1, None, 10.0), (now - 2400.0, 2, None, 10.0),
            (now - 1200.0, 3, "unreadable", 30.0), (now - 1200.0, 4, None, 20.0),
            *[(now - 30.0, i, None, 5.0) for i in range(5, 9)]]
    for t, idx, error, ms in plan:
        out = {"batch_id": "a", "idx": idx, "processing_ms": ms}
        out.update({"error": error} if error else {"result": b"r"})
        assert store.complete("w", [out], now=t) == 1
    store.create_batch({"id": "b", "priority": "low", "opts_key": "k"},
                       [{"request_id": f"q{i}", "name": f"q{i}", "input": b"x"} for i in range(5)])
    return now, created, plan


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


async def test_batch_processor_metrics_and_analytics_agree_with_the_store(tmp_path):
    app = make_app(tmp_path, rate_limit_enabled=False)
    store = app.state.astrodash.engine.store
    now, created, plan = _plant(store, tmp_path / "store" / "models.db")
    async with client(app) as c:
        m = (await c.get(f"{JOBS}/metrics")).json()
        a = (await c.get(f"{JOBS}/analytics", params={"period": "1h", "metrics": "throughput,latency,error_rate,"
                                                      "completed,failed,processing_time"})).json()
        default = (await c.get(f"{JOBS}/analytics")).json()
        week = (await c.get(f"{JOBS}/analytics", params={"period": "7d", "metrics": "completed"})).json()
        prom = await scrape(c)
    await app.state.astrodash.shutdown()
    recent = [p for p in plan if p[0] >= now - 60]
    assert m["current_stats"] == {
        "active_batches": 2, "queue_length": 5, "average_batch_size": 0.0,
        "throughput_per_second": round(len(recent) / 60.0, 4),
        "average_latency_ms": round(sum(t - created for t, *_ in recent) * 1000.0 / len(recent), 3)}
    assert m["performance_stats"] == {"total_processed": 9, "success_rate": round(8 / 9, 6),
                                      "error_rate": round(1 / 9, 6),
                                      "average_processing_time_ms": round(sum(p[3] for p in plan) / 9, 3)}
    assert m["resource_usage"]["memory_usage_mb"] > 10 and m["resource_usage"]["cpu_usage_percent"] >= 0
    assert value(prom, "astrodash_batch_queue_length") == 5 and value(prom, "astrodash_batch_active_batches") == 2

    # the series: one point a minute, on whole minutes, every planted item in its minute
    assert a["interval_s"] == 60 and a["metrics"][0] == "throughput" and len(a["series"]["throughput"]) == 60
    expected: dict[str, list] = {}
    for t, _, error, ms in plan:
        expected.setdefault(_iso(math.floor(t / 60) * 60), []).append((t, error, ms))
    for k, point in enumerate(a["series"]["completed"]):
        got = {name: a["series"][name][k]["value"] for name in a["metrics"]}
        rows = expected.pop(point["timestamp"], [])
        n, failed = len(rows), sum(1 for r in rows if r[1])
        assert got["completed"] == n - failed and got["failed"] == failed
        assert got["throughput"] == pytest.approx(n / 60.0)
        if n:
            assert got["latency"] == pytest.approx(sum(t - created for t, *_ in rows) * 1000.0 / n, abs=1e-3)
            assert got["processing_time"] == pytest.approx(sum(r[2] for r in rows) / n, abs=1e-3)
            assert got["error_rate"] == pytest.approx(failed / n)
        else:
            assert got["latency"] is got["processing_time"] is got["error_rate"] is None
    assert not expected, f"planted items outside the series: {expected}"
    assert default["metrics"] == ["throughput", "latency"] and default["period"] == "1h"
    assert week["interval_s"] == 3600 and len(week["series"]["completed"]) == 168
    assert sum(p["value"] for p in week["series"]["completed"]) == 8


@pytest.mark.parametrize("query, field", [
    ({"period": "1y"}, "period"), ({"period": "0h"}, "period"), ({"period": "31d"}, "period"),
    ({"period": " 1h"}, "period"), ({"metrics": "throughput,speed"}, "metrics"),
    ({"period": "1h", "interval": "2h"}, "interval"), ({"period": "30d", "interval": "1m"}, "interval")])
async def test_bad_analytics_queries_are_422_naming_the_parameter(tmp_path, query, field):
    async with client(make_app(tmp_path, rate_limit_enabled=False)) as c:
        r = await c.get(f"{JOBS}/analytics", params=query)
    assert r.status_code == 422 and r.json()["field"] == field, r.text


def test_cpu_meter_measures_over_at_least_its_minimum_interval():
    clock, cpu = [100.0], [5.0]
    meter = CpuMeter(min_s=1.0, clock=lambda: clock[0], cpu=lambda: cpu[0])
    clock[0], cpu[0] = 102.0, 6.0
    assert meter.percent() == pytest.approx(50.0)   # 1 CPU second over 2 s; now the reference
    clock[0], cpu[0] = 102.5, 6.5
    assert meter.percent() == pytest.approx(100.0)  # 0.5 s of 0.5 s; too close to become the reference
    clock[0], cpu[0] = 104.0, 6.5
    assert meter.percent() == pytest.approx(25.0)   # 0.5 s over 2 s since the reference


def test_a_metrics_directory_is_fresh_and_those_of_dead_servers_are_removed(tmp_path):
    dead = tmp_path / f"{METRICS_DIR_PREFIX}{2 ** 22 + 7}-old"    # above pid_max: no such process
    alive = tmp_path / f"{METRICS_DIR_PREFIX}{os.getppid()}-live"
    other = tmp_path / "something-else"
    for d in (dead, alive, other):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"x")
    made = make_metrics_dir(str(tmp_path))
    assert not dead.exists() and alive.exists() and other.exists()
    assert os.path.basename(made).startswith(f"{METRICS_DIR_PREFIX}{os.getpid()}-") and os.listdir(made) == []


async def test_a_mounted_app_labels_its_own_route_templates(tmp_path):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/astrodash", make_app(tmp_path, rate_limit_enabled=False))])
    async with client(outer) as c:
        assert (await c.get("/astrodash/api/v1/line-list/element/H%20I")).status_code == 200
        assert (await c.get("/astrodash/nothing")).status_code == 404
        r = await c.get("/astrodash/metrics")
    got = samples(r.text)
    assert value(got, "astrodash_http_requests_total", method="GET", route=ELEMENT, status="200") == 1
    assert value(got, "astrodash_http_requests_total", method="GET", route="unmatched", status="404") == 1
