"""Limits the documentation promises: 413 while streaming, safe zips, rate limits, request ids, logs."""
import json
import logging
import time

import pytest

from asgi_support import (MB, anyio_backend, client, make_app, make_zip, multipart_stream, params,  # noqa: F401
                          spectrum_bytes)

pytestmark = pytest.mark.anyio


async def test_file_over_50mb_is_413_before_the_body_is_read(tmp_path):
    consumed = [0]
    body, headers = multipart_stream([("params", None, b"{}"), ("file", "huge.dat", 80 * MB)], consumed=consumed)
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/process", content=body, headers=headers)
    assert r.status_code == 413 and "huge.dat" in r.json()["detail"] and "50 MB" in r.json()["detail"]
    assert 50 * MB < consumed[0] < 52 * MB          # stopped right after the 50 MB mark, not at 80 MB
    assert r.headers["x-request-id"] and "x-ratelimit-remaining" in r.headers


async def test_request_over_100mb_is_413_while_streaming(tmp_path):
    consumed = [0]
    parts = [("files", f"part{i}.dat", 40 * MB) for i in range(4)]   # each file is fine, the sum is not
    body, headers = multipart_stream(parts, consumed=consumed)
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/batch-process", content=body, headers=headers)
    assert r.status_code == 413 and "100 MB" in r.json()["detail"]
    assert 100 * MB < consumed[0] < 102 * MB


async def test_declared_length_over_the_limit_is_413_without_reading(tmp_path):
    consumed = [0]
    body, headers = multipart_stream([("file", "a.dat", 10)], consumed=consumed)
    headers["content-length"] = str(200 * MB)
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/process", content=body, headers=headers)
    assert r.status_code == 413 and consumed[0] == 0


async def test_smaller_limits_come_from_settings(tmp_path, monkeypatch):
    from astrodash_asgi import Settings

    monkeypatch.setenv("ASTRODASH_MAX_FILE_BYTES", "1000")
    monkeypatch.setenv("ASTRODASH_CORS_ORIGINS", "https://a.org, https://b.org")
    monkeypatch.setenv("ASTRODASH_RATE_LIMIT_ENABLED", "no")
    s = Settings.from_env()
    assert s.max_file_bytes == 1000 and s.cors_origins == ["https://a.org", "https://b.org"]
    assert s.rate_limit_enabled is False and s.max_request_bytes == 100 * MB
    monkeypatch.setenv("ASTRODASH_ZIP_MAX_RATIO", "lots")
    with pytest.raises(ValueError, match="ASTRODASH_ZIP_MAX_RATIO"):
        Settings.from_env()
    async with client(make_app(tmp_path, max_file_bytes=1000)) as c:
        r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())})
    assert r.status_code == 413


async def test_zip_bomb_is_refused(tmp_path):
    bomb = make_zip({"bomb.dat": b"0" * (200 * MB)})           # ~200 KB on the wire
    assert len(bomb) < 1 * MB
    many = make_zip({f"s{i}.dat": b"1 2\n" for i in range(30)})
    async with client(make_app(tmp_path)) as c:
        r1 = await c.post("/api/v1/batch-process", files={"zip_file": ("bomb.zip", bomb)})
    async with client(make_app(tmp_path, zip_max_entries=20)) as c:
        r2 = await c.post("/api/v1/batch-process", files={"zip_file": ("many.zip", many)})
    async with client(make_app(tmp_path, zip_max_total_bytes=1 * MB, zip_max_ratio=1e9)) as c:
        r3 = await c.post("/api/v1/batch-process", files={"zip_file": ("bomb.zip", bomb)})
    assert r1.status_code == 413 and "bomb" in r1.json()["detail"]
    assert r2.status_code == 413 and "30 entries" in r2.json()["detail"]
    assert r3.status_code == 413 and "expands" in r3.json()["detail"]


