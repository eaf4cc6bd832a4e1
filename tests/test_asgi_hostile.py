"""Hostile structure is a 4xx naming the problem: JSON depth and size limits on every JSON input, model
metadata of any type, model archives checked before they are unpacked (never a 500)."""
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from anyio.from_thread import start_blocking_portal

from asgi_support import client, make_app, random_model, spectrum_bytes
from astrodash_asgi.errors import ApiError
from astrodash_asgi.params import parse_params
from astrodash_core import jsonlimits
from astrodash_core.errors import ModelFileError
from astrodash_core.models import MAX_UNPACKED_BYTES, Model

DEEP = "[" * 5000 + "]" * 5000
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
PARAM_FIELDS = ("smoothing", "knownZ", "zValue", "minWave", "maxWave", "calculateRlap", "modelType", "oscRef")
META_KEYS = ("format", "arch", "labels", "grid", "preprocessing", "variant", "provenance", "name", "members",
             "arch.0", "arch.0.in", "arch.0.k", "arch.0.pool", "arch.2.relu", "arch.3.out", "grid.nw", "grid.w0",
             "preprocessing.grid", "preprocessing.taper", "preprocessing.version", "preprocessing.smoothing")


# --- bounded JSON ---------------------------------------------------------------------------------------------
def test_bounded_json_depth_and_size():
    assert jsonlimits.depth({"a": [1, {"b": []}]}) == 4 and jsonlimits.depth(5) == 0
    assert jsonlimits.loads('{"a": [[1]]}', max_depth=3) == {"a": [[1]]}
    with pytest.raises(jsonlimits.JSONLimitError, match="deeper than 2"):
        jsonlimits.loads('{"a": [[1]]}', max_depth=2)
    with pytest.raises(jsonlimits.JSONLimitError, match="deeper than 32"):
        jsonlimits.loads(DEEP)                      # json.loads itself would recurse: still a clear error
    with pytest.raises(jsonlimits.JSONLimitError, match="at most 10 "):
        jsonlimits.loads('"' + "x" * 20 + '"', max_bytes=10)
    with pytest.raises(jsonlimits.JSONLimitError, match="NaN"):
        jsonlimits.loads('{"zValue": NaN}')


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(PARAM_FIELDS), value=JSON_VALUES, model_id=st.sampled_from([None, "abc"]))
def test_any_json_value_in_any_params_field_is_accepted_or_422_naming_it(field, value, model_id):
    try:
        opts = parse_params(json.dumps({field: value}), model_id)
    except ApiError as exc:
        assert exc.status_code == 422
        assert exc.extra["field"] in (field, "params", "zValue", "model_id", "maxWave")
        return
    assert opts.smoothing >= 0 and opts.model_type in ("dash", "user_uploaded")


@pytest.mark.parametrize("raw", [DEEP, '{"a":' * 40 + "1" + "}" * 40, "5", "[1]", '"x"', "{" * 3])
def test_params_not_an_object_or_too_deep_is_422(raw):
    with pytest.raises(ApiError) as info:
        parse_params(raw)
    assert info.value.status_code == 422 and info.value.extra["field"] == "params"


# --- model metadata --------------------------------------------------------------------------------------------
def _weights_zip_members() -> dict[str, bytes]:
    model = random_model()
    with zipfile.ZipFile(io.BytesIO(model.to_bytes())) as z:
        return {n: z.read(n) for n in z.namelist() if n != "meta.npy"}


_MEMBERS = None
_MODEL_BYTES = []


def good_model_bytes() -> bytes:
    if not _MODEL_BYTES:
        _MODEL_BYTES.append(random_model().to_bytes())
    return _MODEL_BYTES[0]


