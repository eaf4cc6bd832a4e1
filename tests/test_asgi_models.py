"""Uploaded models: validated (never unpickled), stored by the storage plugin, usable with model_id."""
import io
import json
import pickle

import numpy as np
import pytest

from asgi_support import anyio_backend, client, make_app, params, random_model, spectrum_bytes  # noqa: F401
from astrodash_core import labels
from astrodash_core.plugins import get_storage_backends
from test_models import make_model, random_weights

pytestmark = pytest.mark.anyio


async def _upload(c, data, name="m.npz", **fields):
    return await c.post("/api/v1/upload-model", files={"file": (name, data)}, data=fields)


async def test_upload_list_get_update_delete(tmp_path):
    app = make_app(tmp_path)
    model = make_model(weights=random_weights(seed=7))
    async with client(app) as c:
        mapping = json.dumps({name: i for i, name in enumerate(labels.CLASS_LABELS)})
        up = await _upload(c, model.to_bytes(), name="mine.npz", owner="ztf", description="seed 7",
                           class_mapping=mapping, input_shape="[1, 1024]")
        assert up.status_code == 200, up.text
        body = up.json()
        mid = body["model_id"]
        assert body["status"] == "success" and body["model_filename"] == "mine.npz"
        assert body["input_shape"] == [1, 1024] and body["output_shape"] == [1, 306]
        listed = (await c.get("/api/v1/models")).json()
        by_owner = (await c.get("/api/v1/models/owner/ztf")).json()
        nobody = (await c.get("/api/v1/models/owner/nobody")).json()
        one = (await c.get(f"/api/v1/models/{mid}")).json()
        put = await c.put(f"/api/v1/models/{mid}", json={"name": "renamed", "description": "new"})
        bad_put = await c.put(f"/api/v1/models/{mid}", content=b"{not json",
                              headers={"content-type": "application/json"})
        after = (await c.get(f"/api/v1/models/{mid}")).json()
        used = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                            data={**params(knownZ=True, zValue=0.01), "model_id": mid})
        batch = await c.post("/api/v1/batch-process", files=[("files", ("a.dat", spectrum_bytes()))],
                             data={**params(knownZ=True, zValue=0.01), "model_id": mid})
        gone = await c.delete(f"/api/v1/models/{mid}")
        missing = await c.get(f"/api/v1/models/{mid}")
        reuse = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data={"model_id": mid})
    assert [m["id"] for m in listed] == [mid] and [m["id"] for m in by_owner] == [mid] and nobody == []
    assert one["owner"] == "ztf" and one["description"] == "seed 7" and len(one["class_mapping"]) == 306
    assert put.status_code == 200 and after["name"] == "renamed" and after["description"] == "new"
    assert bad_put.status_code == 422
    assert used.status_code == 200 and used.json()["model_type"] == "user_uploaded" and used.json()["model_id"] == mid
    # the uploaded model (different weights) gives different probabilities than the default one
    async with client(app) as c:
        default = await c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                               data=params(knownZ=True, zValue=0.01))
    p_user = used.json()["classification"]["best_matches"][0]["probability"]
    assert p_user != default.json()["classification"]["best_matches"][0]["probability"]
    assert batch.status_code == 200 and batch.json()["a.dat"]["model_id"] == mid
    assert gone.status_code == 200 and missing.status_code == 404 and reuse.status_code == 404
    store = get_storage_backends()["sqlite"](f"sqlite:///{tmp_path}/store/models.db")
    assert store.list() == [] and not list((tmp_path / "store" / "models").glob("*.npz"))


class Boom:
    def __reduce__(self):
        return (print, ("pickle executed!",))


