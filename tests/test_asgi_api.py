"""The HTTP API through httpx.ASGITransport: routes, AstroDASH 2.0 fields and shapes, status codes."""
import msgpack
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_support import anyio_backend, client, make_app, params, random_model, spectrum_bytes  # noqa: F401
from astrodash_core.classify import Classifier

pytestmark = pytest.mark.anyio


class SpyClassifier(Classifier):
    """Records the redshifts and spectra each classify call gets."""

    def __init__(self, **kw):
        m = random_model()
        super().__init__(model=m, agnostic_model=m)
        self.calls = []

    def classify(self, sources, redshift=None, **kw):
        self.calls.append(([getattr(s, "redshift", None) for s in sources], list(redshift), kw))
        return super().classify(sources, redshift, **kw)


async def test_process_returns_astrodash_shape(tmp_path):
    app = make_app(tmp_path)
    async with client(app) as c:
        r = await c.post("/api/v1/process", files={"file": ("sn.dat", spectrum_bytes())},
                         data=params(knownZ=True, zValue=0.02, smoothing=2, calculateRlap=False))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_type"] == "dash" and body["model_id"] is None
    assert set(body["spectrum"]) == {"x", "y", "redshift"} and len(body["spectrum"]["x"]) == len(body["spectrum"]["y"])
    assert body["spectrum"]["redshift"] == pytest.approx(0.02)
    cls = body["classification"]
    assert len(cls["best_matches"]) == 5 and isinstance(cls["reliable_matches"], bool)
    assert {"type", "age", "probability", "redshift", "rlap", "reliable", "rlap_warning"} <= set(cls["best_match"])
    assert r.headers["x-request-id"] and r.headers["x-ratelimit-limit"] == "600"


async def test_known_z_false_means_estimate_even_with_a_redshift_in_the_file(tmp_path):
    spy = SpyClassifier()
    app = make_app(tmp_path, classifier=spy)
    async with client(app) as c:
        data = spectrum_bytes(z_comment=0.3)
        r1 = await c.post("/api/v1/process", files={"file": ("z.dat", data)}, data=params(knownZ=False, zValue=0.3))
        r2 = await c.post("/api/v1/process", files={"file": ("z.dat", data)}, data=params(knownZ=True, zValue=0.05))
    assert r1.status_code == r2.status_code == 200
    (spec_z1, z1, _), (spec_z2, z2, _) = spy.calls[-2:]
    assert z1 == [None] and spec_z1 == [None]          # estimated, the file's 0.3 ignored
    assert z2 == [0.05]
    assert r1.json()["redshift_source"] == "estimated" and r2.json()["redshift_source"] == "given"


@pytest.mark.parametrize("bad, field", [
    ({"smoothing": -1}, "smoothing"), ({"smoothing": "lots"}, "smoothing"), ({"knownZ": "maybe"}, "knownZ"),
    ({"knownZ": True}, "zValue"), ({"knownZ": True, "zValue": "x"}, "zValue"), ({"minWave": -5}, "minWave"),
    ({"minWave": 6000, "maxWave": 5000}, "maxWave"), ({"calculateRlap": "sure"}, "calculateRlap"),
    ({"modelType": "perceiver"}, "modelType"), ({"modelType": "user_uploaded"}, "model_id"),
    ({"oscRef": "sn2011fe"}, "oscRef"),
])
async def test_invalid_params_are_422_naming_the_field(tmp_path, bad, field):
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data=params(**bad))
    assert r.status_code == 422 and r.json()["field"] == field and r.json()["detail"].startswith(field)


async def test_422_for_malformed_params_and_missing_file(tmp_path):
    async with client(make_app(tmp_path)) as c:
        r1 = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data={"params": "{oops"})
        r2 = await c.post("/api/v1/process", data={"params": "{}"})
        r3 = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data={"params": "[1]"})
        r4 = await c.post("/api/v1/estimate-redshift", data={"sn_type": "Ia"})
        r5 = await c.post("/api/v1/batch-process", files={"files": ("a.dat", spectrum_bytes())},
                          data={"params": " null "})  # JSON null is not an object (an absent field is no params)
    assert [r.status_code for r in (r1, r2, r3, r4, r5)] == [422] * 5
    assert "params" in r1.json()["detail"] and r2.json()["field"] == "file" and r4.json()["field"] == "file"
    assert r5.json()["field"] == "params"


