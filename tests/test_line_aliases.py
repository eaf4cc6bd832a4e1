"""AstroDASH 2.0's line-list element keys as aliases of ours, through a real ``astrodash serve`` on 127.0.0.1.

The expected table is written out here from the physics (rest wavelengths in air, Å), not read from the data
file: a line moved to the wrong key, a wavelength changed, or a key AstroDASH 2.0 does not have must fail."""
import httpx
import pytest

from astrodash_asgi.process import ServerProcess
from astrodash_core import lines

#: AstroDASH 2.0's front end colours lines by these keys, in this order ("matching sneLineList.txt").
ASTRODASH2_ORDER = [
    "H_Balmer", "H_Paschen", "HeI", "HeII", "CII", "CIII", "CIV", "NII", "NIII", "NIV", "NV",
    "OI", "[OI]", "OII", "[OII]", "[OIII]", "OV", "OVI", "NaI", "MgI", "MgII",
    "SiII", "SII", "CaII", "CaII [H&K]", "CaII [IR-trip]", "[CaII]", "FeII", "FeIII", "T1", "T2"]

#: Our lines under AstroDASH 2.0's keys, where the species and the kind of transition are the same.
UNDER_ASTRODASH_KEYS = {
    "H_Balmer": [4101.7, 4340.5, 4861.3, 6562.8],          # H-delta, H-gamma, H-beta, H-alpha
    "HeI": [3888.6, 4471.5, 5875.6, 6678.2, 7065.2],
    "HeII": [4685.7],
    "CII": [6580.0, 7234.0],
    "OI": [7773.4, 8446.4],
    "[OI]": [6300.3, 6363.8],
    "[OII]": [3727.4],
    "[OIII]": [4958.9, 5006.8],
    "NaI": [5891.9],
    "MgII": [4481.2],
    "SiII": [3858.0, 4130.9, 5051.0, 5972.0, 6355.0],
    "SII": [5454.0, 5640.0],                                # the permitted W feature of SNe Ia
    "CaII [H&K]": [3933.7, 3968.5],
    "CaII [IR-trip]": [8498.0, 8542.1, 8662.1],
    "[CaII]": [7291.5, 7323.9],
    "FeII": [4923.9, 5018.4, 5169.0],
    "FeIII": [4404.0, 5129.0],
}
#: Lines AstroDASH 2.0 has no key for keep our species names ([N II] and [S II] are forbidden lines: not its NII
#: and SII, which are permitted ones).
UNDER_OUR_NAMES = {"Si III": [4560.0], "Ti II": [4395.0], "[N II]": [6548.1, 6583.5], "[S II]": [6716.4, 6730.8]}
NO_LINES = ["H_Paschen", "CIII", "CIV", "NII", "NIII", "NIV", "NV", "OII", "OV", "OVI", "MgI", "CaII", "T1", "T2"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("lines"), {"ASTRODASH_RATE_LIMIT_ENABLED": "0",
                                                           "ASTRODASH_WARMUP": "0"}, timeout=120) as server:
        yield server.base


def test_the_default_answer_uses_astrodash2_keys_in_its_order(base):
    with httpx.Client(base_url=base, timeout=30) as c:
        full = c.get("/api/v1/line-list").json()
        els = c.get("/api/v1/line-list/elements").json()["elements"]
    assert full == {**UNDER_ASTRODASH_KEYS, **UNDER_OUR_NAMES}
    mapped = [k for k in els if k in ASTRODASH2_ORDER]
    assert mapped == [k for k in ASTRODASH2_ORDER if k in UNDER_ASTRODASH_KEYS]  # its canonical order
    assert els == mapped + list(UNDER_OUR_NAMES) and list(full) == els
    assert lines.astrodash2_elements_without_lines() == NO_LINES
    assert set(UNDER_ASTRODASH_KEYS) | set(NO_LINES) == set(ASTRODASH2_ORDER)


