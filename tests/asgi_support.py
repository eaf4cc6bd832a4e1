"""Shared helpers of the HTTP API tests: a small random-weight model, an app around it, a client."""
from __future__ import annotations

import io
import os
import json
import zipfile

import httpx
import numpy as np

from astrodash_asgi import Settings, create_app
from astrodash_core.classify import Classifier
from conftest import SHARED_DATA
from test_models import make_model

SUPERFIT = SHARED_DATA / "templates" / "superfit" / "sne"
SPECTRUM_FILE = SUPERFIT / "Ia" / "sn1981b.max.dat"
MB = 1024 * 1024

_MODEL = None


def random_model():
    global _MODEL
    if _MODEL is None:
        _MODEL = make_model()
    return _MODEL


def spectrum_bytes(z_comment: float | None = None) -> bytes:
    """A readable spectrum covering the model grid (a synthetic one when the superfit files are absent)."""
    if SPECTRUM_FILE.exists():
        data = SPECTRUM_FILE.read_bytes()
    else:
        wave = np.linspace(3200, 9800, 1500)
        data = "\n".join(f"{w:.2f} {1 + 0.2 * np.sin(w / 250):.5f}" for w in wave).encode()
    if z_comment is not None:
        data = f"# redshift: {z_comment}\n".encode() + data
    return data


def make_app(tmp_path, classifier=None, **settings):
    settings.setdefault("storage_url", f"sqlite:///{tmp_path}/store/models.db")
    settings.setdefault("warmup", False)
    m = random_model()
    return create_app(Settings(**settings), classifier or Classifier(model=m, agnostic_model=m))


def client(app, peer=("127.0.0.1", 50000), base="http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=peer), base_url=base, timeout=60)


def params(**kw) -> dict:
    return {"params": json.dumps(kw)}


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def multipart_stream(parts, boundary="astrodashtestboundary", chunk=1 * MB, consumed=None):
    """An async multipart body: parts are (field, filename or None, size or bytes); big contents are
    generated chunk by chunk, and ``consumed[0]`` counts the bytes the server pulled."""
    consumed = consumed if consumed is not None else [0]

    async def gen():
        for field, filename, content in parts:
            disp = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
            head = f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode()
            consumed[0] += len(head)
            yield head
            if isinstance(content, bytes):
                consumed[0] += len(content)
                yield content
            else:
                left = content
                while left > 0:
                    n = min(chunk, left)
                    left -= n
                    consumed[0] += n
                    yield b"7" * n
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return gen(), {"content-type": f"multipart/form-data; boundary={boundary}"}


import pytest  # noqa: E402


@pytest.fixture
def anyio_backend():
    return "asyncio"


def worker_processes(server) -> list[int]:
    """A real server's worker processes (its children other than multiprocessing's tracker): classification and
    batch workers."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == server.proc.pid and b"resource_tracker" not in cmd:
            out.append(int(pid))
    return out
