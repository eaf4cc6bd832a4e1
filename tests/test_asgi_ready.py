"""Readiness that means something (models, template bank, a writable store, the queue's bound) and a start-up
that stops when a model or the store cannot be opened."""
import time

import anyio
import httpx
import pytest

from asgi_support import anyio_backend, client, make_app, random_model  # noqa: F401

from astrodash_asgi.process import ServerProcess
from astrodash_asgi.state import StartupError
from astrodash_core.classify import Classifier

pytestmark = pytest.mark.anyio


async def test_ready_reports_each_check_and_follows_the_store(tmp_path):
    app = make_app(tmp_path, ready_check_s=0)  # every /ready checks the store itself
    state = app.state.astrodash
    async with app.router.lifespan_context(app), client(app) as c:
        first = await c.get("/ready")
        (tmp_path / "store").rename(tmp_path / "away")  # the store's disk goes away under the server
        gone = await c.get("/ready")
        live = await c.get("/health")
        (tmp_path / "away").rename(tmp_path / "store")  # and comes back
        back = await c.get("/ready")
    checks = first.json()["checks"]
    bank_ok = "template_bank" not in state.problems
    assert checks["models"] == {"ok": True, "state": "loaded"}
    assert checks["storage"] == {"ok": True, "state": "writable"}
    assert checks["queue"] == {"ok": True, "state": "ok", "length": 0, "max": 1_000_000}
    assert first.status_code == (200 if bank_ok else 503) and checks["template_bank"]["ok"] is bank_ok
    assert gone.status_code == 503 and gone.json()["ready"] is False
    assert gone.json()["checks"]["storage"]["state"] == "unavailable" and "storage" in gone.json()["problems"]
    assert live.status_code == 200 and "storage" in live.json()["problems"]  # liveness stays 200
    assert back.json()["checks"]["storage"]["ok"] and "storage" not in back.json()["problems"]


async def test_ready_answers_from_background_checks_at_most_twice_the_period_old(tmp_path):
    app = make_app(tmp_path, ready_check_s=0.2)
    state = app.state.astrodash
    calls = []
    check_storage = state.check_storage
    state.check_storage = lambda: (calls.append(time.monotonic()), check_storage())
    async with app.router.lifespan_context(app), client(app) as c:
        await anyio.sleep(0.5)
        before = len(calls)
        probes = [(await c.get("/ready")).json()["checks"]["storage"] for _ in range(20)]
        assert len(calls) == before  # answered from the background checks: no probe checked the store
        (tmp_path / "store").rename(tmp_path / "away")
        await anyio.sleep(0.5)  # the next background checks see it
        gone = await c.get("/ready")
        (tmp_path / "away").rename(tmp_path / "store")
        await anyio.sleep(0.5)
        back = await c.get("/ready")
        ran = len(calls)
        await anyio.sleep(0.3)
        assert len(calls) > ran  # the checks keep running while the server runs
    await anyio.sleep(0.5)
    stopped = len(calls)
    await anyio.sleep(0.5)
    assert len(calls) == stopped  # and stop with it
    assert probes == [{"ok": True, "state": "writable"}] * 20
    gaps = [b - a for a, b in zip(calls[1:], calls[2:])]  # (the first is start-up's own check)
    assert 6 <= ran <= 12 and min(gaps) >= 0.15  # one check per period (0.2 s) in 1.5 s, not one per probe
    assert gone.status_code == 503 and gone.json()["checks"]["storage"]["state"] == "unavailable"
    assert back.json()["checks"]["storage"] == {"ok": True, "state": "writable"}


async def test_ready_checks_itself_when_the_newest_check_is_older_than_twice_the_period(tmp_path):
    app = make_app(tmp_path, ready_check_s=0.05)
    state = app.state.astrodash
    async with client(app) as c:  # no lifespan: no background checks
        await state.startup()
        await state.store_checks.stop()
        first = await c.get("/ready")
        (tmp_path / "store").rename(tmp_path / "away")
        at_once = await c.get("/ready")  # the newest check is fresh: answered from it
        await anyio.sleep(0.15)
        later = await c.get("/ready")  # older than 0.1 s: checked again
    assert first.json()["checks"]["storage"]["ok"] and at_once.json()["checks"]["storage"]["ok"]
    assert later.status_code == 503 and later.json()["checks"]["storage"]["state"] == "unavailable"


async def test_ready_is_503_when_the_queue_passes_its_bound(tmp_path):
    app = make_app(tmp_path, ready_max_queue=4, ready_check_s=0)
    state = app.state.astrodash
    await state.startup()
    await state.engine.stop()  # the queued batch-job items stay queued
    state.engine.ensure_running = lambda: None
    rows = [[3500.0 + 10 * i, 1.0] for i in range(50)]
    async with client(app) as c:
        submitted = await c.post("/api/batch-processor/submit", json={"data": [{"input": rows}] * 4})
        assert submitted.status_code == 202
        at = (await c.get("/ready")).json()["checks"]["queue"]  # at the bound: still ready
        await c.post("/api/batch-processor/submit", json={"data": [{"input": rows}]})
        over = await c.get("/ready")
    assert at == {"ok": True, "state": "ok", "length": 4, "max": 4}
    assert over.status_code == 503 and over.json()["checks"]["queue"] == {"ok": False, "state": "over bound",
                                                                         "length": 5, "max": 4}
    assert "ASTRODASH_READY_MAX_QUEUE" in over.json()["problems"]["queue"]


async def test_a_model_that_cannot_be_loaded_stops_a_strict_start(tmp_path):
    broken = Classifier(model="no-such-model", agnostic_model=random_model())
    app = make_app(tmp_path, classifier=broken)
    with pytest.raises(StartupError, match="known-z: .*no-such-model.*ASTRODASH_STRICT_STARTUP=0"):
        async with app.router.lifespan_context(app):
            pass
    tolerant = make_app(tmp_path, classifier=Classifier(model="no-such-model", agnostic_model=random_model()),
                        strict_startup=False)
    async with tolerant.router.lifespan_context(tolerant), client(tolerant) as c:
        r = await c.get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["models"]["state"] == "failed"
    assert "no-such-model" in r.json()["checks"]["models"]["detail"]


@pytest.mark.slow
def test_serve_stops_when_the_store_cannot_be_opened(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    env = {"ASTRODASH_STORAGE_URL": f"sqlite:///{tmp_path}/afile/models.db", "ASTRODASH_WARMUP": "0"}
    with pytest.raises(RuntimeError, match=r"server exited") as err:
        ServerProcess(tmp_path, env, timeout=60).start()
    assert "astrodash cannot start: storage: " in str(err.value) and "ASTRODASH_STRICT_STARTUP=0" in str(err.value)
    with ServerProcess(tmp_path, {**env, "ASTRODASH_STRICT_STARTUP": "0"}, timeout=60) as server:
        ready = httpx.get(server.base + "/ready")
        health = httpx.get(server.base + "/health")
    assert ready.status_code == 503 and ready.json()["checks"]["storage"]["state"] == "unavailable"
    assert ready.json()["checks"]["models"]["state"] == "loaded" and health.status_code == 200
