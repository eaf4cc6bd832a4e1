"""The Cython table parser: every number is the double Python's float() gives, bit for bit, whatever path
(Clinger, Eisel-Lemire, strtod) it takes; rows, comments and the text after the last newline."""
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from astrodash_core._parse import parse_table, parse_tables

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse(text: str, cols: int = 3):
    return parse_table(np.frombuffer(text.encode(), np.uint8), cols)


def _bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.uint64)


def _same_as_float(fields: list[str]) -> None:
    text = "\n".join(f"{f} 1" for f in fields) + "\n"
    values, counts, skipped = _parse(text, 2)
    assert skipped == 0 and len(values) == len(fields)
    want = [float(f.replace("d", "e").replace("D", "e")) for f in fields]
    got = _bits(values[:, 0])
    for f, g, w in zip(fields, got, _bits(want)):
        assert g == w, f"{f}: parsed {struct.unpack('<d', struct.pack('<Q', int(g)))[0]!r}, float() gives {float(f.replace('D', 'e'))!r}"


HARD = [
    "9007199254740993", "9007199254740992.5", "9007199254740994.5",  # halfway above 2**53: ties to even
    "2.4703282292062327e-324", "2.4703282292062328e-324", "4.9406564584124654e-324", "5e-324",  # subnormals
    "2.2250738585072011e-308", "2.2250738585072012e-308", "2.2250738585072014e-308",  # smallest normal
    "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308", "1e309", "1e-400",
    "1.00000000000000011102230246251565404236316680908203125",  # exactly halfway, 55 digits: strtod
    "1.00000000000000011102230246251565404236316680908203124",
    "1.00000000000000011102230246251565404236316680908203126",
    "7.2057594037927933e16", "1e23", "9.999999999999999e22", "8.98846567431158e307", "1e-23",
    "1.234567e-18", "1.012345e-16", "4.35679828e-7", "18446744073709551615", "18446744073709551616",
    "9999999999999999999", "0.9999999999999999999", "0.000000000000000000000000000001e10",
    "1e0000001", "1.5D+03", "-2.5d-3", "-0", "-0.0e5", "+7", ".5", "5.", "-.25E+2", "nan", "inf", "-inf",
]


@pytest.mark.parametrize("field", HARD)
def test_hard_cases_match_float(field):
    values, _, _ = _parse(f"{field} 1\n", 2)
    want = float(field.replace("D", "e").replace("d", "e"))
    if np.isnan(want):
        assert np.isnan(values[0, 0])
    else:
        assert _bits(values[0, 0]) == _bits(want)


decimal_strings = st.builds(
    lambda sign, digits, dot, exp_char, exp: sign + digits[:dot] + "." + digits[dot:] + exp_char + str(exp),
    st.sampled_from(["", "-", "+"]), st.text("0123456789", min_size=1, max_size=24),
    st.integers(0, 24), st.sampled_from(["e", "E", "D"]), st.integers(-400, 400))


@PROPS
@given(st.lists(decimal_strings, min_size=1, max_size=50))
def test_any_decimal_string_matches_float(fields):
    _same_as_float(fields)


@PROPS
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50),
       st.sampled_from(["{!r}", "{:.17e}", "{:.6e}", "{:.3f}", "{:.17g}", "{:.25e}"]))
def test_any_double_written_any_way_matches_float(values, fmt):
    _same_as_float([fmt.format(v) for v in values])


finite = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=100),
       st.sampled_from([" ", "\t", ",", ";", "   ", " ,"]), st.sampled_from(["%r", "%.6e", "%.3f", "%.17g", "%.18E"]),
       st.sampled_from(["", "\n", "\r\n", "\n\n"]))
def test_tables_in_every_separator_parse_row_by_row(rows, sep, fmt, end):
    text = "\n".join("  " + sep.join(fmt % v for v in row) for row in rows) + end
    values, counts, skipped = _parse(text)
    assert skipped == 0 and (counts == 3).all()
    np.testing.assert_array_equal(values, [[float(fmt % v) for v in row] for row in rows])


