"""JSON and msgpack encoding of answers (``negotiation.encode``): the same values as the json module gives, for the
floats that are written differently (shortest exact form), non-string keys and types orjson refuses."""
import json
import math
import struct

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from astrodash_asgi.classification import encode_pairs
from astrodash_asgi.negotiation import JSON, MSGPACK, encode

TRICKY = [0.0, -0.0, 1e-5, 1.5e-7, 1e16, 1e21, 1e22, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3,
          -1.0126565030077472e-05, 123456789012345678.0, 2.0 ** 53 + 2]


def _same(a, b) -> bool:
    """Equal values, floats bit for bit (so -0.0 is not 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_floats_read_back_bit_for_bit_and_compactly():
    data = {"spectrum": {"x": TRICKY, "y": [-v for v in TRICKY]}, "name": "é ü", "n": 3, "ok": True, "none": None}
    body, media = encode(data, False)
    assert media == JSON
    assert _same(json.loads(body), data)
    assert b" " not in body.replace("é ü".encode(), b"")  # compact separators, UTF-8 not escaped
    assert "é ü".encode() in body


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=50))
def test_any_finite_float_reads_back_exactly(values):
    assert _same(json.loads(encode({"v": values}, False)[0]), {"v": values})


def test_what_orjson_refuses_is_written_by_the_json_module():
    data = {"big": 2 ** 70, 1: "int key", "f": np.float64(0.25)}
    body, _ = encode(data, False)
    assert json.loads(body) == {"big": 2 ** 70, "1": "int key", "f": 0.25}


def test_non_finite_floats_are_null():
    assert json.loads(encode({"a": math.nan, "b": [math.inf]}, False)[0]) == {"a": None, "b": [None]}


def test_msgpack_when_asked():
    body, media = encode({"x": TRICKY}, True)
    assert media == MSGPACK and _same(msgpack.unpackb(body), {"x": TRICKY})


def test_batch_pairs_join_into_one_object_in_order():
    first = encode_pairs({"a.dat": {"z": 1e-7}, "b.dat": {"error": "bad"}}, True, False)
    rest = encode_pairs({"c.dat": {"z": 0.5}}, False, False)
    assert rest.startswith(b",")
    parsed = json.loads(b"{" + first + rest + b"}")
    assert list(parsed) == ["a.dat", "b.dat", "c.dat"] and parsed["a.dat"]["z"] == 1e-7
    assert encode_pairs({}, False, False) == b""


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=0, max_size=60),
       st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=0, max_size=60))
def test_arrays_are_written_as_the_lists_of_their_values(xs, ys):
    """A payload's spectrum as float64 arrays (``arrays=True``) is the same JSON text as the lists, from orjson
    and from the json module (where orjson refuses the document)."""
    from astrodash_asgi import negotiation

    x64, y64 = np.asarray(xs, dtype=np.float64), np.asarray(np.float32(ys), dtype=np.float64)
    lists = {"spectrum": {"x": x64.tolist(), "y": y64.tolist(), "redshift": 0.1}, "k": [1, 2]}
    arrays = {"spectrum": {"x": x64, "y": y64, "redshift": 0.1}, "k": [1, 2]}
    assert encode(arrays, False)[0] == encode(lists, False)[0]
    assert negotiation._json_module(arrays) == negotiation._json_module(lists)
    assert json.loads(negotiation._json_module(arrays)) == json.loads(encode(lists, False)[0])


def test_a_payload_with_arrays_encodes_as_the_payload_with_lists():
    """Real classifications, with the real spectra they carry: the same bytes either way; the dict itself keeps
    lists unless asked (msgpack cannot write arrays)."""
    from astrodash_asgi.common import payload
    from astrodash_core.classify import Classifier
    from astrodash_core.reading import read_spectrum
    from conftest import SHARED_DATA

    files = sorted((SHARED_DATA / "templates" / "superfit" / "sne" / "Ia").glob("*.dat"))[:6]
    specs = [read_spectrum(f) for f in files]
    results = Classifier().classify(specs, [0.02] * len(specs), include_spectrum=True, rlap=False)
    for r in results:
        plain, fast = payload(r, "dash", None), payload(r, "dash", None, arrays=True)
        assert isinstance(plain["spectrum"]["x"], list) and isinstance(fast["spectrum"]["y"], np.ndarray)
        assert encode(fast, False)[0] == encode(plain, False)[0]
        assert msgpack.unpackb(encode(plain, True)[0]) == json.loads(encode(fast, False)[0])
