"""A few invalid rows (bad wavelength, NaN/inf flux) are dropped with a warning; a mostly invalid file is an error.

The rule is the Spectrum's (one place for every reader): rows whose wavelength is not a positive finite number
are dropped when they are at most MAX_BAD_WAVELENGTH_FRACTION of the rows, rows with a NaN or infinite flux
too, as long as all invalid rows are at most MAX_INVALID_FRACTION.  Unusable error values (NaN, inf, <= 0) do
not cost the row: they become NaN.  Expected results here are computed independently with numpy.
"""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import astrodash_core as ad
from astrodash_core import SpectrumReadError
from astrodash_core.results import Classification
from astrodash_core.spectrum import MAX_BAD_WAVELENGTH_FRACTION, MAX_INVALID_FRACTION, Spectrum

DATA = Path(__file__).parent / "data"
SN2013DH = DATA / "SN2013dh_56464.500065.dat"  # from the Open Supernova Catalog: 6 rows with negative wavelengths
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wave(n):
    return np.linspace(3500.0, 9000.0, n)


# ---- writers: one file per format from columns (values written exactly: repr for text) -----------------

def _text(wave, flux, error, sep=" "):
    cols = [wave, flux] + ([error] if error is not None else [])
    return "\n".join(sep.join(repr(float(v)) for v in row) for row in zip(*cols)).encode()


def write_ascii(wave, flux, error=None):
    return _text(wave, flux, error), "spec.dat"


def write_csv(wave, flux, error=None):
    header = "wavelength,flux" + (",error" if error is not None else "")
    return header.encode() + b"\n" + _text(wave, flux, error, sep=","), "spec.csv"


def write_fits_table(wave, flux, error=None):
    from astropy.io import fits

    cols = [fits.Column("WAVELENGTH", "D", array=wave, unit="Angstrom"), fits.Column("FLUX", "D", array=flux)]
    if error is not None:
        cols.append(fits.Column("ERR", "D", array=error))
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(buf)
    return buf.getvalue(), "spec.fits"


def write_osc_json(wave, flux, error=None):
    cols = [wave, flux] + ([error] if error is not None else [])
    rows = [[repr(float(v)) for v in row] for row in zip(*cols)]
    return json.dumps({"SNX": {"spectra": [{"data": rows, "u_wavelengths": "Angstrom"}]}}).encode(), "spec.json"


WRITERS = [write_ascii, write_csv, write_fits_table, write_osc_json]


def _expected(wave, flux, error=None):
    """The rows a reader must return, by numpy alone: valid rows sorted by wavelength (unusable errors NaN)."""
    valid = np.isfinite(wave) & (wave > 0) & np.isfinite(flux)
    order = np.argsort(wave[valid])
    err = None
    if error is not None:
        e = error[valid][order]
        err = np.where(np.isfinite(e) & (e > 0), e, np.nan)
    return wave[valid][order], flux[valid][order], err, int((~valid).sum())


# ---- the real file -------------------------------------------------------------------------------------

def test_real_file_with_negative_wavelengths_reads_without_them():
    raw = np.loadtxt(SN2013DH)
    w, f = raw[:, 0], raw[:, 1]
    bad = ~(np.isfinite(w) & (w > 0)) | ~np.isfinite(f)
    n_bad = int(bad.sum())
    assert n_bad == 6 and (w[bad] < 0).all()  # the file as the catalogue has it
    s = ad.read_spectrum(SN2013DH)
    uniq = np.unique(w[~bad])
    assert len(s) == uniq.size == raw.shape[0] - n_bad
    np.testing.assert_array_equal(s.wave, uniq)
    np.testing.assert_array_equal(s.flux, f[~bad][np.argsort(w[~bad])])
    assert s.meta["warnings"] == [f"dropped {n_bad} of {raw.shape[0]:,} rows: negative or zero wavelength"]
    assert s.summary()["warnings"] == s.meta["warnings"]


def test_cli_read_json_shows_the_warning():
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "read", "--json", str(SN2013DH)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["points"] == 1018 and info["warnings"] == ["dropped 6 of 1,024 rows: negative or zero wavelength"]


# ---- the threshold ------------------------------------------------------------------------------------

def _corrupt(n, n_bad, kind, seed=0):
    rng = np.random.default_rng(seed)
    wave, flux = _wave(n), 1.0 + rng.random(n)
    idx = rng.choice(n, n_bad, replace=False)
    if kind == "negative wavelength":
        wave[idx] = -wave[idx]
    elif kind == "NaN wavelength":
        wave[idx] = np.nan
    else:
        flux[idx] = np.nan
    return wave, flux