def model_bytes(meta: dict | bytes, members: dict[str, bytes] | None = None) -> bytes:
    """A model archive with ``meta`` (a dict, or raw JSON bytes) and the random model's weights."""
    global _MEMBERS
    if _MEMBERS is None:
        _MEMBERS = _weights_zip_members()
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(raw, dtype=np.uint8))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("meta.npy", buf.getvalue())
        for n, data in (_MEMBERS if members is None else members).items():
            z.writestr(n, data)
    return out.getvalue()


def _set(meta: dict, path: str, value) -> dict:
    meta = json.loads(json.dumps(meta))
    *parents, last = path.split(".")
    node = meta
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return meta


def test_model_archive_round_trip_through_the_checked_reader():
    m = random_model()
    back = Model.from_bytes(model_bytes(m.meta()))
    assert back.labels == m.labels and set(back.weights) == set(m.weights)
    for k in m.weights:
        np.testing.assert_array_equal(back.weights[k], m.weights[k])


@pytest.mark.parametrize("key,value,names", [
    ("arch", [1, 2], "arch"), ("labels", 5, "labels"), ("labels", [[1], [2]], "labels"),
    ("preprocessing.grid", 5, "preprocessing"), ("grid", "big", "grid"), ("members", True, "members"),
    ("arch.0.k", "9", "arch"), ("arch.0.pool", 0, "arch"), ("grid.nw", 10 ** 12, "grid"),
    ("provenance", [1], "provenance"), ("name", {"a": 1}, "name"), ("variant", [1], "variant")])
def test_malformed_metadata_is_a_model_file_error_naming_the_key(key, value, names):
    bad = _set(random_model().meta(), key, value)
    with pytest.raises(ModelFileError, match=names):
        Model.from_bytes(model_bytes(bad), "m.npz")


def test_deep_metadata_is_refused_before_it_is_used():
    with pytest.raises(ModelFileError, match="deeper than"):
        Model.from_bytes(model_bytes(DEEP.encode()), "m.npz")
    meta = random_model().meta()
    meta["provenance"] = json.loads('{"a":' * 40 + "1" + "}" * 40)
    with pytest.raises(ModelFileError, match="deeper than"):
        Model.from_bytes(model_bytes(meta), "m.npz")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(META_KEYS), value=JSON_VALUES)
def test_any_json_value_at_any_metadata_key_loads_or_is_a_model_file_error(key, value):
    meta = _set(random_model().meta(), key, value)
    try:
        Model.from_bytes(model_bytes(meta), "m.npz")
    except ModelFileError as exc:
        assert str(exc).startswith("m.npz") or "m.npz" in str(exc) or "model" in str(exc)


# --- archives checked before they are unpacked ------------------------------------------------------------------
def _npy_header(dtype: str, shape: tuple) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_weight_headers_are_checked_before_their_data_is_read():
    members = dict(_weights_zip_members())
    # a header claiming 10^9 floats over 100 bytes of data: refused from the header, nothing allocated
    members["w:0.weight.npy"] = _npy_header("<f4", (10 ** 9,)) + b"\0" * 100
    with pytest.raises(ModelFileError, match=r"shape \(1000000000,\)"):
        Model.from_bytes(model_bytes(random_model().meta(), members), "m.npz")
    members["w:0.weight.npy"] = _npy_header("<i4", (16, 1, 9)) + b"\0" * (16 * 9 * 4)
    with pytest.raises(ModelFileError, match="floating point"):
        Model.from_bytes(model_bytes(random_model().meta(), members), "m.npz")
    members["w:0.weight.npy"] = _npy_header("<f4", (16, 1, 9)) + b"\0" * 10
    with pytest.raises(ModelFileError, match="declares 576 bytes in a 138-byte member"):
        Model.from_bytes(model_bytes(random_model().meta(), members), "m.npz")
    members = dict(_weights_zip_members())
    members["w:9.weight.npy"] = _npy_header("<f4", (2,)) + b"\0" * 8
    with pytest.raises(ModelFileError, match="unexpected array 'w:9.weight'"):
        Model.from_bytes(model_bytes(random_model().meta(), members), "m.npz")
    members = dict(_weights_zip_members())
    members["notes.txt"] = b"hello"
    with pytest.raises(ModelFileError, match="unexpected member 'notes.txt'"):
        Model.from_bytes(model_bytes(random_model().meta(), members), "m.npz")


