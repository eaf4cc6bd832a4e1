"""The HTTP API with the shipped models and template bank on a real Type Ia spectrum."""
from pathlib import Path

import pytest

from asgi_support import anyio_backend, client, make_app, params  # noqa: F401
from astrodash_core.classify import Classifier

ROOT = Path(__file__).resolve().parents[1]
SN1994D = ROOT / "examples" / "sn1994D_p02.dat"

pytestmark = pytest.mark.anyio

_CLF = None


def real_app(tmp_path, **kw):
    global _CLF
    _CLF = _CLF or Classifier()
    return make_app(tmp_path, classifier=_CLF, **kw)


async def test_real_classification_known_and_estimated_redshift(tmp_path):
    data = SN1994D.read_bytes()
    async with client(real_app(tmp_path)) as c:
        known = await c.post("/api/v1/process", files={"file": ("sn1994D_p02.dat", data)},
                             data=params(knownZ=True, zValue=0.0, calculateRlap=True))
        est = await c.post("/api/v1/process", files={"file": ("sn1994D_p02.dat", data)}, data=params(knownZ=False))
        health = (await c.get("/health")).json()
    assert known.status_code == 200 and est.status_code == 200, (known.text, est.text)
    k, e = known.json(), est.json()
    assert k["classification"]["best_match"]["broad_type"] == "Ia" and k["redshift_source"] == "given"
    assert k["classification"]["best_match"]["rlap"] is not None
    assert e["redshift_source"] == "estimated" and abs(e["redshift"]) < 0.05
    assert e["classification"]["best_match"]["broad_type"] == "Ia"
    assert health["status"] == "healthy", health


async def test_real_redshift_templates_and_options(tmp_path):
    data = SN1994D.read_bytes()
    async with client(real_app(tmp_path)) as c:
        z = await c.post("/api/v1/estimate-redshift", files={"file": ("sn1994D_p02.dat", data)},
                         data={"sn_type": "Ia", "age_bin": "2 to 6"})
        z_any = await c.post("/api/v1/estimate-redshift", files={"file": ("sn1994D_p02.dat", data)})
        z_bad = await c.post("/api/v1/estimate-redshift", files={"file": ("sn1994D_p02.dat", data)},
                             data={"sn_type": "Iz"})
        opts = await c.get("/api/v1/analysis-options")
        first_type = opts.json()["sn_types"][0]
        first_age = opts.json()["age_bins_by_type"][first_type][0]
        tpl = await c.get("/api/v1/template-spectrum", params={"sn_type": first_type, "age_bin": first_age})
        none = await c.get("/api/v1/template-spectrum", params={"sn_type": "Unknown", "age_bin": "2 to 6"})
    assert z.status_code == 200 and abs(z.json()["estimated_redshift"]) < 0.05
    assert z.json()["estimated_redshift_error"] >= 0
    assert z_any.status_code == 200 and z_bad.status_code == 404
    assert opts.status_code == 200 and "Ia-norm" in opts.json()["sn_types"]
    assert tpl.status_code == 200 and len(tpl.json()["x"]) == len(tpl.json()["y"]) == 1024
    assert none.status_code == 404 and "detail" in none.json()
