"""A model file's ``.npz`` archive read with every size checked before it is inflated.

The order is: the zip directory (member names, count, declared uncompressed sizes against
:data:`MAX_UNPACKED_BYTES`); the metadata member (a ``uint8`` vector of at most
:data:`MAX_META_BYTES`, read as bounded JSON); the caller's expected weight shapes from
that metadata; each weight member's ``.npy`` header (float dtype, the expected shape, a declared size that
matches); and only then the weights themselves.  A member's data is read from a stream that stops at its
declared size, so nothing larger than what was checked is ever held in memory.
"""
from __future__ import annotations

import io
import math
import zipfile
from typing import Callable

import numpy as np
from numpy.lib import format as npy

from . import jsonlimits
from .errors import ModelFileError

#: Largest total of a model file's arrays once unpacked (bytes): 64 networks of DASH's size fit 20 times over.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
#: Largest metadata document (bytes of JSON) and its deepest nesting.
MAX_META_BYTES = 1024 * 1024
MAX_META_DEPTH = 32

#: Weights whose name ends so are raw bytes (``uint8`` vectors: an ONNX graph), not floating-point tensors.
BYTES_SUFFIX = ".graph"

#: Largest ``.npy`` header read (numpy's own default bound).
MAX_HEADER_BYTES = 10_000


def _header(fh, member: str, name: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    try:
        version = npy.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # numpy raises ValueError/SyntaxError/EOFError on a broken header
        raise ModelFileError(f"{name}: array {member!r} has an unreadable header ({exc})") from None
    return dtype, tuple(shape), fortran


def _read_exact(fh, n: int, member: str, name: str) -> bytes:
    buf = fh.read(n)
    if len(buf) != n:
        raise ModelFileError(f"{name}: array {member!r} is truncated ({len(buf)} of {n} bytes)")
    return buf


def read_checked(data: bytes, name: str,
                 expected: Callable[[dict, str], dict[str, tuple[int, ...]]]) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, {weight name without ``w:``: float32 array}); ``expected(meta, name)`` gives the shape each
    ``w:`` member must have (it validates the metadata and raises ModelFileError)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(f"{name}: unreadable model archive ({exc})") from None
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        fname = info.filename
        if not fname.endswith(".npy") or info.is_dir():
            raise ModelFileError(f"{name}: unexpected member {fname!r} in model file")
        key = fname[:-4]
        if key in members:
            raise ModelFileError(f"{name}: member {fname!r} appears twice")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{name}: encrypted member {fname!r}")
        members[key] = info
    total = sum(i.file_size for i in infos)
    if total > MAX_UNPACKED_BYTES:
        raise ModelFileError(f"{name}: model arrays unpack to {total} bytes; at most {MAX_UNPACKED_BYTES} "
                             "are accepted")
    if "meta" not in members:
        raise ModelFileError(f"{name}: model file has no metadata")
    try:
        meta = _read_meta(zf, members.pop("meta"), name, MAX_META_BYTES, MAX_META_DEPTH)
        shapes = expected(meta, name)
        unknown = sorted(set(members) - set(shapes))
        if unknown:
            raise ModelFileError(f"{name}: unexpected array {unknown[0]!r} in model file")
        missing = sorted(set(shapes) - set(members))
        if missing:
            raise ModelFileError(f"{name}: model lacks weight {missing[0][2:]!r}")
        weights = {}
        for key, info in members.items():
            weights[key[2:]] = _read_weight(zf, info, key, shapes[key], name)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"{name}: unreadable model archive ({exc})") from None
    return meta, weights


def _read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, max_bytes: int, max_depth: int) -> dict:
    if info.file_size > max_bytes + MAX_HEADER_BYTES:
        raise ModelFileError(f"{name}: model metadata is {info.file_size} bytes; at most {max_bytes} are accepted")
    with zf.open(info) as fh:
        dtype, shape, _ = _header(fh, "meta", name)
        if dtype != np.uint8 or len(shape) != 1:
            raise ModelFileError(f"{name}: model metadata must be a uint8 vector, got {dtype} {shape}")
        if shape[0] > max_bytes:
            raise ModelFileError(f"{name}: model metadata is {shape[0]} bytes; at most {max_bytes} are accepted")
        raw = _read_exact(fh, shape[0], "meta", name)
    try:
        return jsonlimits.loads(raw, max_bytes=max_bytes, max_depth=max_depth, allow_nonfinite=True)
    except jsonlimits.JSONLimitError as exc:
        raise ModelFileError(f"{name}: model metadata is not usable: {exc}") from None


def _read_weight(zf, info, key: str, want: tuple[int, ...], name: str) -> np.ndarray:
    with zf.open(info) as fh:
        dtype, shape, fortran = _header(fh, key, name)
        raw_bytes = key.endswith(BYTES_SUFFIX)
        if raw_bytes and dtype != np.uint8:
            raise ModelFileError(f"{name}: weight {key[2:]!r} must be a uint8 byte vector, got {dtype}")
        if not raw_bytes and (dtype.kind != "f" or dtype.itemsize not in (2, 4, 8) or dtype.hasobject):
            raise ModelFileError(f"{name}: weight {key[2:]!r} must be floating point, got {dtype}")
        if shape != want:
            raise ModelFileError(f"{name}: weight {key[2:]!r} has shape {shape}, architecture needs {want}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes > info.file_size:
            raise ModelFileError(f"{name}: weight {key[2:]!r} declares {nbytes} bytes in a "
                                 f"{info.file_size}-byte member")
        raw = _read_exact(fh, nbytes, key, name)
    arr = np.frombuffer(raw, dtype=dtype, count=count)
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    return arr.copy() if raw_bytes else arr.astype(np.float32)
