"""Metrics and configure through a real ``astrodash serve --workers 2``: /metrics adds up both workers' counts
(exactly the requests, spectra and model loads made), its multiprocess directory exists while the server runs and
is gone after; a configuration posted to one worker is applied by the other."""
from __future__ import annotations

import json
import os
import time
from itertools import count
from pathlib import Path

import httpx
import numpy as np
import pytest

from asgi_support import spectrum_bytes
from astrodash_asgi.process import ServerProcess
from test_metrics import samples, value

pytestmark = pytest.mark.slow
JOBS = "/api/batch-processor"
_ADDRESSES = count(1)


def fresh_address() -> str:
    """A client address of its own (the server trusts 127.0.0.1's X-Forwarded-For): its own rate-limit bucket."""
    n = next(_ADDRESSES)
    return f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"


def call(server, method: str, path: str, address: str | None = None, **kw) -> httpx.Response:
    """One request on a new connection, so the two workers take turns answering."""
    headers = {"connection": "close", "x-forwarded-for": address or fresh_address(), **kw.pop("headers", {})}
    return httpx.request(method, server.base + path, headers=headers, timeout=60, **kw)


def scrape(server) -> dict:
    r = call(server, "GET", "/metrics")
    assert r.status_code == 200, r.text
    return samples(r.text)


def access_pids(server, path: str) -> set:
    lines = [json.loads(l) for l in server.log_path.read_text().splitlines() if l.startswith("{")]
    return {l["pid"] for l in lines if l.get("path") == path}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"ASTRODASH_WARMUP": "0", "ASTRODASH_RATE_LIMIT_PER_MINUTE": "1", "ASTRODASH_RATE_LIMIT_BURST": "30",
           "ASTRODASH_TRUSTED_PROXIES": "127.0.0.1"}
    env_before = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with ServerProcess(tmp_path_factory.mktemp("serve2"), env, workers=2, timeout=120) as s:
        yield s
    if env_before is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = env_before


def _arrays(seed: int) -> dict:
    wave = np.linspace(3500, 9000, 600)
    flux = 1 + 0.3 * np.sin(wave / (200 + 40 * seed))
    return {"wave": wave.round(3).tolist(), "flux": flux.round(6).tolist()}


def test_metrics_add_up_both_workers(server):
    before = scrape(server)
    for _ in range(12):
        assert call(server, "GET", "/api/v1/line-list/elements").status_code == 200
    limited = [call(server, "GET", "/api/v1/line-list", address="10.250.0.1").status_code for _ in range(33)]
    processed = [call(server, "POST", "/api/v1/process", files={"file": ("a.dat", spectrum_bytes(z))})
                 for z in (0.011, 0.012, 0.013)]
    sub = call(server, "POST", f"{JOBS}/submit", json={"data": [{"input": _arrays(k)} for k in range(4)]})
    assert sub.status_code == 202, sub.text
    deadline = time.monotonic() + 60
    while (status := call(server, "GET", f"{JOBS}/status/{sub.json()['batch_id']}").json())["status"] != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    after = scrape(server)
    assert len(access_pids(server, "/api/v1/line-list/elements")) == 2, "both workers must have answered"
    assert limited.count(200) == 30 and limited.count(429) == 3
    assert all(r.status_code == 200 and r.headers["x-cache"] == "miss" for r in processed)
    assert status["completed_requests"] == 4

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    req = "astrodash_http_requests_total"
    assert grew(req, method="GET", route="/api/v1/line-list/elements", status="200") == 12
    assert grew("astrodash_http_request_duration_seconds_count", method="GET", route="/api/v1/line-list/elements") == 12
    assert grew(req, method="GET", route="/api/v1/line-list", status="429") == 3
    assert grew("astrodash_rate_limited_total", route="/api/v1/line-list") == 3
    assert grew(req, method="POST", route="/api/v1/process", status="200") == 3
    assert grew(req, method="GET", route="/metrics", status="200") == 1  # the first scrape, by either worker
    assert grew("astrodash_spectra_classified_total", via="micro-batch") == 3 + 4
    assert grew("astrodash_micro_batch_size_sum") == 3 + 4
    assert 1 <= grew("astrodash_micro_batch_size_count") <= 3 + 4
    for model in ("known-z", "agnostic"):  # each worker loaded each model once
        assert value(after, "astrodash_model_load_seconds_count", model=model) == 2
    assert value(after, "astrodash_batch_queue_length") == 0 and value(after, "astrodash_batch_active_batches") == 0
    m = call(server, "GET", f"{JOBS}/metrics").json()
    assert m["performance_stats"]["total_processed"] == 4 and m["performance_stats"]["success_rate"] == 1.0
    assert m["current_stats"]["throughput_per_second"] == round(4 / 60, 4)
    # the average pass size adds up both workers' passes, as /metrics does
    assert m["current_stats"]["average_batch_size"] == pytest.approx(
        value(after, "astrodash_micro_batch_size_sum") / value(after, "astrodash_micro_batch_size_count"), abs=1e-3)


