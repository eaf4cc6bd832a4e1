"""Readers: every format on real files and on files written here, bad input, and property tests."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import astrodash_core as ad
from astrodash_core import SpectrumReadError

DATA = Path(__file__).parent / "data"
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wave(n=200):
    return np.linspace(3500.0, 9000.0, n)


# ---- ASCII ----------------------------------------------------------------------------------------------

def test_real_ascii_slsn():
    s = ad.read_spectrum(DATA / "06D4eu.m13.dat")
    assert len(s) > 1000 and s.meta["format"] == "ascii"
    assert s.wave[0] == pytest.approx(1628.155253946561)
    assert s.name == "06D4eu.m13"


@pytest.mark.parametrize("sep", ["   ", "\t", ",", ";", " , "])
def test_ascii_separators_headers_comments(sep):
    w = _wave(50)
    f = np.sin(w / 300) + 2
    lines = ["# a comment", "% another", "wavelength flux", "  "]
    lines += [f"  {a:.3f}{sep}{b:.6e}" for a, b in zip(w, f)]
    s = ad.read_spectrum("\n".join(lines).encode(), filename="x.txt")
    np.testing.assert_allclose(s.wave, np.round(w, 3))
    np.testing.assert_allclose(s.flux, f, rtol=1e-6)
    assert s.meta["skipped_lines"] == 1


def test_ascii_fortran_exponents_unsorted_duplicates_junk_columns():
    text = "\n".join([
        "5000.0 1.0D+00 0.1 junk",
        "4000.0 2.0d+00 0.1 junk",
        "4000.0 4.0D+00 0.1 junk",
        *[f"{6000 + 10 * k} 1.5E+00 0.2 x y z" for k in range(20)],
    ])
    s = ad.read_spectrum(text.encode(), filename="a.flm")
    assert np.all(np.diff(s.wave) > 0)
    assert s.wave[0] == 4000.0 and s.flux[0] == pytest.approx(3.0)  # duplicates averaged
    assert s.error is not None and s.error.size == s.flux.size


def test_ascii_nan_flux_dropped_and_redshift_comment():
    w = _wave(30)
    rows = [f"{a} {'nan' if k % 5 == 0 else 1.0}" for k, a in enumerate(w)]
    s = ad.read_spectrum(("# redshift = 0.034\n" + "\n".join(rows)).encode(), filename="z.dat")
    assert len(s) == 24 and np.isfinite(s.flux).all()
    assert s.redshift == pytest.approx(0.034)


def test_ascii_wavelength_units_guessed():
    w_nm = np.linspace(350, 900, 40)
    s = ad.read_spectrum(np.c_[w_nm, np.ones(40)].tobytes() if False else
                         "\n".join(f"{a} 1" for a in w_nm).encode(), filename="nm.txt")
    assert s.wave[0] == pytest.approx(3500.0)
    assert "nm" in s.meta["wave_unit"]


# ---- CSV ------------------------------------------------------------------------------------------------

def test_csv_named_columns_in_any_order_with_ivar():
    w = _wave(40)
    rows = ["ivar,flux,wavelength"] + [f"{4.0},{1 + 0.1 * k},{a}" for k, a in enumerate(w)]
    s = ad.read_spectrum("\n".join(rows).encode(), filename="t.csv")
    np.testing.assert_allclose(s.wave, w)
    np.testing.assert_allclose(s.error, 0.5)
    assert s.meta["format"] == "csv"


def test_csv_sniffed_without_suffix():
    rows = ["wave;flux;err"] + [f"{a};1.0;0.1" for a in _wave(20)]
    s = ad.read_spectrum("\n".join(rows).encode(), filename="noext")
    assert s.meta["format"] == "csv" and s.error is not None


# ---- FITS -----------------------------------------------------------------------------------------------

def _fits_bytes(hdul):
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def test_fits_1d_linear_wcs_with_redshift_and_units():
    from astropy.io import fits

    flux = np.linspace(1, 2, 500)
    h = fits.PrimaryHDU(flux)
    h.header.update(CRVAL1=3500.0, CDELT1=10.0, CRPIX1=1.0, REDSHIFT=0.05, BUNIT="erg/s/cm2/A", OBJECT="SN X")
    s = ad.read_spectrum(_fits_bytes(fits.HDUList([h])), filename="x.fits")
    assert s.wave[0] == pytest.approx(3500.0) and s.wave[1] == pytest.approx(3510.0)
    assert s.redshift == pytest.approx(0.05)
    assert s.meta["flux_unit"] == "erg/s/cm2/A" and s.name == "SN X"


def test_fits_log_linear_wcs_and_cd_matrix(tmp_path):
    from astropy.io import fits

    h = fits.PrimaryHDU(np.ones(300))
    h.header.update(CRVAL1=np.log10(4000.0), CD1_1=1e-4, CRPIX1=1.0, **{"DC-FLAG": 1})
    path = tmp_path / "log.fits"
    fits.HDUList([h]).writeto(path)
    s = ad.read_spectrum(path)
    assert s.wave[0] == pytest.approx(4000.0)
    assert s.wave[1] / s.wave[0] == pytest.approx(10 ** 1e-4)


def test_fits_2d_multispec_stack_takes_first_row_and_sigma_band():
    from astropy.io import fits

    stack = np.vstack([np.full(100, 5.0), np.full(100, 1.0), np.full(100, 0.3)])
    h = fits.PrimaryHDU(stack)
    h.header.update(CRVAL1=4000.0, CDELT1=5.0, BANDID1="spectrum", BANDID2="sky", BANDID3="sigma - error")
    s = ad.read_spectrum(_fits_bytes(fits.HDUList([h])), filename="ms.fits")
    assert np.all(s.flux == 5.0) and np.all(s.error == 0.3)


def test_fits_binary_table_columns_and_z_key():
    from astropy.io import fits
    from astropy.table import Table

    t = Table({"WAVELENGTH": _wave(80), "FLUX": np.ones(80), "ERR": np.full(80, 0.1)})
    t["WAVELENGTH"].unit = "Angstrom"
    hdu = fits.BinTableHDU(t)
    hdu.header["Z"] = 0.12
    s = ad.read_spectrum(_fits_bytes(fits.HDUList([fits.PrimaryHDU(), hdu])), filename="t.fits")
    assert len(s) == 80 and s.redshift == pytest.approx(0.12) and s.error is not None


def test_fits_with_lying_suffix_is_sniffed():
    from astropy.io import fits

    h = fits.PrimaryHDU(np.ones(100))
    h.header.update(CRVAL1=4000.0, CDELT1=5.0)
    s = ad.read_spectrum(_fits_bytes(fits.HDUList([h])), filename="really_fits.dat")
    assert s.meta["format"] == "fits"


def test_fits_without_wcs_is_a_clear_error():
    from astropy.io import fits

    with pytest.raises(SpectrumReadError, match="wavelength solution"):
        ad.read_spectrum(_fits_bytes(fits.HDUList([fits.PrimaryHDU(np.ones(50))])), filename="nowcs.fits")


# ---- SNID lnw -------------------------------------------------------------------------------------------

def test_lnw_every_epoch_with_age_type_and_name():
    spectra = ad.read_spectra(DATA / "sn1999aa.lnw")
    assert len(spectra) == 42
    first = spectra[0]
    assert first.meta["sn_type"] == "Ia-91T" and first.meta["object"] == "sn1999aa"
    assert first.meta["age"] == pytest.approx(-9.9, abs=0.05)
    assert all(s.meta["epoch"] == k for k, s in enumerate(spectra))
    ages = [s.meta["age"] for s in spectra]
    assert ages == sorted(ages)
    # flat flux + 1: positive around 1, no zero padding kept
    assert 0.5 < np.median(first.flux) < 1.5
    assert len(first.meta["spline"]["xknot"]) == first.meta["spline"]["nknot"]


# ---- OSC JSON -------------------------------------------------------------------------------------------

def test_osc_json_choice_of_spectrum_and_redshift():
    doc = {"SN2011fe": {"redshift": [{"value": "0.0008"}], "spectra": [
        {"data": [[str(a), "1.0"] for a in _wave(30)], "u_wavelengths": "Angstrom"},
        {"data": [[str(a), "2.0", "0.1"] for a in _wave(40)]},
    ]}}
    data = json.dumps(doc).encode()
    assert len(ad.read_spectra(data, filename="sn.json")) == 2
    s = ad.read_spectrum(data, filename="sn.json", index=1)
    assert len(s) == 40 and s.error is not None and s.redshift == pytest.approx(0.0008)
    with pytest.raises(SpectrumReadError, match="index 5"):
        ad.read_spectrum(data, filename="sn.json", index=5)


# ---- other sources --------------------------------------------------------------------------------------

def test_array_file_object_and_spectrum_sources():
    arr = np.c_[_wave(20), np.ones(20), np.full(20, 0.1)]
    s = ad.read_spectrum(arr)
    assert s.error is not None
    assert ad.read_spectrum(s) is s
    fh = io.BytesIO("\n".join(f"{a} 1" for a in _wave(20)).encode())
    fh.name = "stream.txt"
    assert ad.read_spectrum(fh).name == "stream"


# ---- malformed input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, filename, message", [
    (b"", "empty.dat", "empty"),
    (b"   \n\n", "blank.txt", "empty"),
    (bytes(range(256)) * 50, "garbage.dat", "binary"),
    (b"\n".join(b"%d" % (4000 + k) for k in range(50)), "one.dat", "one numeric column"),
    (b"hello world\nthis is text\n", "text.dat", "non-numeric"),
    (b"4000 1\n4001 2\n4002 3\n", "short.dat", "at least 10"),
    (b"\n".join(b"%d 1" % (k - 20) for k in range(30)), "neg.dat", "positive"),
    (b"\n".join(b"%d nan" % (4000 + k) for k in range(30)), "nan.dat", "NaN or infinite everywhere"),
    (b"\n".join(b"%d inf" % (4000 + k) for k in range(30)), "inf.dat", "NaN or infinite everywhere"),
    (b"{not json", "bad.json", "invalid JSON"),
    (b"SIMPLE  = T garbage", "bad.fits", "FITS"),
])
def test_bad_input_is_a_clear_error_naming_the_file(content, filename, message):
    with pytest.raises(SpectrumReadError, match=message) as exc:
        ad.read_spectrum(content, filename=filename)
    assert filename in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_missing_file_and_nonfinite_wavelength():
    with pytest.raises(SpectrumReadError, match="no such file"):
        ad.read_spectrum("/nonexistent/sn.dat")
    # a few rows without a valid wavelength are dropped with a warning (tests/test_invalid_rows.py), many are not
    s = ad.read_spectrum(np.c_[np.r_[np.nan, _wave(20)], np.ones(21)])
    assert len(s) == 20 and s.meta["warnings"] == ["dropped 1 of 21 rows: NaN or infinite wavelength"]
    with pytest.raises(SpectrumReadError, match="3 of 21 rows .* not a positive finite number"):
        ad.read_spectrum(np.c_[np.r_[np.nan, np.inf, np.nan, _wave(18)], np.ones(21)])


@pytest.mark.parametrize("z, shown", [(np.float64(-1.5), "-1.5"), (np.float32(np.inf), "inf"), (-1, "-1.0"),
                                      (np.array(np.nan), "nan")])
def test_a_bad_redshift_is_named_by_its_value_not_its_python_type(z, shown):
    # numpy scalars come from tables and catalogues: the message shows the number, never numpy's repr
    with pytest.raises(SpectrumReadError, match=rf"^spectrum: redshift {shown} is not a finite number above -1$"):
        ad.Spectrum(_wave(20), np.ones(20), redshift=z)
    r = ad.Classifier().classify([ad.Spectrum(_wave(20), np.ones(20))], redshift=[z], rlap=False)[0]
    assert r.error == f"redshift {shown} is not a finite number above -1"
    r = ad.Classifier().classify([ad.Spectrum(_wave(20), np.ones(20))], redshift=[np.str_("z=0.1")], rlap=False)[0]
    assert r.error == "redshift 'z=0.1' is not a number"
    with pytest.raises(SpectrumReadError, match=r"^spectrum: redshift 'z=0.1' is not a number$"):
        ad.Spectrum(_wave(20), np.ones(20), redshift=np.str_("z=0.1"))


# ---- properties -----------------------------------------------------------------------------------------

finite = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)


@FAST
@given(st.lists(st.floats(3000, 9000), min_size=10, max_size=200, unique=True), st.data())
def test_ascii_reader_roundtrip_sorted(waves, data):
    fluxes = data.draw(st.lists(finite, min_size=len(waves), max_size=len(waves)))
    text = "\n".join(f"{w!r} {f!r}" for w, f in zip(waves, fluxes))
    s = ad.read_spectrum(text.encode(), filename="p.dat")
    order = np.argsort(waves)
    np.testing.assert_array_equal(s.wave, np.asarray(waves)[order])
    np.testing.assert_array_equal(s.flux, np.asarray(fluxes)[order])


@FAST
@given(st.binary(min_size=0, max_size=2000))
def test_arbitrary_bytes_never_crash(data):
    try:
        s = ad.read_spectrum(data, filename="fuzz.dat")
    except SpectrumReadError:
        return
    assert len(s) >= 10 and np.isfinite(s.flux).all() and np.all(np.diff(s.wave) > 0)


def test_a_reader_names_itself_and_its_suffixes():
    from astrodash_core.reader_base import Reader

    class Fits2(Reader):
        name, suffixes = "fits2", (".f2", ".f2.gz")

    assert repr(Fits2()) == "<Fits2 fits2 .f2,.f2.gz>"
