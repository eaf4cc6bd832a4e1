"""/api/batch-processor/configure in process: validation names the field, a change is merged, stored, applied to
the micro-batcher and the scheduler, seen by another app on the same store and by one started later; the admin
scope with API keys."""
from __future__ import annotations

import pytest

from asgi_support import anyio_backend, client, make_app  # noqa: F401
from astrodash_asgi.jobs import scheduling

pytestmark = pytest.mark.anyio
URL = "/api/batch-processor/configure"
ADMIN_KEY, USER_KEY = "admin-key-0123456789abcdef", "user-key-0123456789abcdef0"


@pytest.mark.parametrize("body, field", [
    ({"max_batch_size": 0}, "max_batch_size"), ({"max_batch_size": 2.5}, "max_batch_size"),
    ({"max_batch_size": True}, "max_batch_size"), ({"max_batch_size": 5000}, "max_batch_size"),
    ({"max_wait_time_ms": -1}, "max_wait_time_ms"), ({"max_wait_time_ms": "5"}, "max_wait_time_ms"),
    ({"max_wait_time_ms": 1e9}, "max_wait_time_ms"), ({"enable_dynamic_batching": 1}, "enable_dynamic_batching"),
    ({"priority_weights": {"high": -1}}, "priority_weights.high"),
    ({"priority_weights": {"low": None}}, "priority_weights.low"),
    ({"priority_weights": {"urgent": 1}}, "priority_weights.urgent"), ({"priority_weights": [1]}, "priority_weights"),
    ({"max_batch": 3}, "max_batch"), ([], "body"), ({"max_batch_size": 8, "priority_weights": {"normal": "x"}},
                                                   "priority_weights.normal")])
async def test_a_bad_field_is_422_naming_it_and_nothing_changes(tmp_path, body, field):
    app = make_app(tmp_path, rate_limit_enabled=False)
    async with client(app) as c:
        r = await c.post(URL, json=body)
        after = (await c.get(URL)).json()
    await app.state.astrodash.shutdown()
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert after["source"] == "settings" and after["max_batch_size"] == 32  # the partly good body stored nothing


async def test_only_json_objects_are_taken(tmp_path):
    app = make_app(tmp_path, rate_limit_enabled=False)
    async with client(app) as c:
        form = await c.post(URL, data={"max_batch_size": "8"})
        empty = await c.post(URL, content=b"", headers={"content-type": "application/json"})
    await app.state.astrodash.shutdown()
    assert form.status_code == 415 and empty.status_code == 422 and empty.json()["field"] == "body"


async def test_a_change_is_merged_stored_and_applied_by_every_app_on_the_store(tmp_path):
    a = make_app(tmp_path, rate_limit_enabled=False, micro_batch_max=16, micro_batch_wait_ms=2.0)
    b = make_app(tmp_path, rate_limit_enabled=False, micro_batch_max=16, micro_batch_wait_ms=2.0)
    sa, sb = a.state.astrodash, b.state.astrodash
    async with client(a) as ca:
        first = await ca.get(URL)
        changed = await ca.post(URL, json={"max_batch_size": 4, "max_wait_time_ms": 20,
                                           "priority_weights": {"low": 3.5}})
        await sb.config.refresh()  # what b's poller does every second
        seen_by_b = (sb.batcher.max_batch, sb.batcher.max_wait, dict(sb.engine.weights))
        off = await ca.post(URL, json={"enable_dynamic_batching": False})
        await sb.config.refresh()
        b_off = sb.batcher.max_batch
    assert first.json()["source"] == "settings" and first.json()["max_batch_size"] == 16
    assert first.json()["max_wait_time_ms"] == 2.0 and first.json()["priority_weights"] == scheduling.WEIGHTS
    assert changed.status_code == 200
    body = changed.json()
    weights = {**scheduling.WEIGHTS, "low": 3.5}
    assert body["source"] == "configured" and body["updated_at"]
    assert {k: body[k] for k in ("max_batch_size", "max_wait_time_ms", "enable_dynamic_batching",
                                 "priority_weights")} == {"max_batch_size": 4, "max_wait_time_ms": 20.0,
                                                          "enable_dynamic_batching": True, "priority_weights": weights}
    assert body["worker"]["max_batch_size"] == 4 and sa.batcher.max_wait == pytest.approx(0.02)
    assert seen_by_b == (4, pytest.approx(0.02), weights)
    # the scheduler uses the weights: a low batch now goes before a critical one submitted at the same time
    batches = [{"id": "c", "priority": "critical", "created_at": 100.0}, {"id": "l", "priority": "low",
                                                                           "created_at": 100.0}]
    assert [x["id"] for x in sb.engine.order(batches, 100.0)] == ["l", "c"]
    # dynamic batching off: one spectrum per pass, max_batch_size kept for when it is on again
    assert off.json()["max_batch_size"] == 4 and off.json()["enable_dynamic_batching"] is False
    assert off.json()["priority_weights"] == weights and b_off == 1 and sa.batcher.max_batch == 1
    # an app started later on the same store applies it at start-up
    c = make_app(tmp_path, rate_limit_enabled=False)
    await c.state.astrodash.startup()
    sc = c.state.astrodash
    assert (sc.config.source, sc.batcher.max_batch, sc.engine.weights["low"]) == ("configured", 1, 3.5)
    for app in (a, b, c):
        await app.state.astrodash.shutdown()


async def test_configure_needs_the_admin_scope_with_keys(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"{ADMIN_KEY} ops admin\n{USER_KEY} bob\n")
    app = make_app(tmp_path, require_api_key=True, api_keys_file=str(keys), rate_limit_enabled=False)
    async with client(app) as c:
        anonymous = await c.post(URL, json={"max_batch_size": 2})
        user = await c.post(URL, json={"max_batch_size": 2}, headers={"x-api-key": USER_KEY})
        user_get = await c.get(URL, headers={"x-api-key": USER_KEY})
        admin = await c.post(URL, json={"max_batch_size": 2}, headers={"x-api-key": ADMIN_KEY})
    await app.state.astrodash.shutdown()
    assert anonymous.status_code == 401 and user.status_code == 403 and "'admin' scope" in user.json()["detail"]
    assert user_get.status_code == 200 and user_get.json()["max_batch_size"] == 32
    assert admin.status_code == 200 and admin.json()["max_batch_size"] == 2