def test_an_inflating_archive_is_refused_from_its_directory_without_inflating():
    """A member that inflates to more than MAX_UNPACKED_BYTES (zeros compress 1000-fold) is refused from the
    zip directory; the peak Python allocation stays far below what inflating it would take."""
    n = MAX_UNPACKED_BYTES // 4 + 1024
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("meta.npy", _npy_header("|u1", (2,)) + b"{}")
        info = zipfile.ZipInfo("w:0.weight.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as fh:
            fh.write(_npy_header("<f4", (n,)))
            zeros = bytes(16 * 1024 * 1024)
            left = n * 4
            while left > 0:
                fh.write(zeros[:min(left, len(zeros))])
                left -= len(zeros)
    data = buf.getvalue()
    assert len(data) < MAX_UNPACKED_BYTES // 100
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="unpack to"):
            Model.from_bytes(data, "bomb.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


# --- over HTTP: every JSON input, no 500 ---------------------------------------------------------------------
class _Blocking:
    """Synchronous calls into an in-process httpx client of the app (hypothesis drives sync tests)."""

    def __init__(self, portal, c):
        self.portal, self.c = portal, c

    def post(self, url, **kw):
        return self.portal.call(lambda: self.c.post(url, **kw))

    def put(self, url, **kw):
        return self.portal.call(lambda: self.c.put(url, **kw))


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("hostile"), rate_limit_enabled=False)
    with start_blocking_portal("asyncio") as portal:
        c = client(app)
        yield _Blocking(portal, c)
        portal.call(c.aclose)


def test_deep_json_everywhere_is_422_naming_the_field(http):
    spec = spectrum_bytes()
    r1 = http.post("/api/v1/process", files={"file": ("a.dat", spec)}, data={"params": DEEP})
    r2 = http.post("/api/v1/batch-process", files={"files": ("a.dat", spec)}, data={"params": DEEP})
    model = good_model_bytes()
    r3 = http.post("/api/v1/upload-model", files={"file": ("m.npz", model)}, data={"class_mapping": DEEP})
    r4 = http.post("/api/v1/upload-model", files={"file": ("m.npz", model)}, data={"input_shape": DEEP})
    up = http.post("/api/v1/upload-model", files={"file": ("m.npz", model)})
    r5 = http.put(f"/api/v1/models/{up.json()['model_id']}", content=DEEP,
                  headers={"content-type": "application/json"})
    big = json.dumps({"smoothing": 0, "pad": "x" * 70_000})
    r6 = http.post("/api/v1/process", files={"file": ("a.dat", spec)}, data={"params": big})
    for r, field in ((r1, "params"), (r2, "params"), (r3, "class_mapping"), (r4, "input_shape"), (r5, "body"),
                     (r6, "params")):
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field and r.json()["detail"].startswith(field + ":")
    assert "deeper than 32" in r1.json()["detail"] and "65536" in r6.json()["detail"]


@pytest.mark.parametrize("shape", ["5", "true", '"x"', "[]", "[[1], 5]", '{"a": 1}', "[1, 1024.5]"])
def test_odd_input_shapes_are_422(http, shape):
    r = http.post("/api/v1/upload-model", files={"file": ("m.npz", good_model_bytes())},
                  data={"input_shape": shape})
    assert r.status_code == 422 and r.json()["field"] == "input_shape", r.text


@pytest.mark.parametrize("key,value", [("arch", [1, 2]), ("labels", 5), ("labels", [[1], [2]]),
                                       ("preprocessing.grid", 5)])
