"""The wavelength-unit guess counts only positive finite wavelengths, whatever else a column holds."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from astrodash_core.reader_base import guess_wave_unit


def reference(wave):
    """The rule spelled out: the range of the positive finite wavelengths decides."""
    good = [w for w in wave.tolist() if np.isfinite(w) and w > 0]
    if not good:
        return 1.0
    lo, hi = min(good), max(good)
    return 1e10 if hi < 1e-4 else 1e4 if hi < 30 else 10.0 if (hi < 1500 and lo > 200) else 1.0


values = st.one_of(st.floats(1e-7, 2e4), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -5.0, 250.0, 1400.0]))


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.integers(0, 30), elements=values))
def test_guess_uses_only_positive_finite_wavelengths(wave):
    assert guess_wave_unit(wave)[0] == reference(wave)


def test_nm_needs_both_ends_in_range_among_valid_rows():
    assert guess_wave_unit(np.array([np.nan, 300.0, 900.0]))[0] == 10.0
    assert guess_wave_unit(np.array([-1.0, 300.0, 900.0]))[0] == 10.0
    assert guess_wave_unit(np.array([150.0, 300.0, 900.0]))[0] == 1.0
    assert guess_wave_unit(np.array([np.nan, -np.inf]))[1] == "Angstrom (assumed)"
