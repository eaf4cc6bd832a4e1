"""Small kernels against numpy computed here: the running median window by window, the bisection against
np.searchsorted; the dispatcher's lookup of the Numba kernels."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from astrodash_core._kernels import _median_smooth_one


def reference(row, lo, hi, half):
    out = row.copy()
    if half <= 0 or hi - lo < 3:
        return out
    src = row[lo:hi]
    for k in range(src.size):
        out[lo + k] = np.median(src[max(0, k - half):k + half + 1])
    return out


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(3, 60), elements=st.floats(-1e6, 1e6)), st.integers(0, 8), st.data())
def test_running_median_is_the_median_of_each_window(row, half, data):
    lo = data.draw(st.integers(0, row.size - 1))
    hi = data.draw(st.integers(lo, row.size))
    want = reference(row, lo, hi, half)
    got = row.copy()
    _median_smooth_one(got, lo, hi, half)
    np.testing.assert_array_equal(got, want)  # outside [lo, hi) untouched; inside, exact medians


def test_even_windows_at_the_ends_average_the_two_middle_values():
    row = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    _median_smooth_one(row, 0, 5, 2)
    # windows: [5,1,4] [5,1,4,2] [5,1,4,2,3] [1,4,2,3] [4,2,3]
    np.testing.assert_array_equal(row, [4.0, 3.0, 3.0, 2.5, 3.0])


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.integers(0, 40), elements=st.floats(-1e3, 1e3)), st.floats(-2e3, 2e3))
def test_bisect_is_numpys_searchsorted_on_both_sides(a, x):
    from astrodash_core._kernels import _bisect

    a = np.sort(a)
    for side, right in (("left", False), ("right", True)):
        assert _bisect(a, x, right) == np.searchsorted(a, x, side=side)
    if a.size:  # exact hits, where the two sides differ
        assert _bisect(a, a[0], False) == np.searchsorted(a, a[0], side="left")
        assert _bisect(a, a[-1], True) == np.searchsorted(a, a[-1], side="right")


@settings(max_examples=150, deadline=None)
@given(arrays(np.float64, st.integers(2, 12), elements=st.floats(0.01, 10.0), unique=True),
       arrays(np.float64, 12, elements=st.floats(-5.0, 5.0)), st.data())
def test_cumulative_from_is_the_integral_up_to_x_and_the_pixel_holding_it(widths, density, data):
    """``_cumulative_from`` against the piecewise-linear cumulative integral evaluated by np.interp (0 before the
    first edge, the whole integral after the last) and the pixel found by np.searchsorted, at points drawn
    between the edges, exactly on them and outside, taken in increasing order as the rebinning walks them."""
    from astrodash_core._numba_kernels import _cumulative_from

    edges = np.concatenate([[-3.0], -3.0 + np.cumsum(widths)])
    m = edges.size - 1
    cum = np.concatenate([[0.0], np.cumsum(density[:m] * np.diff(edges))])
    inside = data.draw(st.lists(st.floats(edges[0], edges[m]), max_size=8))
    on_edges = data.draw(st.lists(st.sampled_from(edges.tolist()), max_size=4))
    xs = np.sort(np.array([edges[0] - 1.0, *inside, *on_edges, edges[m] + 1.0]))
    k = 0
    for x in xs:
        value, k = _cumulative_from(x, edges, cum, k)
        assert value == pytest.approx(np.interp(x, edges, cum), rel=1e-12, abs=1e-12)
        if edges[0] < x < edges[m]:  # the pixel holding x: edges[k] <= x < edges[k + 1]
            assert k == np.searchsorted(edges, x, side="right") - 1
    assert _cumulative_from(edges[m], edges, cum, 0) == (cum[m], 0)  # at the last edge: the whole integral
    assert _cumulative_from(edges[0] - 1.0, edges, cum, 0) == (0.0, 0)


def test_the_dispatcher_imports_numba_only_for_a_numba_kernel_and_names_what_it_lacks():
    """``_kernels`` hands the Numba kernels out on first access: a dunder or public name it lacks is an
    AttributeError without Numba being imported (the serial path never waits for it; checked in a fresh
    interpreter), a private one is looked up in ``_numba_kernels``; either error names the module and the
    attribute, with no inner error chained."""
    import subprocess
    import sys

    from astrodash_core import _kernels as K, _numba_kernels

    for name in ("nothing", "_no_such_kernel"):
        with pytest.raises(AttributeError) as info:
            getattr(K, name)
        assert str(info.value) == f"module 'astrodash_core._kernels' has no attribute '{name}'"
        assert info.value.__context__ is None or info.value.__suppress_context__
    assert not hasattr(K, "__wrapped__") and K._rebin_one is _numba_kernels._rebin_one
    probe = ("import sys, astrodash_core._kernels as K; "
             "print(hasattr(K, '__wrapped__'), hasattr(K, 'nothing'), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]
