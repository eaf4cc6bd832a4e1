"""Inflating model upload (a script, not a test): ``python benchmarks/bench_hostile_upload.py``.

Builds an ``.npz`` whose one weight member holds ``--floats`` float32 zeros (10^9 by default: 4 GB
uncompressed, about 4 MB deflated) next to a valid model's metadata, starts ``astrodash serve`` on
127.0.0.1 and posts it to ``/api/v1/upload-model``.  Reports the status, the seconds to the answer and the
server's resident memory before and after (``VmRSS``) and its peak (``VmHWM``) from ``/proc``.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile

import httpx
import numpy as np

from astrodash_asgi.process import ServerProcess


def inflating_npz(n_floats: int, meta: dict) -> bytes:
    """An archive with valid metadata and a ``w:0.weight`` member of ``n_floats`` float32 zeros."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (n_floats,)})
    meta_npy = io.BytesIO()
    np.lib.format.write_array(meta_npy, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("meta.npy", meta_npy.getvalue())
        info = zipfile.ZipInfo("w:0.weight.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as fh:
            fh.write(head.getvalue())
            zeros = bytes(64 * 1024 * 1024)
            left = n_floats * 4
            while left > 0:
                n = min(left, len(zeros))
                fh.write(zeros[:n])
                left -= n
    return buf.getvalue()


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--floats", type=int, default=10 ** 9, help="float32 zeros in the weight member")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from astrodash_core.models import default_model

    t0 = time.perf_counter()
    data = inflating_npz(args.floats, default_model("known-z").meta())
    built = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        with ServerProcess(tmp, {"ASTRODASH_RATE_LIMIT_ENABLED": "0"}) as server:
            with httpx.Client(base_url=server.base, timeout=600) as c:
                c.get("/health")
                before = memory_kb(server.proc.pid)
                t0 = time.perf_counter()
                r = c.post("/api/v1/upload-model", files={"file": ("inflating.npz", data)})
                seconds = time.perf_counter() - t0
                after = memory_kb(server.proc.pid)
    report = {"upload_bytes": len(data), "unpacked_bytes": args.floats * 4, "build_s": round(built, 1),
              "status": r.status_code, "detail": r.json().get("detail"), "seconds": round(seconds, 3),
              "rss_before_mb": before["VmRSS"] / 1024, "rss_after_mb": after["VmRSS"] / 1024,
              "peak_growth_mb": (after["VmHWM"] - before["VmHWM"]) / 1024,
              "rss_growth_mb": (after["VmRSS"] - before["VmRSS"]) / 1024}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"upload-model, {report['upload_bytes'] / 1e6:.1f} MB archive inflating to "
              f"{report['unpacked_bytes'] / 1e9:.1f} GB: {report['status']} in {report['seconds']:.3f} s")
        print(f"  detail: {report['detail']}")
        print(f"  server RSS {report['rss_before_mb']:.0f} MB -> {report['rss_after_mb']:.0f} MB "
              f"(growth {report['rss_growth_mb']:.1f} MB; peak grew {report['peak_growth_mb']:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