def test_rows_comments_headers_and_the_last_line():
    text = "# comment\nwave flux err\n% other comment\n\n 1 2 3 junk\n4,5\n6;7;8;9\n1e5x 2\n10 11"
    values, counts, skipped = _parse(text)
    np.testing.assert_array_equal(values[:, :2], [[1, 2], [4, 5], [6, 7], [10, 11]])
    assert list(counts) == [3, 2, 3, 2] and np.isnan(values[1, 2]) and values[2, 2] == 8
    assert skipped == 2  # the header and the row whose first field is not a number


@pytest.mark.parametrize("text", ["", "\n", "   ", "# only a comment", "1", "1 2"])
def test_tiny_inputs(text):
    values, counts, skipped = _parse(text)
    assert values.shape[1] == 3 and len(values) == len(counts) == (1 if text == "1 2" else 0)


def test_the_benchmarks_table_parses_to_what_python_reads():
    """The benchmarks' 4,000-row file (benchmarks/tables.py, both variants): the correctness half of the parse
    benchmark, run with the suite (the benchmarks themselves are timed and stay out of it)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_tables", Path(__file__).resolve().parents[1] / "benchmarks" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    for constant in (False, True):
        data = tables.table_4000(constant_error=constant)
        values, counts, _ = parse_table(np.frombuffer(data, np.uint8), 3)
        rows = [line.split() for line in data.decode().splitlines() if not line.startswith("#")]
        expected = np.array([[float(v) for v in row] for row in rows])
        assert values.shape == expected.shape == (4000, 3)
        np.testing.assert_array_equal(_bits(values), _bits(expected))


# the edges of the fast paths: mantissas either side of 2**53 (Clinger's exact path needs <= 2**53) and of 10**19
# (19 digits in a uint64), powers of ten either side of 10**22 (the largest exact double power of ten)
mantissas = st.one_of(st.integers(2**53 - 2000, 2**53 + 2000), st.integers(10**18, 10**19 + 10**4),
                      st.integers(1, 10**19), st.integers(10**15, 10**17))
fast_path_edges = st.builds(
    lambda sign, zeros, m, dot, q: sign + zeros + str(m)[:dot] + "." + str(m)[dot:] + "e" + str(q + dot - len(str(m))),
    st.sampled_from(["", "-", "+"]), st.sampled_from(["", "0", "000"]), mantissas, st.integers(0, 20),
    st.integers(-26, 26))


@PROPS
@given(st.lists(fast_path_edges, min_size=1, max_size=50))
def test_mantissas_and_powers_at_the_fast_path_edges_match_float_and_numpy(fields):
    _same_as_float(fields)
    values, _, _ = _parse("\n".join(f"{f} 1" for f in fields) + "\n", 2)
    assert (_bits(values[:, 0]) == _bits(np.array(fields, dtype=np.float64))).all()


@pytest.mark.parametrize("field", [
    "9007199254740991e22", "9007199254740992e22", "9007199254740993e22", "9007199254740991e-22",
    "9007199254740992e-22", "9007199254740993e-22", "1e22", "1e-22", "1e23", "1e-23", "9999999999999999999e-22",
    "10000000000000000000e-23", "0000000000000000000000001e22", "4503599627370497.5", "4503599627370496.5"])
def test_exact_path_boundaries_match_float(field):
    _same_as_float([field])


@st.composite
def digit_shapes(draw):
    """A number of every shape the digit loops meet: 0-21 integer and 0-21 fraction digits (both sides of 8, 16
    and 19), leading zeros, a sign, an exponent of 1-4 digits (leading zeros too) or none, D exponents."""
    n_int, n_frac = draw(st.integers(0, 21)), draw(st.integers(0, 21))
    if n_int + n_frac == 0:
        n_int = 1
    digits = draw(st.text("0123456789", min_size=n_int + n_frac, max_size=n_int + n_frac))
    zeros = draw(st.sampled_from(["", "", "0", "00000000"]))
    text = zeros + digits[:n_int] + ("." + digits[n_int:] if n_frac or draw(st.booleans()) else "")
    exp = draw(st.one_of(st.just(""), st.builds(lambda e, s, d: e + s + d, st.sampled_from("eEdD"),
                                                st.sampled_from(["", "+", "-"]),
                                                st.text("0123456789", min_size=1, max_size=4))))
    return draw(st.sampled_from(["", "-", "+"])) + text + exp


@PROPS
@given(st.lists(st.tuples(digit_shapes(), digit_shapes(), digit_shapes()), min_size=1, max_size=40),
       st.lists(st.sampled_from([" ", "\t", ",", ";", " , ", "\t "]), min_size=2, max_size=2),
       st.sampled_from(["\n", "\r\n"]))
def test_every_digit_shape_in_mixed_separators_and_line_ends_matches_float(rows, seps, end):
    """Each row written with its own separators (mixed in a row) and LF or CRLF line ends: every field parses to
    float()'s double of its text."""
    text = end.join(f"{a}{seps[0]}{b}{seps[1]}{c}" for a, b, c in rows) + end
    values, counts, skipped = _parse(text)
    assert skipped == 0 and (counts == 3).all()
    want = [[float(f.replace("d", "e").replace("D", "e")) for f in row] for row in rows]
    assert (_bits(values) == _bits(want)).all()


