"""Submits the batch store must survive: JSON it cannot hold as given (found by schemathesis: integers beyond 64
bits, lone surrogates in names) is the item's problem, never a 500; a refused submit never touches another
batch's archive."""
from __future__ import annotations

import msgpack
import pytest

from asgi_support import anyio_backend, client, make_app, make_zip, spectrum_bytes  # noqa: F401
from astrodash_asgi.jobs import inputs

pytestmark = pytest.mark.anyio


async def test_huge_integers_and_lone_surrogates_are_stored_not_a_500(tmp_path):
    body = ('{"data": [{"input": {"wave": [1, 2], "flux": [-30766123113433956352, 2]}, "name": "a\\udc00b",'
            ' "request_id": "\\ud800"}, {"input": 1e999999}]}').replace("1e999999", "123456789012345678901234567890")
    app = make_app(tmp_path, rate_limit_enabled=False)
    async with client(app) as c:
        r = await c.post("/api/batch-processor/submit", content=body.encode(),
                         headers={"content-type": "application/json"})
    await app.state.astrodash.shutdown()
    assert r.status_code == 202, r.text
    assert r.json()["request_count"] == 2


def test_packable_inputs_keep_everything_msgpack_can_hold():
    value = {"wave": [1, 2 ** 64, -2 ** 63 - 1, 2 ** 63, True], "name": "x\udc00"}
    got = msgpack.unpackb(inputs.array_input(value), raw=False)["arrays"]
    assert got["wave"] == [1, float(2 ** 64), float(-2 ** 63 - 1), 2 ** 63, True] and got["name"] == "x?"
    assert inputs.text("ok é") == "ok é"


async def test_a_submit_refused_for_a_taken_batch_id_leaves_that_batch_its_archive(tmp_path):
    import os

    app = make_app(tmp_path, rate_limit_enabled=False)  # no lifespan, no request that starts the engine: it stays queued
    store = app.state.astrodash.engine.store
    async with client(app) as c:
        first = await c.post("/api/batch-processor/submit", data={"batch_id": "night"},
                             files={"zip_file": ("a.zip", make_zip({"a.dat": spectrum_bytes(0.01)}))})
        kept = store.get_batch("night")["archive"]
        content = open(kept, "rb").read()
        second = await c.post("/api/batch-processor/submit", data={"batch_id": "night"},
                              files={"zip_file": ("b.zip", make_zip({"b.dat": spectrum_bytes(0.02)}))})
    await app.state.astrodash.shutdown()
    assert first.status_code == 202 and second.status_code == 409
    assert store.get_batch("night")["archive"] == kept and open(kept, "rb").read() == content
    assert sorted(f for f in os.listdir(os.path.dirname(kept)) if f.endswith(".zip")) == [os.path.basename(kept)]
