"""The Transient Name Server catalogue against a local HTTP server on 127.0.0.1 that answers in the TNS bot API's
format (written for these tests from the API's documented request and answer shapes, not recorded from TNS):
the request shape TNS asks of bots, lookups by IAU and survey names, its rate limits, and a server that is down,
slow, refuses the bot or answers junk.  End to end through a real ``astrodash serve`` and ``params.oscRef``."""
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

import astrodash_core as ad
from astrodash_asgi.process import ServerProcess, free_port
from astrodash_core.catalogue import CatalogueError, catalogue_spectrum
from astrodash_plugins.catalogues.tns import RateLimit, TnsCatalogue, tns_from_env

ROOT = Path(__file__).resolve().parents[1]
SN1994D = ROOT / "examples" / "sn1994D_p02.dat"
BOT_ID, BOT_NAME, API_KEY = 12345, "astrodash_test_bot", "0123456789abcdef"
MARKER = 'tns_marker{"tns_id": 12345, "type": "bot", "name": "astrodash_test_bot"}'
Z_2002ER = 0.0086


def ascii_spectrum(z: float, step: int = 1) -> bytes:
    s = ad.read_spectrum(SN1994D)
    return "\n".join(f"{w * (1 + z):.3f} {f:.5e}" for w, f in zip(s.wave[::step], s.flux[::step])).encode()


def spectrum_entry(base, objname, k, jd, instrument, url=None):
    return {"obsdate": f"2002-09-0{k} 00:00:00", "jd": jd, "instrument": {"id": 40 + k, "name": instrument},
            "telescope": {"id": 3, "name": "test telescope"}, "spec_type": {"id": 1, "name": "Object"},
            "asciifile": url or f"{base}/system/files/tns_public_objects/{objname}_{k}.txt", "fitsfile": ""}


def object_doc(base, objname, spectra, z=Z_2002ER, prefix="SN"):
    return {"id_code": 200, "id_message": "OK",
            "data": {"objid": 1000, "objname": objname, "name_prefix": prefix, "redshift": z,
                     "object_type": {"id": 3, "name": "SN Ia"}, "discoverydate": "2002-08-23 00:00:00",
                     "internal_names": "", "spectra": spectra}}