def test_a_configuration_posted_to_one_worker_is_applied_by_the_other(server):
    posted = call(server, "POST", f"{JOBS}/configure",
                  json={"max_batch_size": 7, "max_wait_time_ms": 3, "priority_weights": {"high": 2.75}})
    assert posted.status_code == 200, posted.text
    poster = posted.json()["worker"]["pid"]
    applied: dict = {}
    deadline = time.monotonic() + 20
    while len(applied) < 2 and time.monotonic() < deadline:  # /health shows what each worker runs with
        h = call(server, "GET", "/health").json()
        if h["micro_batch"]["max_batch"] == 7 and h["scheduler"]["priority_weights"]["high"] == 2.75:
            applied[h["pid"]] = h["micro_batch"]["max_wait_ms"]
        time.sleep(0.05)
    assert len(applied) == 2 and poster in applied, applied
    assert all(w == pytest.approx(3.0) for w in applied.values())
    seen = call(server, "GET", f"{JOBS}/configure").json()
    assert seen["source"] == "configured" and seen["max_batch_size"] == 7


def test_the_multiprocess_directory_lives_as_long_as_the_server(tmp_path):
    with ServerProcess(tmp_path, {"ASTRODASH_WARMUP": "0"}, workers=2, timeout=120) as s:
        pid = httpx.get(s.base + "/health", timeout=30).json()["pid"]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
        assert found, "the worker runs without PROMETHEUS_MULTIPROC_DIR"
        directory = Path(found[0])
        assert directory.is_dir() and any(directory.glob("*.db"))
    assert not directory.exists()


def test_an_upload_sent_chunk_by_chunk_to_both_workers_becomes_a_batch(server):
    import hashlib

    from asgi_support import make_zip

    data = make_zip({f"sn{k}.dat": spectrum_bytes(0.02 + 0.01 * k) for k in range(2)})
    made = call(server, "POST", "/api/v1/uploads", json={"total_size": len(data),
                                                          "sha256": hashlib.sha256(data).hexdigest()})
    assert made.status_code == 201, made.text
    uid, step = made.json()["upload_id"], len(data) // 5 + 1
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        r = call(server, "PATCH", f"/api/v1/uploads/{uid}", content=chunk,
                 headers={"content-range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"})
        assert r.status_code == 200, r.text
        replay = call(server, "PATCH", f"/api/v1/uploads/{uid}", content=chunk,  # a retry of the same chunk
                      headers={"content-range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"})
        assert replay.status_code == 409 and replay.headers["upload-offset"] == str(start + len(chunk))
    pids = access_pids(server, f"/api/v1/uploads/{uid}")
    assert r.json()["complete"] and len(pids) == 2, pids
    sub = call(server, "POST", f"{JOBS}/submit", data={"upload_id": uid})
    assert sub.status_code == 202 and sub.json()["request_count"] == 2, sub.text
