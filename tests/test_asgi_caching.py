"""The /process result cache (X-Cache) and HTTP caching (ETag, If-None-Match, Cache-Control)."""
import json

import httpx
import msgpack
import pytest

from asgi_support import anyio_backend, client, make_app, params, spectrum_bytes  # noqa: F401
from test_models import make_model, random_weights

from astrodash_asgi.http_cache import etag_of, none_match
from astrodash_asgi.process import ServerProcess

pytestmark = pytest.mark.anyio
Z = params(knownZ=True, zValue=0.01)


async def _process(c, data=None, name="a.dat", form=Z, **headers):
    return await c.post("/api/v1/process", files={"file": (name, data or spectrum_bytes())}, data=form,
                        headers=headers)


async def test_a_repeated_process_is_answered_from_the_cache_byte_for_byte(tmp_path):
    app = make_app(tmp_path)
    state = app.state.astrodash
    async with client(app) as c:
        first = await _process(c)
        classified = state.batcher.items
        second = await _process(c)
        after_hit = state.batcher.items
        smoothed = await _process(c, form=params(knownZ=True, zValue=0.01, smoothing=3))
        renamed = await _process(c, name="b.dat")
        other_z = await _process(c, form=params(knownZ=True, zValue=0.02))
        packed = await _process(c, accept="application/msgpack")
        packed_again = await _process(c, accept="application/msgpack")
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit" and second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert after_hit == classified == 1  # the hit classified nothing
    # anything that changes the answer is another key
    assert [r.headers["x-cache"] for r in (smoothed, renamed, other_z, packed)] == ["miss"] * 4
    assert renamed.json()["file"] == "b.dat" and first.json()["file"] == "a.dat"
    assert other_z.json()["redshift"] == 0.02
    assert packed_again.headers["x-cache"] == "hit" and msgpack.unpackb(packed_again.content) == first.json()
    assert state.results.stats()["hits"] == 2 and state.results.stats()["entries"] == 5


async def test_the_cache_is_bounded_by_entries_and_bytes(tmp_path):
    files = [spectrum_bytes(z_comment=z) for z in (0.01, 0.02, 0.03)]
    async with client(make_app(tmp_path, result_cache_max_entries=2)) as c:
        seq = [(await _process(c, f)).headers["x-cache"] for f in (files[0], files[1], files[2], files[1], files[0])]
    assert seq == ["miss", "miss", "miss", "hit", "miss"]  # the least recently used went first
    app = make_app(tmp_path, result_cache_max_bytes=1000)  # smaller than one answer: nothing is kept
    async with client(app) as c:
        seq = [(await _process(c)).headers["x-cache"] for _ in range(2)]
    assert seq == ["miss", "miss"] and app.state.astrodash.results.stats()["bytes"] == 0
    async with client(make_app(tmp_path, result_cache_max_entries=0)) as c:
        off = await _process(c)
    assert off.status_code == 200 and "x-cache" not in off.headers


async def test_a_changed_or_deleted_model_is_never_answered_from_the_cache(tmp_path):
    # two apps on one store stand for two worker processes
    a, b = make_app(tmp_path), make_app(tmp_path)
    async with client(a) as ca, client(b) as cb:
        up = await ca.post("/api/v1/upload-model", files={"file": ("m.npz", make_model(
            weights=random_weights(seed=3)).to_bytes())})
        mid = up.json()["model_id"]
        form = {**Z, "model_id": mid}
        seq = [(await _process(ca, form=form)).headers["x-cache"] for _ in range(2)]
        default = await _process(ca)
        changed = await cb.put(f"/api/v1/models/{mid}", json={"description": "retrained"})  # the other worker
        after_change = await _process(ca, form=form)
        entries = [a.state.astrodash.results.stats()["entries"]]
        assert (await ca.put(f"/api/v1/models/{mid}", json={"name": "x"})).status_code == 200
        entries.append(a.state.astrodash.results.stats()["entries"])
        recached = await _process(ca, form=form)
        entries.append(a.state.astrodash.results.stats()["entries"])
        await ca.delete(f"/api/v1/models/{mid}")
        entries.append(a.state.astrodash.results.stats()["entries"])
        deleted = await _process(ca, form=form)
    assert seq == ["miss", "hit"] and default.headers["x-cache"] == "miss"
    assert changed.status_code == 200 and after_change.headers["x-cache"] == "miss"
    # a change or deletion in this worker also frees the model's entries; the default model's answer stays
    assert recached.headers["x-cache"] == "miss" and entries == [3, 1, 2, 1]
    assert deleted.status_code == 404 and "x-cache" not in deleted.headers


