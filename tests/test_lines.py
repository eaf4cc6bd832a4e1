import pytest

from astrodash_core import lines


def test_line_list_has_the_supernova_species():
    species = set(lines.elements())
    for el in ("H I", "He I", "C II", "O I", "Na I", "Mg II", "Si II", "S II", "Ca II", "Fe II"):
        assert el in species
    ws = [l["wavelength"] for l in lines.all_lines()]
    assert ws == sorted(ws)


def test_one_element_ignores_case_and_spacing():
    assert {l["element"] for l in lines.element_lines("SiII")} == {"Si II"}
    assert {l["element"] for l in lines.element_lines("si iii")} == {"Si III"}
    si2 = lines.element_lines("si ii")
    assert {l["wavelength"] for l in si2} >= {6355.0, 5972.0}
    with pytest.raises(KeyError, match="unknown element 'Xx'"):
        lines.element_lines("Xx")


def test_range_in_rest_and_observed_frames():
    rest = lines.lines_in_range(6000, 6600)
    assert {l["name"] for l in rest} >= {"Si II 6355", "H-alpha"}
    obs = lines.lines_in_range(6900, 7100, redshift=0.1, observed=True)
    assert any(l["name"] == "Si II 6355" and l["observed_wavelength"] == pytest.approx(6990.5) for l in obs)
    with pytest.raises(ValueError):
        lines.lines_in_range(7000, 6000)


def test_astrodash2_keys_are_aliases_of_our_species():
    assert lines.element_of({"element": "Ca II", "astrodash": "CaII [H&K]"}, "astrodash") == "CaII [H&K]"
    assert lines.element_of({"element": "[N II]"}, "astrodash") == "[N II]"
    assert lines.find_element("H_Balmer")[1] == lines.find_element("H I")[1]
    assert [l["name"] for l in lines.element_lines("CaII [IR-trip]")] == ["Ca II 8498", "Ca II 8542", "Ca II 8662"]
    assert lines.grouped(lines.all_lines(), "astrodash")["SII"] == [5454.0, 5640.0]  # not the forbidden [S II]
    with pytest.raises(KeyError, match="unknown element 'T1'"):
        lines.find_element("T1")  # telluric bands: not in our list
    with pytest.raises(ValueError, match="naming must be one of"):
        lines.elements("dash")