def test_our_species_names_on_request(base):
    with httpx.Client(base_url=base, timeout=30) as c:
        full = c.get("/api/v1/line-list", params={"names": "species"}).json()
        els = c.get("/api/v1/line-list/elements", params={"names": "species"}).json()["elements"]
        bad = c.get("/api/v1/line-list", params={"names": "astrodash2"})
    assert full["H I"] == UNDER_ASTRODASH_KEYS["H_Balmer"] and full["Si II"] == UNDER_ASTRODASH_KEYS["SiII"]
    assert full["Ca II"] == UNDER_ASTRODASH_KEYS["CaII [H&K]"] + UNDER_ASTRODASH_KEYS["CaII [IR-trip]"]
    assert full["[Ca II]"] == [7291.5, 7323.9] and full["[N II]"] == [6548.1, 6583.5]
    assert set(els) == set(full) and not set(els) & {"H_Balmer", "SiII", "CaII [H&K]"}
    assert sum(map(len, full.values())) == sum(map(len, UNDER_ASTRODASH_KEYS.values())) + \
        sum(map(len, UNDER_OUR_NAMES.values()))
    assert bad.status_code == 422 and bad.json()["field"] == "names" and "species" in bad.json()["detail"]


@pytest.mark.parametrize("asked, name, wavelengths", [
    ("H_Balmer", "H_Balmer", UNDER_ASTRODASH_KEYS["H_Balmer"]),
    ("h_balmer", "H_Balmer", UNDER_ASTRODASH_KEYS["H_Balmer"]),
    ("H I", "H I", UNDER_ASTRODASH_KEYS["H_Balmer"]),
    ("SiII", "SiII", UNDER_ASTRODASH_KEYS["SiII"]),
    ("si ii", "Si II", UNDER_ASTRODASH_KEYS["SiII"]),
    ("CaII [H&K]", "CaII [H&K]", [3933.7, 3968.5]),
    ("CaII [IR-trip]", "CaII [IR-trip]", [8498.0, 8542.1, 8662.1]),
    ("[CaII]", "[CaII]", [7291.5, 7323.9]),
    ("CaII", "Ca II", [3933.7, 3968.5, 8498.0, 8542.1, 8662.1]),  # its generic key: every Ca II line of ours
    ("[OIII]", "[OIII]", [4958.9, 5006.8]),
    ("[N II]", "[N II]", [6548.1, 6583.5]),
])
def test_one_element_by_either_name(base, asked, name, wavelengths):
    r = httpx.get(f"{base}/api/v1/line-list/element/{httpx.URL(path=asked).raw_path.decode()}", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["element"] == name and body["wavelengths"] == wavelengths and body["count"] == len(wavelengths)
    assert all(l["wavelength"] in wavelengths for l in body["lines"])


@pytest.mark.parametrize("key", ["T1", "H_Paschen", "NII", "OII", "MgI"])
def test_its_keys_we_have_no_lines_for_are_404(base, key):
    r = httpx.get(f"{base}/api/v1/line-list/element/{key}", timeout=30)
    assert r.status_code == 404 and key in r.json()["detail"]


def test_filter_groups_by_the_naming_asked(base):
    q = {"min_wavelength": 3900, "max_wavelength": 6600}
    with httpx.Client(base_url=base, timeout=30) as c:
        theirs = c.get("/api/v1/line-list/filter", params=q).json()
        ours = c.get("/api/v1/line-list/filter", params={**q, "names": "species"}).json()
    assert theirs["elements"]["CaII [H&K]"] == [3933.7, 3968.5] and "CaII [IR-trip]" not in theirs["elements"]
    assert theirs["elements"]["H_Balmer"] == [4101.7, 4340.5, 4861.3, 6562.8]
    assert theirs["elements"]["[N II]"] == [6548.1, 6583.5] and "[S II]" not in theirs["elements"]
    assert ours["elements"]["Ca II"] == [3933.7, 3968.5] and ours["elements"]["H I"] == theirs["elements"]["H_Balmer"]
    assert theirs["lines"] == ours["lines"] and theirs["count"] == ours["count"] == len(ours["lines"])
    by_name = {l["name"]: l for l in theirs["lines"]}
    assert by_name["Ca II K"]["element"] == "Ca II" and by_name["Ca II K"]["astrodash"] == "CaII [H&K]"
    assert "astrodash" not in by_name["[N II] 6548"]
