"""The one-pass column checks (``_columns.column_checks``) against numpy, and the Spectrum and unit guess that
use them against the general numpy path they skip (same arrays, same warnings, to the bit)."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from astrodash_core import SpectrumReadError
from astrodash_core import spectrum as spectrum_module
from astrodash_core._columns import column_checks
from astrodash_core.reader_base import guess_wave_unit, make_spectrum
from astrodash_core.spectrum import Spectrum

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# values that decide every check: invalid ones, zero and negative, and ordinary ones (repeated so that columns
# are often valid, sorted or holding duplicates)
_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 5e-324, 1e308]
values = st.one_of(st.sampled_from(_SPECIAL), st.floats(1.0, 10.0).map(lambda x: float(round(x, 1))),
                   st.floats(allow_nan=True, allow_infinity=True))


def _reference(wave, flux, error):
    valid = bool(np.all(np.isfinite(wave) & (wave > 0)) and np.all(np.isfinite(flux)))
    with np.errstate(invalid="ignore"):
        bad_err = -1 if error is None else int((~(np.isfinite(error) & (error > 0))).sum())
        increasing = bool(np.all(wave[1:] > wave[:-1]))
    return valid, bad_err, increasing


@st.composite
def columns(draw):
    n = draw(st.integers(0, 40))
    kind = draw(st.sampled_from(["mixed", "valid sorted", "valid"]))
    if kind == "mixed":
        wave = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    else:
        wave = np.array(draw(st.lists(st.floats(1e-3, 1e5), min_size=n, max_size=n)), dtype=np.float64)
        if kind == "valid sorted":
            wave = np.sort(wave)  # duplicates possible: sorted but not strictly increasing
    flux = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    error = draw(st.one_of(st.none(), st.lists(values, min_size=n, max_size=n).map(np.array)))
    return wave, flux, error


@PROPS
@given(columns(), st.integers(1, 3))
def test_checks_equal_numpy(cols, stride):
    wave, flux, error = cols
    # strided views, as the parser's columns are (values[:, 0] of an n x 3 table)
    table = np.zeros((wave.size * stride, 3))
    table[::stride, 0], table[::stride, 1] = wave, flux
    w, f = table[::stride, 0], table[::stride, 1]
    valid, bad_err, increasing, lo, hi = column_checks(w, f, error)
    assert (valid, bad_err, increasing) == _reference(wave, flux, error)
    if valid and wave.size:
        assert (lo, hi) == (wave.min(), wave.max())


def _general_spectrum(wave, flux, error):
    """The Spectrum the general numpy path builds: every step run, none skipped."""
    wave, flux, error, warnings = spectrum_module._drop_invalid_rows(wave, flux, error, "s")
    if error is not None:
        error, more = spectrum_module._clean_error(error)
        warnings += more
    if wave.size and np.any(np.diff(wave) <= 0):
        order = np.argsort(wave, kind="stable")
        wave, flux = wave[order], flux[order]
        error = error[order] if error is not None else None
        wave, flux, error = spectrum_module._merge_duplicates(wave, flux, error)
    return wave, flux, error, warnings


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and
                                         np.array_equal(a.view(np.uint64), b.view(np.uint64)))


@PROPS
@given(columns())
def test_spectrum_equals_the_general_path(cols):
    wave, flux, error = cols
    wave, flux = np.concatenate([wave, np.arange(1.0, 11.0)]), np.concatenate([flux, np.ones(10)])
    if error is not None:
        error = np.concatenate([error, np.ones(10)])
    try:
        want = _general_spectrum(wave, flux, error)
    except SpectrumReadError as exc:
        try:
            Spectrum(wave, flux, error, name="s")
        except SpectrumReadError as got:
            assert got.problem == exc.problem
            return
        raise AssertionError("the general path refuses these columns, the Spectrum did not")
    if want[0].size < 10:
        return  # too few points: refused either way (tested elsewhere)
    s = Spectrum(wave, flux, error, name="s")
    assert _same(s.wave, want[0]) and _same(s.flux, want[1]) and _same(s.error, want[2])
    assert s.meta.get("warnings", []) == want[3]


def test_sorted_valid_columns_with_a_duplicate_are_merged():
    wave = np.array([1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    s = Spectrum(wave, np.arange(11.0), np.ones(11), name="s")
    assert s.wave.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert s.flux[2] == 2.5 and s.error[2] == np.sqrt(2) / 2


@PROPS
@given(st.lists(values, max_size=30))
def test_unit_guess_equals_the_numpy_rule(ws):
    wave = np.array(ws, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        good = wave[np.isfinite(wave) & (wave > 0)]
    if not good.size:
        want = 1.0
    else:
        lo, hi = good.min(), good.max()
        want = 1e10 if hi < 1e-4 else 1e4 if hi < 30 else 10.0 if hi < 1500 and lo > 200 else 1.0
    assert guess_wave_unit(wave)[0] == want


@PROPS
@given(st.sampled_from([(1e-7, 1e-6), (0.3, 1.0), (300.0, 1000.0), (3000.0, 10000.0), (100.0, 1000.0)]),
       st.integers(10, 50))
def test_make_spectrum_converts_by_the_guess(span, n):
    wave = np.linspace(*span, n)
    factor, name = guess_wave_unit(wave)
    s = make_spectrum(wave, np.ones(n), filename="x.dat")
    assert s.meta["wave_unit"] == name
    np.testing.assert_array_equal(s.wave, wave * factor if factor != 1.0 else wave)


def _spectrum_or_problem(build):
    try:
        return build()
    except SpectrumReadError as exc:
        return exc.problem


@PROPS
@given(columns(), st.booleans())
def test_make_spectrum_checking_once_equals_the_constructor(cols, nm):
    """make_spectrum checks the columns once, for the unit guess and for the Spectrum it builds: the same
    spectrum (or the same refusal) as a Spectrum constructed from the converted columns, which checks them
    itself.  Columns as the parser gives them: strided views of one table."""
    wave, flux, error = cols
    wave = np.concatenate([wave, np.linspace(300.0, 1000.0, 10) if nm else np.arange(3000.0, 3010.0)])
    flux = np.concatenate([flux, np.ones(10)])
    table = np.ones((wave.size, 3))
    table[:, 0], table[:, 1] = wave, flux
    if error is not None:
        table[:-10, 2] = error
    w, f, e = table[:, 0], table[:, 1], (table[:, 2] if error is not None else None)
    factor = guess_wave_unit(w)[0]
    want = _spectrum_or_problem(lambda: Spectrum(w * factor if factor != 1.0 else w, f, e, name="s"))
    got = _spectrum_or_problem(lambda: make_spectrum(w, f, e, filename="s.dat"))
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return
    assert _same(got.wave, want.wave) and _same(got.flux, want.flux) and _same(got.error, want.error)
    assert got.meta.get("warnings", []) == want.meta.get("warnings", [])


def test_checks_of_columns_the_spectrum_converts_are_not_used():
    """``Spectrum._from_checked`` given the checks of float32 columns, which it converts to float64 (new arrays),
    checks the new ones itself: a stale 'all valid' does not keep a NaN flux."""
    wave, flux = np.arange(1.0, 13.0, dtype=np.float32), np.ones(12, dtype=np.float32)
    flux[3] = np.nan
    stale = column_checks(np.arange(1.0, 13.0), np.ones(12), None)
    s = Spectrum._from_checked(wave, flux, None, stale, name="s")
    assert s.wave.size == 11 and np.isfinite(s.flux).all()