@pytest.mark.parametrize("writer", [write_ascii, write_csv, write_fits_table])
@pytest.mark.parametrize("kind", ["negative wavelength", "NaN wavelength", "NaN flux"])
def test_mostly_invalid_file_is_an_error_naming_the_file(writer, kind):
    wave, flux = _corrupt(100, 60, kind)
    data, filename = writer(wave, flux)
    with pytest.raises(SpectrumReadError, match="60 of 100 rows") as exc:
        ad.read_spectrum(data, filename=filename)
    assert exc.value.filename == filename and str(exc.value).startswith(f"{filename}: ")
    assert ("wavelength that is not a positive finite number" if "wavelength" in kind else "are invalid") in str(exc.value)


@pytest.mark.parametrize("kind", ["negative wavelength", "NaN wavelength"])
def test_bad_wavelengths_allowed_up_to_their_fraction(kind):
    n = 200
    allowed = int(MAX_BAD_WAVELENGTH_FRACTION * n)
    s = ad.read_spectrum(*write_ascii(*_corrupt(n, allowed, kind)))
    assert len(s) == n - allowed and s.meta["warnings"][0].startswith(f"dropped {allowed} of {n} rows")
    with pytest.raises(SpectrumReadError, match=f"{allowed + 1} of {n} rows .* at most 10 %"):
        ad.read_spectrum(*write_ascii(*_corrupt(n, allowed + 1, kind)))


def test_nan_flux_is_missing_data_allowed_up_to_the_invalid_fraction():
    n = 200
    allowed = int(MAX_INVALID_FRACTION * n)
    s = ad.read_spectrum(*write_csv(*_corrupt(n, allowed, "NaN flux")))
    assert len(s) == n - allowed
    assert s.meta["warnings"] == [f"dropped {allowed} of {n} rows: NaN or infinite flux"]
    with pytest.raises(SpectrumReadError, match=f"{allowed + 1} of {n} rows .* are invalid"):
        ad.read_spectrum(*write_csv(*_corrupt(n, allowed + 1, "NaN flux")))


def test_mixed_causes_are_counted_once_per_row():
    wave, flux = _wave(50), np.ones(50)
    wave[[0, 1]] = [-1.0, 0.0]
    wave[2] = np.inf
    flux[[2, 3, 4]] = np.nan  # row 2 is counted for its wavelength only
    s = Spectrum(wave, flux, name="mixed")
    assert len(s) == 45
    assert s.meta["warnings"] == ["dropped 5 of 50 rows: 1 NaN or infinite wavelength, "
                                  "2 negative or zero wavelength, 2 NaN or infinite flux"]


def test_fits_image_with_nan_padding_reads():
    from astropy.io import fits

    flux = np.ones(400)
    flux[:60] = flux[-40:] = np.nan  # 25 % padding outside the coverage
    h = fits.PrimaryHDU(flux)
    h.header.update(CRVAL1=3000.0, CDELT1=10.0)
    buf = io.BytesIO()
    fits.HDUList([h]).writeto(buf)
    s = ad.read_spectrum(buf.getvalue(), filename="pad.fits")
    assert len(s) == 300 and s.wave[0] == pytest.approx(3600.0)
    assert s.meta["warnings"] == ["dropped 100 of 400 rows: NaN or infinite flux"]


def test_too_few_rows_left_says_rows_were_dropped():
    wave, flux = _wave(11), np.ones(11)
    wave[3] = -5.0
    with pytest.raises(SpectrumReadError, match=r"short: only 9 usable points \(after dropping 1 invalid row\); "
                                                 r"at least 10 are needed"):
        Spectrum(wave[:10], flux[:10], name="short")


def test_unit_guess_ignores_invalid_rows():
    w_nm = np.linspace(350.0, 900.0, 60)
    w_nm[5] = -400.0
    s = ad.read_spectrum("\n".join(f"{a} 1" for a in w_nm).encode(), filename="nm.txt")
    assert "nm" in s.meta["wave_unit"] and s.wave[0] == pytest.approx(3500.0) and len(s) == 59


def test_warnings_do_not_touch_the_callers_meta_and_survive_a_copy():
    meta = {"format": "mine"}
    wave = _wave(30)
    wave[0] = np.nan
    s = Spectrum(wave, np.ones(30), meta=meta)
    assert "warnings" not in meta and len(s.meta["warnings"]) == 1
    c = s.copy()
    assert c.meta["warnings"] == s.meta["warnings"]  # the clean arrays add none
    clean = Spectrum(_wave(30), np.ones(30))
    assert "warnings" not in clean.meta and clean.summary()["warnings"] == []


# ---- flux errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("writer", WRITERS)
def test_unusable_errors_keep_their_rows_as_unknown(writer):
    wave, flux, err = _wave(40), np.linspace(1, 2, 40), np.full(40, 0.1)
    err[[3, 10, 11, 20]] = [np.nan, np.inf, 0.0, -0.2]
    s = ad.read_spectrum(*writer(wave, flux, err))
    assert len(s) == 40  # before: the NaN and inf rows were dropped, the negative error kept as is
    expected = err.copy()
    expected[[3, 10, 11, 20]] = np.nan
    np.testing.assert_array_equal(s.error, expected)
    assert s.meta["warnings"] == ["4 of 40 error values are NaN, infinite, zero or negative: treated as unknown (NaN)"]