def test_malformed_metadata_upload_is_400_naming_the_key(http, key, value):
    data = model_bytes(_set(random_model().meta(), key, value))
    r = http.post("/api/v1/upload-model", files={"file": ("m.npz", data)})
    assert r.status_code == 400 and key.split(".")[0] in r.json()["detail"], r.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["params", "class_mapping", "input_shape", "body", "meta"]),
       key=st.sampled_from(PARAM_FIELDS + META_KEYS), value=JSON_VALUES)
def test_any_json_anywhere_over_http_is_never_a_500(http, where, key, value):
    if where == "params":
        r = http.post("/api/v1/process", files={"file": ("a.dat", spectrum_bytes())},
                      data={"params": json.dumps({key: value})})
    elif where in ("class_mapping", "input_shape"):
        r = http.post("/api/v1/upload-model", files={"file": ("m.npz", good_model_bytes())},
                      data={where: json.dumps(value)})
    elif where == "body":
        r = http.put("/api/v1/models/0123abcd", content=json.dumps({key: value}),
                     headers={"content-type": "application/json"})
    else:
        try:
            meta = _set(random_model().meta(), key, value)
        except (KeyError, IndexError, TypeError, ValueError):
            meta = {key: value}
        r = http.post("/api/v1/upload-model", files={"file": ("m.npz", model_bytes(meta))})
    assert r.status_code < 500, r.text


# --- contract details the schema checks found -------------------------------------------------------------------
def test_405_on_a_model_lists_every_method_and_empty_redshift_is_422(http):
    for method in ("PATCH", "OPTIONS", "POST"):
        r = http.portal.call(lambda m=method: http.c.request(m, "/api/v1/models/0123abcd"))
        assert r.status_code == 405
        assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PUT", "DELETE"}
    get = lambda q: http.portal.call(lambda: http.c.get("/api/v1/line-list/filter", params=q))  # noqa: E731
    empty = get({"min_wavelength": 4000, "max_wavelength": 7000, "redshift": ""})
    absent = get({"min_wavelength": 4000, "max_wavelength": 7000})
    zero = get({"min_wavelength": 4000, "max_wavelength": 7000, "redshift": "0"})
    assert empty.status_code == 422 and empty.json()["field"] == "redshift"
    assert absent.status_code == 200 and absent.json() == zero.json()


def test_unsafe_zip_entry_names_are_per_file_errors(http):
    import zipfile as zf

    good = spectrum_bytes()
    buf = io.BytesIO()
    with zf.ZipFile(buf, "w") as z:
        for name in ("ok.dat", "../../etc/x.dat", "..\\..\\win\\x.dat", "/abs/x.dat", "C:/x.dat", "a/../b.dat",
                     "fine/..dots.dat"):
            z.writestr(name, good)
    r = http.post("/api/v1/batch-process", files={"zip_file": ("s.zip", buf.getvalue())},
                  data={"params": json.dumps({"knownZ": True, "zValue": 0.01})})
    assert r.status_code == 200, r.text
    out = r.json()
    assert list(out) == ["ok.dat", "../../etc/x.dat", "..\\..\\win\\x.dat", "/abs/x.dat", "C:/x.dat",
                         "a/../b.dat"]                      # "..dots.dat" is a dot-file: skipped as before
    assert "classification" in out["ok.dat"]
    for name in ("../../etc/x.dat", "a/../b.dat"):
        assert out[name] == {"error": "unsafe entry name (a '..' component)"}
    assert out["..\\..\\win\\x.dat"]["error"].startswith("unsafe entry name (backslash")
    assert out["/abs/x.dat"]["error"] == out["C:/x.dat"]["error"] == "unsafe entry name (absolute path)"