@PROPS
@given(digit_shapes(), st.sampled_from(["x", "e", "e+", ".5", "-", "..", "1e5e", "abc", "#", "%", "/"]))
def test_a_number_with_trailing_junk_is_no_number(field, junk):
    """A field is a number only up to a separator: anything glued to it ends the row there (a line with fewer
    than two numbers before it is skipped and counted; a third field leaves the two numbers before it)."""
    if junk == ".5" and not any(c in field for c in ".eEdD"):
        junk = "x"  # "12" + ".5" would be a number again ("1.2.5" and "1e2.5" are not)
    if junk in ("e", "e+") and any(c in field for c in "eEdD"):
        junk = "x"
    bad = field + junk
    values, counts, skipped = _parse(f"{bad} 1 2\n5 {bad} 6\n7 8 {bad}\n", 3)
    assert skipped == 2
    assert _bits(values[:, :2]).tolist() == _bits([[7.0, 8.0]]).tolist()
    assert counts.tolist() == [2] and np.isnan(values[0, 2])


@pytest.mark.parametrize("sign", ["", "-", "+"])
@pytest.mark.parametrize("field", ["12345678", "123456789", "1234567.8", "12345678.9", "0.12345678", "1234567890123456",
                                   "12345678901234567", "1234567890123456789", "12345678901234567890", "9007199254740993",
                                   "0.0117213", "4600.63", "1e22", "1e23", "0", "0e400", "0.000e-500"])
def test_signed_fields_at_digit_boundaries_match_float(field, sign):
    _same_as_float([sign + field])


@PROPS
@given(st.lists(st.binary(max_size=300) | st.text(alphabet="0123456789.-+eE \t,;\n#%nai", max_size=300).map(str.encode),
                max_size=12), st.integers(2, 4))
def test_parse_tables_is_parse_table_of_each_text(texts, cols):
    got = parse_tables(texts, cols)
    assert len(got) == len(texts)
    for text, (values, counts, skipped) in zip(texts, got):
        want = parse_table(np.frombuffer(text, dtype=np.uint8), cols)
        assert values.tobytes() == want[0].tobytes() and values.shape == want[0].shape
        assert counts.tolist() == want[1].tolist() and skipped == want[2]


def test_parse_tables_takes_bytes_only_and_checks_the_column_count():
    with pytest.raises(TypeError, match="bytearray"):
        parse_tables([b"1 2\n", bytearray(b"1 2\n")])
    with pytest.raises(ValueError, match="max_cols"):
        parse_tables([b"1 2\n"], 1)
    assert parse_tables([]) == []


def test_parse_tables_columns_outlive_the_call():
    """The arrays own memory the parser allocated: a column kept after everything else of its call is gone
    still holds its numbers while other tables are parsed (the memory is neither freed early nor reused)."""
    import gc

    text = "".join(f"{4000 + k} {k * 0.25}\n" for k in range(500)).encode()
    column = parse_tables([text, text])[1][0][:, 1]
    gc.collect()
    for _ in range(50):
        parse_tables([text.replace(b" ", b"  ")] * 4)
    assert column.tolist() == [k * 0.25 for k in range(500)]
    assert column.base is not None and column.flags.writeable
