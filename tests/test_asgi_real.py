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


async def test_template_spectrum_answers_every_class_the_classifier_can_predict(tmp_path):
    """A class with no template at the age asked gets the nearest age with templates, and says so."""
    from astrodash_core import labels
    from astrodash_core.templates import analysis_options, template_spectrum

    async with client(real_app(tmp_path)) as c:
        opts = (await c.get("/api/v1/analysis-options")).json()["age_bins_by_type"]
        csm = await c.get("/api/v1/template-spectrum", params={"sn_type": "Ia-csm", "age_bin": "10 to 14"})
        exact = await c.get("/api/v1/template-spectrum", params={"sn_type": "Ia-csm", "age_bin": "6 to 10"})
        codes = set()
        for sn_type in labels.SN_TYPES:
            if sn_type in opts:
                for age in labels.AGE_LABELS[::4]:
                    r = await c.get("/api/v1/template-spectrum", params={"sn_type": sn_type, "age_bin": age})
                    codes.add(r.status_code)
                    assert r.json()["age_bin"] in opts[sn_type]
    assert analysis_options()["Ia-csm"] == ["2 to 6", "6 to 10", "30 to 34", "42 to 46"]
    # 10 to 14 is bin 8; 6 to 10 (bin 7) is the nearest with templates
    assert csm.status_code == 200 and csm.json()["age_bin"] == "6 to 10"
    assert csm.json()["requested_age_bin"] == "10 to 14"
    assert csm.json()["y"] == exact.json()["y"] and "requested_age_bin" not in exact.json()
    assert csm.json()["y"] == [float(v) for v in template_spectrum("Ia-csm", "6 to 10")[1]]
    assert codes == {200}


async def test_astrodash2_multi_file_route_and_rounded_rlap(tmp_path):
    """AstroDASH 2.0's front end posts several files to batch-process-multiple, params as a JSON string."""
    import json

    import astrodash_core as ad

    files = [("files", (p.name, p.read_bytes())) for p in (SN1994D, SN1994D.parent / "sn1983N_p12.dat")]
    params = json.dumps({"smoothing": 0, "knownZ": True, "zValue": 0, "calculateRlap": True})
    async with client(real_app(tmp_path)) as c:
        multi = await c.post("/api/v1/batch-process-multiple", files=files, data={"params": params})
        batch = await c.post("/api/v1/batch-process", files=files, data={"params": params})
    assert multi.status_code == 200 and multi.json() == batch.json()
    body = multi.json()["sn1994D_p02.dat"]["classification"]
    lib = ad.classify([SN1994D], redshift=0.0)[0].best_match
    assert body["best_match"]["type"] == lib.type and body["best_match"]["rlap"] == round(lib.rlap, 2)
    assert all(m["rlap"] is None or m["rlap"] == round(m["rlap"], 2) for m in body["best_matches"])


async def test_process_by_supernova_name_as_astrodash2_sends_it(tmp_path, monkeypatch):
    """params.oscRef instead of a file: the catalogue's spectrum is classified, and the answer says which."""
    import json

    from test_catalogue import osc_document

    (tmp_path / "SN1994D.json").write_text(json.dumps(osc_document()))
    monkeypatch.setenv("ASTRODASH_OSC_URL", str(tmp_path))

    async def post(**p):
        return await c.post("/api/v1/process", data={"params": json.dumps(p)})

    async with client(real_app(tmp_path)) as c:
        est = await post(oscRef="sn1994D", smoothing=0, knownZ=False, calculateRlap=True)
        given = await post(oscRef="SN 1994D", knownZ=True, zValue=0.0015, spectrum_index=1)
        unknown = await post(oscRef="SN 2002er")
        bad_index = await post(oscRef="SN1994D", spectrum_index=7)
        not_a_name = await post(oscRef="<script>")
        monkeypatch.setenv("ASTRODASH_OSC_URL", "")
        unconfigured = await post(oscRef="SN1994D")
    assert est.status_code == 200, est.text
    body = est.json()
    assert body["file"] == "osc:SN1994D" and body["index"] == 0
    assert body["observation"] == {"time": "49432.5", "instrument": "FAST"}
    assert body["redshift_source"] == "estimated" and abs(body["redshift"] - 0.0015) < 0.01
    assert body["classification"]["best_match"]["broad_type"] == "Ia"
    assert given.status_code == 200 and given.json()["observation"]["instrument"] == "Kast"
    assert given.json()["redshift"] == 0.0015 and given.json()["redshift_source"] == "given"
    assert unknown.status_code == 404 and "SN2002er" in unknown.json()["detail"]
    assert bad_index.status_code == 422 and "has 2 spectra" in bad_index.json()["detail"]
    assert not_a_name.status_code == 422 and unconfigured.status_code == 503
