"""JSON that the batch store cannot hold as given (found by schemathesis): integers beyond 64 bits and lone
surrogates in names are the item's problem, never a 500."""
from __future__ import annotations

import msgpack
import pytest

from asgi_support import anyio_backend, client, make_app  # noqa: F401
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