async def test_bad_uploads_are_rejected_without_unpickling(tmp_path, capsys):
    good = random_model()
    arrays = {f"w:{k}": v for k, v in good.weights.items()}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array([Boom()], dtype=object), **arrays)   # an object array: needs pickle
    wrong_labels = make_model()
    wrong_labels.labels = list(reversed(wrong_labels.labels))
    async with client(make_app(tmp_path)) as c:
        r_pickle = await _upload(c, pickle.dumps(Boom()), name="evil.pkl")
        r_objarr = await _upload(c, buf.getvalue(), name="evil.npz")
        r_labels = await _upload(c, wrong_labels.to_bytes(), name="reversed.npz")
        r_map = await _upload(c, good.to_bytes(), class_mapping=json.dumps({"Ia": 0}))
        r_shape = await _upload(c, good.to_bytes(), input_shape="[1, 2048]")
        r_json = await _upload(c, good.to_bytes(), class_mapping="{nope")
        r_none = await c.post("/api/v1/upload-model", data={"name": "x"})
        listed = (await c.get("/api/v1/models")).json()
    assert "pickle executed" not in capsys.readouterr().out
    assert r_pickle.status_code == 400 and "evil.pkl" in r_pickle.json()["detail"]
    assert r_objarr.status_code == 400 and "evil.npz" in r_objarr.json()["detail"]
    assert r_labels.status_code == 400 and "labels" in r_labels.json()["detail"]
    assert r_map.status_code == 422 and r_map.json()["field"] == "class_mapping"
    assert r_shape.status_code == 422 and r_shape.json()["field"] == "input_shape"
    assert r_json.status_code == 422 and r_none.status_code == 422 and r_none.json()["field"] == "file"
    assert listed == []


def test_storage_plugin_urls(tmp_path):
    backends = get_storage_backends()
    assert {"sqlite", "file"} <= set(backends)
    a = backends["sqlite"](f"sqlite:///{tmp_path}/meta/x.db?data_dir={tmp_path}/blobs")
    b = backends["file"](f"file://{tmp_path}/dir")
    assert a.db_path == tmp_path / "meta" / "x.db" and a.data_dir == tmp_path / "blobs"
    assert b.db_path == tmp_path / "dir" / "models.db" and b.data_dir == tmp_path / "dir" / "models"
    rec = a.put(b"PK data", {"name": "n", "owner": "o", "meta": {"k": 1}})
    assert a.read(rec["id"]) == b"PK data" and a.get(rec["id"])["meta"] == {"k": 1}
    assert a.update(rec["id"], {"name": "m", "size": 0})["name"] == "m"
    with pytest.raises(KeyError):
        a.read("../../etc/passwd")
    assert a.delete(rec["id"]) and not a.delete(rec["id"]) and a.get(rec["id"]) is None


async def test_identical_uploads_are_stored_once(tmp_path):
    app = make_app(tmp_path)
    data = make_model(weights=random_weights(seed=11)).to_bytes()
    async with client(app) as c:
        first = await _upload(c, data, name="a.npz", owner="ztf")
        again = await _upload(c, data, name="b.npz", owner="other")
        listing = await c.get("/api/v1/models")
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["model_id"] == first.json()["model_id"] and "already stored" in again.json()["message"]
    assert len(listing.json()) == 1 and listing.headers["x-total-count"] == "1"
    assert len(list((tmp_path / "store" / "models").glob("*.npz"))) == 1


async def test_model_store_quota_by_count_and_bytes(tmp_path):
    models = [make_model(weights=random_weights(seed=s)).to_bytes() for s in (1, 2, 3)]
    async with client(make_app(tmp_path / "n", model_store_max_count=2)) as c:
        codes = [(await _upload(c, m)).status_code for m in models]
        last = await _upload(c, models[2])
        dup = await _upload(c, models[0])                    # a duplicate needs no room
        mid = dup.json()["model_id"]
        await c.delete(f"/api/v1/models/{mid}")
        freed = await _upload(c, models[2])
    assert codes == [200, 200, 413] and "ASTRODASH_MODEL_STORE_MAX_COUNT" in last.json()["detail"]
    assert dup.status_code == 200 and freed.status_code == 200
    size = len(models[0])
    async with client(make_app(tmp_path / "b", model_store_max_bytes=int(size * 1.5))) as c:
        ok = await _upload(c, models[0])
        full = await _upload(c, models[1])
    assert ok.status_code == 200 and full.status_code == 413
    assert "ASTRODASH_MODEL_STORE_MAX_BYTES" in full.json()["detail"]


