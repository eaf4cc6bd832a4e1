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