async def test_unreadable_file_is_400_naming_it(tmp_path):
    async with client(make_app(tmp_path)) as c:
        r1 = await c.post("/api/v1/process", files={"file": ("garbage.dat", b"\x00\x01 not a spectrum")})
        r2 = await c.post("/api/v1/process", files={"file": ("far.dat", spectrum_bytes())},
                          data=params(knownZ=True, zValue=3.0))   # no overlap with the grid at z=3
    assert r1.status_code == 400 and "garbage.dat" in r1.json()["detail"]
    assert r2.status_code == 400 and "far.dat" in r2.json()["detail"]


async def test_404s(tmp_path):
    async with client(make_app(tmp_path)) as c:
        r1 = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data={"model_id": "abc123"})
        r2 = await c.get("/api/v1/models/abc123")
        r3 = await c.get("/api/v1/line-list/element/Unobtainium")
        r4 = await c.get("/api/v1/no-such-thing")
        r5 = await c.delete("/api/v1/models/abc123")
    for r in (r1, r2, r3, r4, r5):
        assert r.status_code == 404 and "detail" in r.json() and r.headers["x-request-id"]
    assert "abc123" in r1.json()["detail"]


async def test_500_never_leaks_a_traceback(tmp_path):
    class Broken(Classifier):
        def classify(self, *a, **kw):
            raise RuntimeError("secret internals /home/user/code.py line 42")

    m = random_model()
    app = make_app(tmp_path, classifier=Broken(model=m, agnostic_model=m))
    async with client(app) as c:
        r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                         data=params(knownZ=True, zValue=0.01), headers={"x-request-id": "trace-me-1"})
    assert r.status_code == 500
    assert r.json()["detail"] == "Internal server error" and "secret" not in r.text and "Traceback" not in r.text
    assert r.headers["x-request-id"] == "trace-me-1" and "x-ratelimit-remaining" in r.headers


async def test_msgpack_when_asked(tmp_path):
    async with client(make_app(tmp_path)) as c:
        r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                         data=params(knownZ=True, zValue=0.01), headers={"accept": "application/msgpack"})
        e = await c.get("/api/v1/models/nope", headers={"accept": "application/msgpack"})
        j = await c.get("/health", headers={"accept": "application/json, application/msgpack;q=0.5"})
    assert r.headers["content-type"] == "application/msgpack"
    body = msgpack.unpackb(r.content)
    assert body["classification"]["best_match"]["type"] and len(body["spectrum"]["x"]) > 100
    assert e.status_code == 404 and "detail" in msgpack.unpackb(e.content)
    assert j.headers["content-type"] == "application/json"


async def test_mounted_under_a_prefix_without_lifespan(tmp_path):
    inner = make_app(tmp_path)
    outer = Starlette(routes=[Mount("/astrodash", app=inner)])
    async with client(outer) as c:
        h = await c.get("/astrodash/health")
        r = await c.post("/astrodash/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                         data=params(knownZ=True, zValue=0.01))
        o = await c.get("/astrodash/openapi.json")
        miss = await c.get("/api/v1/line-list")
    assert h.status_code == 200 and r.status_code == 200, r.text
    assert r.json()["classification"]["best_match"]["type"]
    assert o.json()["servers"][0]["url"] == "/astrodash"
    assert miss.status_code == 404
    assert inner.state.astrodash.ready  # loaded by the first request


async def test_lifespan_loads_models_once(tmp_path, monkeypatch):
    from astrodash_core.models import Model

    path = random_model().save(tmp_path / "m.npz")
    loads = []
    original = Model.load.__func__
    monkeypatch.setattr(Model, "load", classmethod(lambda cls, p: loads.append(p) or original(cls, p)))
    app = make_app(tmp_path, classifier=Classifier(model=str(path), agnostic_model=str(path)))
    async with app.router.lifespan_context(app):
        assert app.state.astrodash.ready and len(loads) == 2       # known-z and agnostic, at startup
        async with client(app) as c:
            for z in (True, False, True):
                r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                                 data=params(knownZ=z, zValue=0.01))
                assert r.status_code == 200
    assert len(loads) == 2                                          # never again per request