class FakeTns(BaseHTTPRequestHandler):
    """POST /api/get/search, /api/get/object and spectrum files; every request is kept in ``requests``."""

    requests: list = []
    remaining = [100]

    def log_message(self, *args):
        pass

    def _send(self, code, body, headers=None, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-rate-limit-limit", "100")
        self.send_header("x-rate-limit-remaining", str(self.remaining[0]))
        self.send_header("x-rate-limit-reset", "20")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        path = self.path
        limited = path.startswith("/limited/")
        path = path.removeprefix("/limited")
        self.requests.append({"path": path, "agent": self.headers.get("User-Agent"), "form": form,
                              "ctype": self.headers.get("Content-Type")})
        if limited:
            return self._send(429, {"id_code": 429, "id_message": "Too Many Requests"}, {"x-rate-limit-reset": "30"})
        if form.get("api_key") != API_KEY or self.headers.get("User-Agent") != MARKER:
            return self._send(401, {"id_code": 401, "id_message": "Unauthorized"})
        if path.startswith("/system/files/"):
            name = path.rsplit("/", 1)[-1]
            if name.startswith("2000bf"):
                return self._send(200, b"<html>gone</html>", ctype="text/plain")
            return self._send(200, ascii_spectrum(Z_2002ER, 1 if name.endswith("_2.txt") else 2),
                              ctype="text/plain")
        data = json.loads(form.get("data", "null"))
        if path == "/api/get/search":
            hits = [{"objname": "2021abc", "prefix": "SN", "objid": 99}] if \
                data.get("internal_name") == "ZTF21aaxxxxx" else []
            return self._send(200, {"id_code": 200, "id_message": "OK", "data": {"received_data": data,
                                                                                 "reply": hits}})
        if path != "/api/get/object":
            return self._send(404, {"id_code": 404, "id_message": "Not found"})
        name = data.get("objname")
        two = [spectrum_entry(base, name, 1, 2452517.5, "FAST"), spectrum_entry(base, name, 2, 2452518.5, "Kast")]
        if name == "2002er":
            return self._send(200, object_doc(base, "2002er", two))
        if name == "2021abc":  # the older layout, with data.reply
            doc = object_doc(base, "2021abc", two[:1], z=None)
            return self._send(200, {**doc, "data": {"received_data": data, "reply": doc["data"]}})
        if name == "2000ja":
            return self._send(200, b"<html>maintenance</html>", ctype="text/html")
        if name == "2000sl":
            time.sleep(1.5)
            return self._send(200, object_doc(base, name, two))
        if name == "2000ns":
            return self._send(200, object_doc(base, name, []))
        if name == "2000bf":
            return self._send(200, object_doc(base, name, two[:1]))
        if name == "2000rm":
            return self._send(200, object_doc(base, name, [spectrum_entry(base, name, 1, 2452517.5, "FAST",
                                                                          "http://203.0.113.7/x.txt")]))
        if name == "2000nr":  # "no results" in the older layout
            return self._send(200, {"id_code": 200, "id_message": "OK", "data": {"received_data": data, "reply": {
                "name": {"110": {"message": "No results found.", "message_id": 110}}}}})
        return self._send(404, {"id_code": 404, "id_message": "Object not found"})


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up on a slow answer (the timeout tests) breaks the pipe: expected


@pytest.fixture(scope="module")
def tns():
    httpd = QuietServer(("127.0.0.1", 0), FakeTns)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def catalogue(url, timeout=5.0, clock=None):
    return TnsCatalogue(BOT_ID, BOT_NAME, API_KEY, url, timeout=timeout, rate_limit=RateLimit(clock or time.monotonic))


def test_the_request_shape_tns_asks_of_bots_and_only_the_spectrum_asked_for(tns):
    FakeTns.requests.clear()
    spec = catalogue(tns).spectrum("SN2002er", 1)
    assert [r["path"] for r in FakeTns.requests] == ["/api/get/object",  # an IAU name needs no search
                                                     "/system/files/tns_public_objects/2002er_2.txt"]
    obj, download = FakeTns.requests
    assert all(r["agent"] == MARKER and r["form"]["api_key"] == API_KEY for r in FakeTns.requests)
    assert obj["ctype"] == "application/x-www-form-urlencoded" and set(obj["form"]) == {"api_key", "data"}
    assert json.loads(obj["form"]["data"]) == {"objname": "2002er", "objid": "", "photometry": "0", "spectra": "1"}
    assert set(download["form"]) == {"api_key"}
    assert spec.meta["time"] == "52518.0000" and spec.meta["instrument"] == "Kast"
    assert spec.meta["source"] == "tns:SN2002er" and spec.redshift == pytest.approx(Z_2002ER)
    np.testing.assert_allclose(spec.wave / (1 + Z_2002ER), ad.read_spectrum(SN1994D).wave, atol=1e-3)


@pytest.mark.parametrize("given", ["SN 2002er", "2002er", "sn2002er"])
def test_iau_names_in_any_form_ask_for_the_designation(tns, given, monkeypatch):
    for k, v in {"ASTRODASH_TNS_BOT_ID": str(BOT_ID), "ASTRODASH_TNS_BOT_NAME": BOT_NAME,
                 "ASTRODASH_TNS_API_KEY": API_KEY, "ASTRODASH_TNS_URL": tns, "ASTRODASH_OSC_URL": ""}.items():
        monkeypatch.setenv(k, v)
    FakeTns.requests.clear()
    spec = catalogue_spectrum(given, 0)
    assert json.loads(FakeTns.requests[0]["form"]["data"])["objname"] == "2002er"
    assert spec.meta["instrument"] == "FAST" and spec.meta["source"] == "tns:SN2002er"


def test_a_survey_name_is_searched_first(tns):
    FakeTns.requests.clear()
    spectra = catalogue(tns).spectra("ZTF21aaxxxxx")
    assert [r["path"] for r in FakeTns.requests][:2] == ["/api/get/search", "/api/get/object"]
    assert json.loads(FakeTns.requests[0]["form"]["data"]) == {"objname": "", "internal_name": "ZTF21aaxxxxx"}
    assert json.loads(FakeTns.requests[1]["form"]["data"])["objname"] == "2021abc"
    assert len(spectra) == 1 and spectra[0].meta["source"] == "tns:SN2021abc" and spectra[0].redshift is None


@pytest.mark.parametrize("name, index, status, says", [
    ("SN2002zz", 0, 404, "not in the Transient Name Server"),
    ("SN2000nr", 0, 404, "not in the Transient Name Server"),
    ("ZTF22nothing", 0, 404, "not in the Transient Name Server"),
    ("SN2000ns", 0, 404, "no spectra"),
    ("SN2002er", 2, 422, r"has 2 spectra \(0 to 1\), got 2"),
    ("SN2000ja", 0, 502, "not a TNS API document"),
    ("SN2000bf", 0, 502, "holds no readable spectrum"),
    ("SN2000rm", 0, 502, "gave a file outside 127.0.0.1"),
    ("SN2000sl", 0, 504, "did not answer within 0.4 s"),
])
def test_what_tns_lacks_or_gets_wrong_says_so(tns, name, index, status, says):
    t0 = time.monotonic()
    with pytest.raises(CatalogueError, match=says) as exc:
        catalogue(tns, timeout=0.4).spectrum(name, index)
    assert exc.value.status == status and time.monotonic() - t0 < 1.4  # never waits for the slow answer


def test_a_server_that_is_down_is_502():
    port = free_port()  # a port nothing listens on
    with pytest.raises(CatalogueError, match="cannot be reached") as exc:
        catalogue(f"http://127.0.0.1:{port}", timeout=2).spectrum("SN2002er", 0)
    assert exc.value.status == 502


def test_wrong_key_is_a_502_naming_the_settings(tns):
    with pytest.raises(CatalogueError, match="refused the bot's credentials.*ASTRODASH_TNS_API_KEY") as exc:
        TnsCatalogue(BOT_ID, BOT_NAME, "wrong", tns, rate_limit=RateLimit()).spectrum("SN2002er", 0)
    assert exc.value.status == 502


def test_rate_limits_hold_requests_back_until_the_reset():
    """A 429 (reset 30 s) stops every request of that bot for 30 s on the injected clock, without asking TNS."""
    now = [1000.0]
    httpd = QuietServer(("127.0.0.1", 0), FakeTns)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cat = catalogue(f"http://127.0.0.1:{httpd.server_address[1]}/limited", clock=lambda: now[0])
        FakeTns.requests.clear()
        with pytest.raises(CatalogueError, match="try again in 30 s") as first:
            cat.spectrum("SN2002er", 0)
        now[0] += 29
        with pytest.raises(CatalogueError, match="try again in 1 s") as held:
            cat.spectrum("SN2002er", 0)
        assert (first.value.status, first.value.retry_after, held.value.status) == (429, 30, 429)
        assert len(FakeTns.requests) == 1  # the second lookup never reached the server
        now[0] += 1.5
        with pytest.raises(CatalogueError):
            cat.spectrum("SN2002er", 0)
        assert len(FakeTns.requests) == 2  # after the reset it asks again
    finally:
        httpd.shutdown()


def test_no_requests_remaining_holds_back_before_a_429(tns):
    """An answer saying no requests remain (reset in 20 s) stops the lookup before its next request."""
    now = [0.0]
    cat = catalogue(tns, clock=lambda: now[0])
    FakeTns.remaining[0] = 0
    FakeTns.requests.clear()
    try:
        with pytest.raises(CatalogueError, match="rate limit") as exc:
            cat.spectrum("SN2002er", 0)
    finally:
        FakeTns.remaining[0] = 100
    assert exc.value.status == 429 and exc.value.retry_after == 20
    assert [r["path"] for r in FakeTns.requests] == ["/api/get/object"]  # the file was not asked for
    now[0] += 20.5
    assert cat.spectrum("SN2002er", 0).meta["instrument"] == "FAST"


def test_settings_from_the_environment():
    assert tns_from_env({}) is None
    with pytest.raises(CatalogueError, match="set ASTRODASH_TNS_API_KEY too") as exc:
        tns_from_env({"ASTRODASH_TNS_BOT_ID": "1", "ASTRODASH_TNS_BOT_NAME": "b"}).spectra("SN2002er")
    assert exc.value.status == 503
    with pytest.raises(CatalogueError, match="numeric id"):
        tns_from_env({"ASTRODASH_TNS_BOT_ID": "bot", "ASTRODASH_TNS_BOT_NAME": "b",
                      "ASTRODASH_TNS_API_KEY": "k"}).spectra("SN2002er")
    cat = tns_from_env({"ASTRODASH_TNS_BOT_ID": "7", "ASTRODASH_TNS_BOT_NAME": "b", "ASTRODASH_TNS_API_KEY": "k"})
    assert cat.url == "https://www.wis-tns.org" and cat.user_agent == 'tns_marker{"tns_id": 7, "type": "bot", "name": "b"}'


# --- through a real astrodash serve, as AstroDASH 2.0's front end sends oscRef ----------------------------------------
def _serve(tmp_path, url):
    env = {"ASTRODASH_TNS_BOT_ID": str(BOT_ID), "ASTRODASH_TNS_BOT_NAME": BOT_NAME, "ASTRODASH_TNS_API_KEY": API_KEY,
           "ASTRODASH_TNS_URL": url, "ASTRODASH_OSC_URL": "", "ASTRODASH_CATALOGUE_TIMEOUT": "0.5",
           "ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_WARMUP": "0"}
    return ServerProcess(tmp_path, env, timeout=120)


def test_process_by_name_over_http(tns, tmp_path):
    def post(c, **p):
        return c.post("/api/v1/process", data={"params": json.dumps(p)})

    with _serve(tmp_path, tns) as server, httpx.Client(base_url=server.base, timeout=120) as c:
        est = post(c, oscRef="SN 2002er", knownZ=False, calculateRlap=True)
        given = post(c, oscRef="2002er", knownZ=True, zValue=Z_2002ER, spectrum_index=1)
        survey = post(c, oscRef="ZTF21aaxxxxx", knownZ=False)
        missing = post(c, oscRef="SN 2002zz")
        beyond = post(c, oscRef="SN 2002er", spectrum_index=5)
        junk, slow = post(c, oscRef="SN2000ja"), post(c, oscRef="SN2000sl")
    assert est.status_code == 200, est.text
    body = est.json()
    assert body["file"] == "tns:SN2002er" and body["index"] == 0
    assert body["observation"] == {"time": "52517.0000", "instrument": "FAST"}
    assert body["classification"]["best_match"]["broad_type"] == "Ia"
    assert body["redshift_source"] == "estimated" and abs(body["redshift"] - Z_2002ER) < 0.01
    assert given.status_code == 200 and given.json()["observation"]["instrument"] == "Kast"
    assert given.json()["redshift"] == Z_2002ER and given.json()["redshift_source"] == "given"
    assert survey.status_code == 200 and survey.json()["file"] == "tns:SN2021abc"
    assert missing.status_code == 404 and "SN2002zz" in missing.json()["detail"]
    assert beyond.status_code == 422 and beyond.json()["field"] == "spectrum_index"
    assert "has 2 spectra" in beyond.json()["detail"]
    assert junk.status_code == 502 and slow.status_code == 504


def test_a_rate_limited_tns_is_a_429_with_retry_after_over_http(tns, tmp_path):
    with _serve(tmp_path, tns + "/limited") as server, httpx.Client(base_url=server.base, timeout=120) as c:
        FakeTns.requests.clear()
        first = c.post("/api/v1/process", data={"params": json.dumps({"oscRef": "SN 2002er"})})
        again = c.post("/api/v1/process", data={"params": json.dumps({"oscRef": "SN 2002ef"})})
    assert first.status_code == 429 and first.headers["retry-after"] == "30"
    assert again.status_code == 429 and 0 < int(again.headers["retry-after"]) <= 30
    assert "rate limit" in again.json()["detail"] and len(FakeTns.requests) == 1  # TNS was asked once
