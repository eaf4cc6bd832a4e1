"""End to end: a real ``astrodash serve`` process on 127.0.0.1, a real spectrum and a zip over HTTP."""
import json
import time
from pathlib import Path

import httpx
import pytest

from asgi_support import make_zip

from astrodash_asgi.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def server(tmp_path):
    with ServerProcess(tmp_path, timeout=60) as proc:
        yield proc.base, proc.log_path


@pytest.mark.slow
def test_real_server_classifies_a_spectrum_and_a_zip(server):
    base, log_path = server
    sn = (EXAMPLES / "sn1994D_p02.dat").read_bytes()
    with httpx.Client(base_url=base, timeout=60) as c:
        health = c.get("/health").json()
        page, bundle, spec = c.get("/docs"), c.get("/docs/swagger-ui-bundle.js"), c.get("/openapi.json").json()
        one = c.post("/api/v1/process", files={"file": ("sn1994D_p02.dat", sn)},
                     data={"params": json.dumps({"knownZ": True, "zValue": 0.0, "calculateRlap": True})},
                     headers={"x-request-id": "e2e-1"})
        archive = make_zip({name: (EXAMPLES / name).read_bytes() for name in
                            ("sn1994D_p02.dat", "sn1979C_p07.dat", "sn1983N_p12.dat", "sn1990aa_z0.03.fits")}
                           | {"__MACOSX/._sn1994D_p02.dat": b"junk", "readme.md": b"# not a spectrum"})
        batch = c.post("/api/v1/batch-process", files={"zip_file": ("examples.zip", archive)},
                       data={"params": json.dumps({"knownZ": False})}, headers={"accept": "application/msgpack"})
    assert health["ready"] and health["status"] == "healthy", health
    # the API browser: a page whose scripts come from the server itself, reading the server's document
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="docs/swagger-ui-bundle.js"' in page.text and 'url: "openapi.json"' in page.text
    assert "http" not in page.text.split("<body>")[1]  # no CDN
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text and len(bundle.content) > 1_000_000
    assert "/api/v1/process" in spec["paths"]
    assert one.status_code == 200 and one.headers["x-request-id"] == "e2e-1"
    assert one.json()["classification"]["best_match"]["broad_type"] == "Ia"
    assert one.headers["x-ratelimit-limit"] == "600"
    import msgpack

    results = msgpack.unpackb(batch.content)
    assert batch.status_code == 200 and batch.headers["content-type"] == "application/msgpack"
    assert list(results) == ["sn1994D_p02.dat", "sn1979C_p07.dat", "sn1983N_p12.dat", "sn1990aa_z0.03.fits",
                             "readme.md"]
    assert results["sn1994D_p02.dat"]["classification"]["best_match"]["broad_type"] == "Ia"
    assert results["sn1994D_p02.dat"]["redshift_source"] == "estimated"
    assert "error" in results["readme.md"]
    time.sleep(0.2)
    lines = [json.loads(l) for l in log_path.read_text().splitlines() if l.startswith("{")]
    assert any(l["request_id"] == "e2e-1" and l["status"] == 200 and l["spectra"] == 1 for l in lines)
    assert any(l["path"] == "/api/v1/batch-process" and l["spectra"] == 5 for l in lines)