def test_a_damaged_zip_member_is_its_own_error_and_the_rest_are_classified(http):
    """A member whose directory understates its size (a zip bomb's trick) or whose CRC-32 is wrong gets a per-file
    error naming it; the files around it are classified as if it were not there."""
    import struct

    from asgi_support import make_zip

    good = spectrum_bytes()
    blob = bytearray(make_zip({"a.dat": good, "bomb.dat": b"0" * 3_000_000, "crc.dat": good, "b.dat": good}))
    records = [i for i in range(len(blob)) if blob[i:i + 4] == b"PK\x01\x02"]
    struct.pack_into("<I", blob, records[1] + 24, 4096)  # bomb.dat declares 4 kB
    struct.pack_into("<I", blob, records[2] + 16, 12345)  # crc.dat declares another CRC-32
    form = {"params": json.dumps({"knownZ": True, "zValue": 0.01})}
    r = http.post("/api/v1/batch-process", files={"zip_file": ("z.zip", bytes(blob))}, data=form)
    clean = http.post("/api/v1/batch-process", files={"zip_file": ("c.zip", make_zip({"a.dat": good, "b.dat": good}))},
                      data=form)
    assert r.status_code == clean.status_code == 200, r.text
    out = r.json()
    assert list(out) == ["a.dat", "bomb.dat", "crc.dat", "b.dat"]
    assert out["bomb.dat"] == {"error": "cannot be extracted (inflates beyond its declared size)"}
    assert out["crc.dat"] == {"error": "cannot be extracted (bad CRC-32)"}
    assert {k: out[k] for k in ("a.dat", "b.dat")} == clean.json()

# --- streamed batches -------------------------------------------------------------------------------------------
def test_a_batch_streams_in_chunks_and_equals_one_classification_of_all(http, monkeypatch):
    import msgpack

    from astrodash_asgi import batch
    from asgi_support import make_zip
    from astrodash_core.classify import Classifier
    from astrodash_core.reading import read_spectrum

    monkeypatch.setattr(batch, "CHUNK", 3)      # 8 entries: chunks of 3, 3, 2
    good = spectrum_bytes()
    entries = {f"s{i}.dat": good for i in range(7)}
    entries["bad.dat"] = b"nonsense"
    archive = make_zip(entries)
    form = {"params": json.dumps({"knownZ": True, "zValue": 0.02})}
    r = http.post("/api/v1/batch-process", files={"zip_file": ("z.zip", archive)}, data=form)
    m = http.portal.call(lambda: http.c.post("/api/v1/batch-process", files={"zip_file": ("z.zip", archive)},
                                             data=form, headers={"accept": "application/msgpack"}))
    assert r.status_code == 200 and "content-length" not in r.headers     # streamed (chunked)
    out = r.json()
    assert list(out) == list(entries) and "bad.dat" in out["bad.dat"]["error"]
    assert msgpack.unpackb(m.content, raw=False) == out
    m = random_model()
    ref = Classifier(model=m, agnostic_model=m).classify([read_spectrum(good, filename="s0.dat")], [0.02],
                                                         top_n=5, include_spectrum=True, rlap=False)[0]
    for i in range(7):
        got = out[f"s{i}.dat"]["classification"]["best_matches"]
        assert [g["type"] for g in got] == [x.type for x in ref.matches]
        assert [g["probability"] for g in got] == pytest.approx([x.probability for x in ref.matches], rel=1e-5)


def test_metadata_may_carry_nan_in_provenance_but_not_in_numbers_that_are_used():
    meta = random_model().meta()
    meta["provenance"] = {"val_loss": float("nan")}        # json.dumps writes NaN; training can produce it
    assert Model.from_bytes(model_bytes(meta), "m.npz").provenance["val_loss"] != 0
    with pytest.raises(ModelFileError, match="preprocessing"):
        Model.from_bytes(model_bytes(_set(random_model().meta(), "preprocessing.taper", float("nan"))), "m.npz")
    with pytest.raises(ModelFileError, match="grid"):
        Model.from_bytes(model_bytes(_set(random_model().meta(), "grid.w0", float("inf"))), "m.npz")