async def test_zip_entries_skipped_reported_and_kept_apart(tmp_path):
    good = spectrum_bytes()
    archive = make_zip({"a/sn.dat": good, "b/sn.dat": good, "__MACOSX/a/._sn.dat": b"junk", ".hidden.dat": good,
                        "a/.DS_Store": b"x", "notes.pdf": b"%PDF-1.4 nothing here", "empty.dat": b""})
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/batch-process", files={"zip_file": ("s.zip", archive)},
                         data=params(knownZ=True, zValue=0.01))
        bad = await c.post("/api/v1/batch-process", files={"zip_file": ("s.zip", b"PK\x03\x04 truncated")})
    assert r.status_code == 200
    out = r.json()
    assert list(out) == ["a/sn.dat", "b/sn.dat", "notes.pdf", "empty.dat"]
    assert out["a/sn.dat"]["classification"]["best_match"]["type"] and out["b/sn.dat"]["model_type"] == "dash"
    assert "error" in out["notes.pdf"] and "error" in out["empty.dat"]
    assert bad.status_code == 400 and "s.zip" in bad.json()["detail"]


async def test_batch_files_duplicates_kept_apart_and_xor(tmp_path):
    good = spectrum_bytes()
    files = [("files", ("sn.dat", good)), ("files", ("sn.dat", good)), ("files", ("bad.dat", b"nonsense"))]
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/batch-process", files=files, data=params(knownZ=True, zValue=0.01))
        both = await c.post("/api/v1/batch-process", files=[("files", ("a.dat", good)),
                                                            ("zip_file", ("z.zip", make_zip({"a.dat": good})))])
        none = await c.post("/api/v1/batch-process", data=params())
    assert r.status_code == 200 and list(r.json()) == ["sn.dat", "sn.dat (2)", "bad.dat"]
    assert "bad.dat" in r.json()["bad.dat"]["error"]
    assert both.status_code == 422 and none.status_code == 422


async def test_rate_limit_token_bucket(tmp_path):
    app = make_app(tmp_path, rate_limit_per_minute=60, rate_limit_burst=5)
    async with client(app, peer=("10.1.1.1", 1)) as c, client(app, peer=("10.1.1.2", 1)) as other:
        codes = [(await c.get("/")).status_code for _ in range(5)]
        r = await c.get("/")
        o = await other.get("/")
    assert codes == [200] * 5
    assert r.status_code == 429 and r.json()["detail"].startswith("Rate limit exceeded")
    assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-limit"] == "60" and 0 < int(r.headers["x-ratelimit-reset"]) - time.time() <= 6
    assert o.status_code == 200 and o.headers["x-ratelimit-remaining"] == "4"


async def test_rate_limit_defaults_and_trusted_proxies(tmp_path, monkeypatch):
    from astrodash_asgi.middleware import rate_limit

    class Frozen(rate_limit.TokenBucket):  # the buckets' clock stands still: no refill however slow the machine
        def __init__(self, *args, **kw):
            super().__init__(*args, clock=lambda: 1000.0, **kw)

    monkeypatch.setattr(rate_limit, "TokenBucket", Frozen)
    app = make_app(tmp_path)
    async with client(app) as c:
        first = await c.get("/")
        codes = [(await c.get("/")).status_code for _ in range(110)]
    assert first.headers["x-ratelimit-limit"] == "600" and first.headers["x-ratelimit-remaining"] == "99"
    assert codes == [200] * 99 + [429] * 11                          # a burst of 100, the first request included

    proxied = make_app(tmp_path, rate_limit_burst=2, trusted_proxies=["10.0.0.0/8"])
    async with client(proxied, peer=("10.0.0.5", 1)) as c:
        a = [(await c.get("/", headers={"x-forwarded-for": "203.0.113.7"})).status_code for _ in range(3)]
        b = await c.get("/", headers={"x-forwarded-for": "203.0.113.8, 10.0.0.9"})
    async with client(proxied, peer=("198.51.100.1", 1)) as c:   # untrusted peer: its header is ignored
        d = [(await c.get("/", headers={"x-forwarded-for": f"1.2.3.{i}"})).status_code for i in range(3)]
    assert a == [200, 200, 429] and b.status_code == 200 and d == [200, 200, 429]