async def test_model_listings_are_paginated(tmp_path):
    app = make_app(tmp_path)
    async with client(app) as c:
        ids = []
        for seed in range(5):
            r = await _upload(c, make_model(weights=random_weights(seed=100 + seed)).to_bytes(),
                              owner="a" if seed % 2 else "b")
            ids.append(r.json()["model_id"])
        p1 = await c.get("/api/v1/models", params={"limit": 2})
        p3 = await c.get("/api/v1/models", params={"limit": 2, "offset": 4})
        owner = await c.get("/api/v1/models/owner/b", params={"limit": 2})
        nobody = await c.get("/api/v1/models/owner/nobody")
        bad = [await c.get("/api/v1/models", params=q) for q in ({"limit": 0}, {"limit": 5000}, {"offset": -1},
                                                                 {"limit": "x"})]
        nxt = await c.get(p1.headers["link"].split(">")[0][1:])
    newest_first = ids[::-1]
    assert [m["id"] for m in p1.json()] == newest_first[:2] and p1.headers["x-total-count"] == "5"
    assert 'rel="next"' in p1.headers["link"] and "offset=2" in p1.headers["link"]
    assert [m["id"] for m in nxt.json()] == newest_first[2:4]
    assert [m["id"] for m in p3.json()] == newest_first[4:] and "link" not in p3.headers
    assert owner.headers["x-total-count"] == "3" and len(owner.json()) == 2
    assert all(m["owner"] == "b" for m in owner.json())
    assert nobody.status_code == 200 and nobody.json() == [] and nobody.headers["x-total-count"] == "0"
    assert [r.status_code for r in bad] == [422] * 4 and bad[0].json()["field"] == "limit"


async def test_pytorch_state_dict_uploads_are_converted_or_refused_with_why(tmp_path):
    """AstroDASH 2.0's model chooser takes .pth files: a state dict of an astrodash architecture with DASH's
    classes is stored as a model file and classifies; a 5-class one or a pickled whole model is a 400 saying why."""
    torch = pytest.importorskip("torch")
    from astrodash_core.nn import ARCHITECTURES, with_outputs
    from astrodash_core.training.train import build_torch

    def saved(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    torch.manual_seed(0)
    net = build_torch(ARCHITECTURES["dash1d"]).eval()
    mapping = json.dumps({name: i for i, name in enumerate(labels.CLASS_LABELS)})
    async with client(make_app(tmp_path)) as c:
        ok = await _upload(c, saved(net.state_dict()), name="dash.pth", class_mapping=mapping,
                           input_shape="[1, 1024]")
        five = await _upload(c, saved(build_torch(with_outputs(ARCHITECTURES["dash1d"], 5)).state_dict()),
                             name="five.pth", class_mapping=json.dumps({c: i for i, c in enumerate("ABCDE")}))
        whole = await _upload(c, saved(torch.nn.Sequential(torch.nn.Linear(2, 2))), name="whole.pt")
        assert ok.status_code == 200, ok.text
        model_id = ok.json()["model_id"]
        r = await c.post("/api/v1/process", files={"file": ("sn.dat", spectrum_bytes())},
                         data={**params(knownZ=True, zValue=0.0), "model_id": model_id})
    assert ok.json()["output_shape"] == [1, 306] and ok.json()["model_info"]["meta"]["provenance"]["architecture"] == "dash1d"
    assert r.status_code == 200 and r.json()["model_id"] == model_id
    x = np.random.default_rng(2).normal(size=(1, 1024)).astype(np.float32)
    from astrodash_core.models import Model

    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    store = get_storage_backends()["sqlite"](f"sqlite:///{tmp_path}/store/models.db")  # the store the app used
    stored = Model.from_bytes(store.read(model_id), "stored")
    np.testing.assert_allclose(stored.predict(x), want, atol=1e-4)  # what was stored computes what torch does
    assert five.status_code == 400 and "not DASH's 306 classes" in five.json()["detail"]
    assert whole.status_code == 400 and "pickled whole model is refused" in whole.json()["detail"]