async def test_lines_templates_root_health_openapi(tmp_path):
    async with client(make_app(tmp_path)) as c:
        full = (await c.get("/api/v1/line-list")).json()
        els = (await c.get("/api/v1/line-list/elements")).json()["elements"]
        one = (await c.get("/api/v1/line-list/element/si ii")).json()
        filt = (await c.get("/api/v1/line-list/filter", params={"min_wavelength": 6000, "max_wavelength": 6700})).json()
        bad = await c.get("/api/v1/line-list/filter", params={"min_wavelength": "x", "max_wavelength": 1})
        missing = await c.get("/api/v1/line-list/filter", params={"min_wavelength": 1})
        tbad = await c.get("/api/v1/template-spectrum", params={"sn_type": "Ia", "age_bin": "banana"})
        root = (await c.get("/")).json()
        health = (await c.get("/health")).json()
        spec = (await c.get("/openapi.json")).json()
    assert set(full) == set(els) and one["element"] == "Si II" and one["count"] == len(one["wavelengths"])
    assert all(6000 <= w <= 6700 for ws in filt["elements"].values() for w in ws) and filt["count"] > 0
    assert bad.status_code == 422 and bad.json()["field"] == "min_wavelength"
    assert missing.status_code == 422 and missing.json()["field"] == "max_wavelength"
    assert tbad.status_code == 422 and tbad.json()["field"] == "age_bin"
    assert root["api"] == "/api/v1" and health["ready"] in (True, False)
    paths = set(spec["paths"])
    for p in ("/api/v1/process", "/api/v1/batch-process", "/api/v1/estimate-redshift", "/api/v1/analysis-options",
              "/api/v1/template-spectrum", "/api/v1/line-list", "/api/v1/line-list/elements",
              "/api/v1/line-list/element/{element}", "/api/v1/line-list/filter", "/api/v1/models",
              "/api/v1/models/{model_id}", "/api/v1/upload-model", "/health", "/"):
        assert p in paths
    assert set(spec["paths"]["/api/v1/models/{model_id}"]) == {"get", "put", "delete"}


async def test_every_route_is_in_openapi(tmp_path):
    app = make_app(tmp_path)
    async with client(app) as c:
        spec = (await c.get("/openapi.json")).json()
    for route in app.routes:
        if getattr(route, "methods", None) is None:  # the WebSocket (OpenAPI has no place for it; docs/http.md)
            assert route.path == "/ws/batch-processor"
            continue
        for method in route.methods - {"HEAD"}:
            assert method.lower() in spec["paths"][route.path], (route.path, method)


async def test_cors_preflight_and_exposed_headers(tmp_path):
    async with client(make_app(tmp_path, cors_origins=["https://astrodash.example"])) as c:
        pre = await c.options("/api/v1/process", headers={"origin": "https://astrodash.example",
                                                          "access-control-request-method": "POST"})
        get = await c.get("/health", headers={"origin": "https://astrodash.example"})
        other = await c.get("/health", headers={"origin": "https://evil.example"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://astrodash.example"
    assert "x-request-id" in get.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


async def test_missing_model_is_503_and_health_says_so(tmp_path):
    app = make_app(tmp_path, classifier=Classifier(model="no-such-model", agnostic_model="no-such-model"))
    async with client(app) as c:
        r = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                         data=params(knownZ=True, zValue=0.01))
        health = (await c.get("/health")).json()
    assert r.status_code == 503 and "no-such-model" in r.json()["detail"]
    assert health["status"] == "degraded" and "known-z" in health["problems"]