async def test_request_id_echo_generation_and_log_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="astrodash.access")
    async with client(make_app(tmp_path)) as c:
        mine = await c.get("/health", headers={"x-request-id": "obs-2024.run:42"})
        evil = await c.get("/health", headers={"x-request-id": "bad id\twith spaces" + "x" * 200})
        gen = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                           data=params(knownZ=True, zValue=0.01))
    assert mine.headers["x-request-id"] == "obs-2024.run:42"
    assert evil.headers["x-request-id"] != "bad id" and len(evil.headers["x-request-id"]) == 32
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "astrodash.access"]
    assert len(lines) == 3
    assert lines[0]["request_id"] == "obs-2024.run:42" and lines[0]["status"] == 200
    last = lines[-1]
    assert last["path"] == "/api/v1/process" and last["method"] == "POST" and last["spectra"] == 1
    assert last["request_id"] == gen.headers["x-request-id"] and last["duration_ms"] > 0


async def test_health_and_ready_are_never_rate_limited(tmp_path):
    app = make_app(tmp_path, rate_limit_per_minute=60, rate_limit_burst=2)
    async with client(app, peer=("10.9.9.9", 1)) as c:
        probes = [(await c.get(p)).status_code for p in ("/health", "/ready") * 10]
        first, second, third = [(await c.get("/")).status_code for _ in range(3)]
        after = await c.get("/health")
    assert 429 not in probes and probes[::2] == [200] * 10   # 20 probes, none counted against the client
    assert (first, second, third) == (200, 200, 429)
    assert after.status_code == 200 and "x-ratelimit-remaining" not in after.headers


async def test_overload_is_503_with_retry_after_before_the_body_is_read(tmp_path):
    import anyio

    app = make_app(tmp_path, max_pending_process=2, overload_retry_after_s=3, rate_limit_enabled=False)
    state = app.state.astrodash
    gate = anyio.Event()
    original = state.batcher.submit

    async def slow_submit(key, item):        # hold the admitted requests in progress until released
        await gate.wait()
        return await original(key, item)

    state.batcher.submit = slow_submit
    files = {"file": ("a.dat", spectrum_bytes())}
    form = params(knownZ=True, zValue=0.01)
    async with client(app) as c:
        results = {}

        async def send(i):
            results[i] = await c.post("/api/v1/process", files=files, data=form)

        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(send, i)
            with anyio.fail_after(30):
                while state.pending["process"] < 2:
                    await anyio.sleep(0.01)
            consumed = [0]
            body, headers = multipart_stream([("file", "big.dat", 5 * MB)], consumed=consumed)
            busy = await c.post("/api/v1/process", content=body, headers=headers)
            health = await c.get("/health")
            gate.set()
        again = await c.post("/api/v1/process", files=files, data=form)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "3" and "busy" in busy.json()["detail"]
    assert consumed[0] < 1 * MB                                     # refused before the upload was read
    assert health.status_code == 200 and health.json()["load"]["rejected_busy"]["process"] == 1
    assert [results[i].status_code for i in range(2)] == [200, 200] and again.status_code == 200
    assert state.pending == {"process": 0, "batch": 0}


async def test_ready_is_503_until_models_are_loaded(tmp_path):
    app = make_app(tmp_path)
    state = app.state.astrodash
    async with client(app) as c:
        before = await c.get("/ready")
        await state.startup()
        after = await c.get("/ready")
    assert before.status_code == 503 and before.json()["ready"] is False
    assert after.status_code == (503 if state.problems else 200)
    assert before.json()["checks"]["models"]["state"] == "loading"
    assert after.json()["ready"] is (not state.problems) and after.json()["problems"] == state.problems