def test_error_column_with_no_usable_value_is_ignored():
    s = Spectrum(_wave(20), np.ones(20), np.full(20, -1.0))
    assert s.error is None
    assert s.meta["warnings"] == ["error column ignored: every value is NaN, infinite, zero or negative"]


def test_duplicate_with_unknown_error_averages_to_unknown():
    wave = np.r_[4000.0, 4000.0, _wave(20)]
    err = np.r_[np.nan, 0.1, np.full(20, 0.1)]
    s = Spectrum(wave, np.ones(22), err)
    assert s.wave[0] == 3500.0 and np.isnan(s.error[s.wave == 4000.0]).all()


# ---- the result carries them --------------------------------------------------------------------------

def test_classification_to_dict_has_warnings_only_when_there_are_some():
    assert "warnings" not in Classification(name="a").to_dict()
    d = Classification(name="a", warnings=["dropped 6 of 1,024 rows: negative or zero wavelength"]).to_dict()
    assert d["warnings"] == ["dropped 6 of 1,024 rows: negative or zero wavelength"]
    assert Classification(name="b", error="coverage", warnings=["w"]).to_dict()["warnings"] == ["w"]


# ---- property: exactly the uncorrupted rows, sorted -----------------------------------------------------

CORRUPTIONS = ["negative wavelength", "zero wavelength", "NaN wavelength", "inf wavelength",
               "NaN flux", "inf flux", "-inf flux"]
finite_flux = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)


def _apply(wave, flux, rows, kinds):
    for i, kind in zip(rows, kinds):
        if kind == "negative wavelength":
            wave[i] = -wave[i]
        elif kind == "zero wavelength":
            wave[i] = 0.0
        elif kind == "NaN wavelength":
            wave[i] = np.nan
        elif kind == "inf wavelength":
            wave[i] = np.inf
        elif kind == "NaN flux":
            flux[i] = np.nan
        else:
            flux[i] = float(kind.split()[0])


@PROPS
@pytest.mark.parametrize("writer", WRITERS)
@given(waves=st.lists(st.floats(3000, 9000), min_size=20, max_size=150, unique=True), data=st.data())
def test_reader_returns_exactly_the_uncorrupted_rows(writer, waves, data):
    n = len(waves)
    wave = np.asarray(waves)
    flux = np.asarray(data.draw(st.lists(finite_flux, min_size=n, max_size=n)))
    error = None
    if data.draw(st.booleans()):
        error = np.asarray(data.draw(st.lists(st.floats(1e-6, 1e6), min_size=n, max_size=n)))
        bad_err = data.draw(st.lists(st.integers(0, n - 1), max_size=3))
        error[bad_err] = data.draw(st.sampled_from([np.nan, np.inf, 0.0, -1.0]))
    k = data.draw(st.integers(0, int(MAX_BAD_WAVELENGTH_FRACTION * n)))
    rows = data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True))
    kinds = data.draw(st.lists(st.sampled_from(CORRUPTIONS), min_size=k, max_size=k))
    _apply(wave, flux, rows, kinds)

    w_exp, f_exp, e_exp, n_bad = _expected(wave, flux, error)
    assert n_bad == k
    s = ad.read_spectrum(*writer(wave, flux, error))
    np.testing.assert_array_equal(s.wave, w_exp)
    np.testing.assert_array_equal(s.flux, f_exp)
    if e_exp is None or np.isnan(e_exp).all():
        assert s.error is None
    else:
        np.testing.assert_array_equal(s.error, e_exp)
    dropped = [w for w in s.meta.get("warnings", []) if w.startswith("dropped")]
    if not k:
        assert dropped == []
        return
    assert len(dropped) == 1 and dropped[0].startswith(f"dropped {k} of {n} rows: ")
    named = {"negative or zero wavelength": {"negative wavelength", "zero wavelength"},
             "NaN or infinite wavelength": {"NaN wavelength", "inf wavelength"},
             "NaN or infinite flux": {"NaN flux", "inf flux", "-inf flux"}}
    for cause, of_kinds in named.items():
        assert (cause in dropped[0]) == bool(of_kinds & set(kinds))


def test_the_reader_warnings_reach_the_classification_and_its_json():
    """classify keeps the reader's repairs on the result (and in to_dict), and only on that result."""
    from astrodash_core import classify

    data = Path(__file__).parent / "data"
    bad, good = classify([str(data / "SN2013dh_56464.500065.dat"),
                          str(Path(__file__).parents[1] / "examples" / "sn1994D_p02.dat")], redshift=0.01)
    assert bad.warnings == ["dropped 6 of 1,024 rows: negative or zero wavelength"]
    assert bad.to_dict()["warnings"] == bad.warnings
    assert not good.warnings and "warnings" not in good.to_dict()