def test_if_none_match_parsing():
    tag = etag_of(b"abc")
    assert tag.startswith('"') and tag.endswith('"') and tag != etag_of(b"abd")
    assert none_match(tag, tag) and none_match(f'"x", W/{tag}', tag) and none_match("*", tag)
    assert not none_match('"x"', tag) and not none_match(None, tag) and not none_match(tag[:-2] + '"', tag)


@pytest.mark.parametrize("path", ["/api/v1/line-list", "/api/v1/line-list/elements",
                                  "/api/v1/line-list/element/Si%20II",
                                  "/api/v1/line-list/filter?min_wavelength=5000&max_wavelength=7000",
                                  "/api/v1/analysis-options",
                                  "/api/v1/template-spectrum?sn_type=Ia&age_bin=2%20to%206"])
async def test_read_only_resources_have_etags_and_answer_304(tmp_path, path):
    async with client(make_app(tmp_path)) as c:
        first = await c.get(path)
        if first.status_code == 503:
            pytest.skip("no template bank installed")
        same = await c.get(path, headers={"if-none-match": first.headers["etag"]})
        weak = await c.get(path, headers={"if-none-match": f'"other", W/{first.headers["etag"]}'})
        stale = await c.get(path, headers={"if-none-match": '"0123"'})
        packed = await c.get(path, headers={"accept": "application/msgpack"})
    assert first.status_code == 200 and first.headers["etag"] == etag_of(first.content)
    assert first.headers["cache-control"] == "public, max-age=3600" and "Accept" in first.headers["vary"]
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == first.headers["etag"]
    assert same.headers["cache-control"] == first.headers["cache-control"]
    assert weak.status_code == 304 and stale.status_code == 200 and stale.content == first.content
    assert packed.headers["etag"] != first.headers["etag"]  # another representation, another tag


async def test_model_list_and_metadata_tags_follow_the_store(tmp_path):
    async with client(make_app(tmp_path)) as c:
        empty = await c.get("/api/v1/models")
        up = await c.post("/api/v1/upload-model", files={"file": ("m.npz", make_model().to_bytes())})
        mid = up.json()["model_id"]
        listed = await c.get("/api/v1/models", headers={"if-none-match": empty.headers["etag"]})
        meta = await c.get(f"/api/v1/models/{mid}")
        unchanged = await c.get(f"/api/v1/models/{mid}", headers={"if-none-match": meta.headers["etag"]})
        await c.put(f"/api/v1/models/{mid}", json={"description": "new"})
        changed = await c.get(f"/api/v1/models/{mid}", headers={"if-none-match": meta.headers["etag"]})
    assert empty.headers["cache-control"] == "public, no-cache"
    assert listed.status_code == 200 and [m["id"] for m in listed.json()] == [mid]  # the list changed
    assert listed.headers["x-total-count"] == "1"
    assert unchanged.status_code == 304 and changed.status_code == 200 and changed.json()["description"] == "new"


@pytest.mark.slow
def test_caching_through_a_real_server(tmp_path):
    with ServerProcess(tmp_path, {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_WARMUP": "0"}, timeout=60) as server:
        with httpx.Client(base_url=server.base, timeout=60) as c:
            runs = [c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data=Z) for _ in range(2)]
            lines = c.get("/api/v1/line-list")
            again = c.get("/api/v1/line-list", headers={"if-none-match": lines.headers["etag"]})
    assert [r.headers["x-cache"] for r in runs] == ["miss", "hit"] and runs[0].content == runs[1].content
    assert json.loads(runs[1].content)["classification"]["best_match"]["type"]
    assert again.status_code == 304 and again.headers["etag"] == lines.headers["etag"]
    assert "etag" in runs[0].headers.get("access-control-expose-headers", "etag").lower()


def test_the_api_description_tells_of_etags_and_x_cache():
    from astrodash_asgi.openapi import document

    paths = document()["paths"]
    cached = [p for p, ops in paths.items() if "304" in ops.get("get", {}).get("responses", {})]
    assert sorted(cached) == sorted(["/api/v1/analysis-options", "/api/v1/template-spectrum", "/api/v1/line-list",
                                     "/api/v1/line-list/elements", "/api/v1/line-list/element/{element}",
                                     "/api/v1/line-list/filter", "/api/v1/models", "/api/v1/models/owner/{owner}",
                                     "/api/v1/models/{model_id}"])
    assert "ETag" in paths["/api/v1/line-list"]["get"]["responses"]["200"]["headers"]
    assert "X-Cache" in paths["/api/v1/process"]["post"]["responses"]["200"]["headers"]
