"""Spectra by supernova name from an Open Supernova Catalog style source: a local folder and a real HTTP server
on 127.0.0.1 serving recorded-format answers, junk, errors and silence."""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_asgi.process import free_port
from astrodash_core.catalogue import CatalogueError, catalogue_spectra, normalise_name
from astrodash_plugins.catalogues import OscCatalogue

ROOT = Path(__file__).resolve().parents[1]
SN1994D = ROOT / "examples" / "sn1994D_p02.dat"


def osc_document(z=0.0015):
    s = ad.read_spectrum(SN1994D)
    rows = [[f"{w * (1 + z):.2f}", f"{f:.6g}"] for w, f in zip(s.wave, s.flux)]
    return {"SN1994D": {"name": "SN1994D", "redshift": [{"value": f"{z}", "source": "1"}], "spectra": [
        {"time": "49432.5", "u_time": "MJD", "instrument": "FAST", "u_wavelengths": "Angstrom",
         "u_fluxes": "Uncalibrated", "data": rows[::2]},
        {"time": "49440.1", "instrument": "Kast", "u_wavelengths": "Angstrom", "data": rows}]}}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if name == "SN1994D.json":
            body, code = json.dumps(osc_document()).encode(), 200
        elif name == "SN2000junk.json":
            body, code = b"<html>maintenance</html>", 200
        elif name == "SN2000err.json":
            body, code = b"oops", 500
        elif name == "SN2000slow.json":
            time.sleep(1.5)
            body, code = b"{}", 200
        elif name == "SN2000trickle.json":  # answers at once, then a byte every 0.1 s for 2 s
            self.send_response(200)
            self.send_header("Content-Length", "20")
            self.end_headers()
            try:
                for _ in range(20):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass  # the client gave up, as it should
            return
        else:
            body, code = b"not found", 404
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/json"
    httpd.shutdown()


@pytest.mark.parametrize("given, canonical", [("SN 2002er", "SN2002er"), ("sn2002er", "SN2002er"),
                                              ("2002er", "SN2002er"), ("SN 1994D", "SN1994D"),
                                              ("AT 2019abc", "AT2019abc"), ("ZTF21aaxxxxx", "ZTF21aaxxxxx"),
                                              ("iPTF13bvn", "iPTF13bvn")])
def test_names_take_the_catalogues_form(given, canonical):
    assert normalise_name(given) == canonical


@pytest.mark.parametrize("bad", ["", "   ", "!!", "../../etc/passwd", "a" * 100])
def test_what_is_not_a_name_is_422(bad):
    with pytest.raises(CatalogueError) as exc:
        normalise_name(bad)
    assert exc.value.status == 422


def test_spectra_by_name_over_http_carry_date_instrument_and_redshift(server, monkeypatch):
    monkeypatch.setenv("ASTRODASH_OSC_URL", server)
    spectra = catalogue_spectra("sn 1994D")
    assert [s.meta["time"] for s in spectra] == ["49432.5", "49440.1"]
    assert [s.meta["instrument"] for s in spectra] == ["FAST", "Kast"]
    assert all(s.redshift == pytest.approx(0.0015) for s in spectra)
    ref = ad.read_spectrum(SN1994D)
    np.testing.assert_allclose(spectra[1].wave / 1.0015, ref.wave, atol=0.006)  # written to 0.01 Å
    (r,) = ad.classify(spectra[1:])
    assert r.best_match.broad_type == "Ia" and r.redshift == pytest.approx(0.0015)


@pytest.mark.parametrize("name, status, says", [("SN2002er", 404, "no spectra"), ("SN2000junk", 502, "no readable"),
                                                ("SN2000err", 502, "HTTP 500"), ("SN2000slow", 504, "within 0.3 s"),
                                                ("SN2000trickle", 504, "within 0.3 s")])
def test_a_catalogue_that_lacks_fails_or_stalls_says_so(server, monkeypatch, name, status, says):
    monkeypatch.setenv("ASTRODASH_OSC_URL", server)
    monkeypatch.setenv("ASTRODASH_CATALOGUE_TIMEOUT", "0.3")
    t0 = time.monotonic()
    with pytest.raises(CatalogueError, match=says) as exc:
        catalogue_spectra(name)
    assert exc.value.status == status and time.monotonic() - t0 < 1.4  # never waits for the slow answer


def test_a_catalogue_that_is_down_is_502():
    port = free_port()  # a port nothing listens on
    with pytest.raises(CatalogueError, match="cannot be reached") as exc:
        OscCatalogue(f"http://127.0.0.1:{port}", timeout=2).spectra("SN1994D")
    assert exc.value.status == 502


def test_a_local_folder_and_the_command_line(tmp_path):
    (tmp_path / "SN1994D.json").write_text(json.dumps(osc_document()))
    env = {**os.environ, "ASTRODASH_OSC_URL": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "classify", "--name", "SN 1994D",
                          "--spectrum-index", "1", "--format", "jsonl", "--no-rlap"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    (row,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert row["file"] == "osc:SN1994D" and row["index"] == 1
    assert row["observation"] == {"time": "49440.1", "instrument": "Kast"}
    assert row["classification"]["best_match"]["broad_type"] == "Ia"
    missing = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "classify", "--name", "SN 2002er"],
                             capture_output=True, text=True, env=env, cwd=ROOT)
    assert missing.returncode == 1 and "SN2002er: no spectra" in missing.stderr
    bad_index = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "classify", "--name", "SN1994D",
                                "--spectrum-index", "5"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad_index.returncode == 2 and "has 2 spectra" in bad_index.stderr
