"""``modelType: "transformer"`` over real HTTP (uvicorn on 127.0.0.1): AstroDASH 2.0's answer shape for its
transformer, as its front end sends the request (multipart ``file`` + ``params`` as a JSON string); a clear 503
naming the model when it is not installed."""
import json

import httpx
import numpy as np
import pytest

from asgi_support import SPECTRUM_FILE, spectrum_bytes
from astrodash_asgi.process import ServerProcess
from astrodash_core import labels
from astrodash_core.models import Model
from astrodash_core.nn import TRANSFORMER, weight_shapes
from astrodash_core.preprocess import PreprocessSettings

pytestmark = pytest.mark.slow

#: What AstroDASH 2.0's front end sends for its transformer with a known redshift.
PARAMS = {"smoothing": 0, "knownZ": True, "zValue": 0.02, "minWave": 3500, "maxWave": 10000, "calculateRlap": False,
          "modelType": "transformer"}


def random_transformer(path, seed=1):
    """A transformer model file with random weights (large enough to give unequal probabilities)."""
    rng = np.random.default_rng(seed)
    w = {}
    for k, shape in weight_shapes(TRANSFORMER, 1024, 5).items():
        if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "4.weight":  # layer-norm gains
            w[k] = 1 + 0.2 * rng.standard_normal(shape)
        else:
            w[k] = rng.standard_normal(shape) / np.sqrt(shape[-1]) * (8 if k == "6.weight" else 1)
        w[k] = w[k].astype(np.float32)
    s = PreprocessSettings()
    m = Model(arch=TRANSFORMER, weights=w, labels=list(labels.TRANSFORMER_CLASSES), grid=s.grid.to_dict(),
              preprocessing=s.to_dict(), name="transformer")
    return m.save(path)


def _env(**extra):
    return {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_WARMUP": "0", "ASTRODASH_RESULT_CACHE_MAX_ENTRIES": "0",
            **extra}


def test_process_answers_in_astrodash_2_transformer_shape(tmp_path):
    from astrodash_core import classify

    path = random_transformer(tmp_path / "transformer.npz")
    data = spectrum_bytes()
    with ServerProcess(tmp_path, _env(ASTRODASH_TRANSFORMER_MODEL=str(path)), timeout=90) as server, \
            httpx.Client(base_url=server.base, timeout=60) as c:
        r = c.post("/api/v1/process", files={"file": ("sn1981b.max.dat", data)}, data={"params": json.dumps(PARAMS)})
        dash = c.post("/api/v1/process", files={"file": ("sn1981b.max.dat", data)},
                      data={"params": json.dumps({**PARAMS, "modelType": "dash"})})
        batch = c.post("/api/v1/batch-process", files=[("files", ("a.dat", data)), ("files", ("b.dat", data))],
                       data={"params": json.dumps(PARAMS)})
    assert r.status_code == 200, r.text
    body = r.json()
    cls = body["classification"]
    assert set(cls) == {"best_matches", "best_match", "reliable_matches"}
    assert len(cls["best_matches"]) == 3
    for m in cls["best_matches"]:
        assert set(m) == {"type", "probability", "redshift", "rlap", "reliable"}
        assert m["type"] in labels.TRANSFORMER_CLASSES and m["rlap"] is None and m["redshift"] == 0.02
        assert m["reliable"] == (m["probability"] > 0.5)
    probs = [m["probability"] for m in cls["best_matches"]]
    assert probs == sorted(probs, reverse=True) and len({m["type"] for m in cls["best_matches"]}) == 3
    assert cls["best_match"] == cls["best_matches"][0] and cls["reliable_matches"] == cls["best_match"]["reliable"]
    assert body["model_type"] == "transformer" and body["spectrum"]["x"]
    # the same answer as the library's, with the same model at the same redshift and window
    source = str(SPECTRUM_FILE) if SPECTRUM_FILE.exists() else (data, "a.dat")
    [lib] = classify(source, redshift=0.02, model=str(path), min_wave=3500, max_wave=10000, rlap=False)
    assert [(m["type"], round(m["probability"], 5)) for m in cls["best_matches"]] == \
        [(m.type, round(m.probability, 5)) for m in lib.matches[:3]]
    # modelType dash still answers with DASH's subtypes and ages
    assert dash.status_code == 200 and dash.json()["classification"]["best_match"]["age"]
    assert batch.status_code == 200
    results = batch.json()
    assert [results[k]["classification"]["best_match"]["type"] for k in ("a.dat", "b.dat")] == [cls["best_match"]["type"]] * 2


def test_a_transformer_not_installed_is_a_503_naming_it(tmp_path):
    missing = tmp_path / "no" / "model_transformer.npz"
    with ServerProcess(tmp_path, _env(ASTRODASH_TRANSFORMER_MODEL=str(missing)), timeout=90) as server, \
            httpx.Client(base_url=server.base, timeout=60) as c:
        r = c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())}, data={"params": json.dumps(PARAMS)})
        ok = c.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                    data={"params": json.dumps({**PARAMS, "modelType": "dash"})})
        health, ready = c.get("/health").json(), c.get("/ready")
    assert r.status_code == 503, r.text
    assert "transformer" in r.json()["detail"] and str(missing) in r.json()["detail"]
    assert ok.status_code == 200  # the other models go on
    # a transformer the configuration names but that cannot be loaded is a problem /health and /ready report
    assert str(missing) in health["problems"]["transformer"] and health["status"] == "degraded"
    assert ready.status_code == 503 and "transformer" in ready.json()["problems"]
