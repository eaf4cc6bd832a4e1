"""Resumable uploads: an archive sent in chunks (out of order, overlapping, past its size, cut short, after a
restart of the client) ends byte-identical to the file, is checked by size and SHA-256, becomes a batch by id
whose results match the same archive sent whole; uploads expire, the disk they may hold is bounded, and they
belong to their API key."""
from __future__ import annotations

import hashlib
import os
import time
import zipfile

import pytest

from asgi_support import anyio_backend, client, make_app, make_zip, spectrum_bytes  # noqa: F401
from test_jobs_http import wait_done

pytestmark = pytest.mark.anyio
UP = "/api/v1/uploads"
JOBS = "/api/batch-processor"
USER_A, USER_B = "user-a-key-0123456789abcdef", "user-b-key-0123456789abcdef"


MEMBERS = {f"sn{k}.dat": spectrum_bytes(0.01 * (k + 1)) for k in range(3)}


def archive() -> bytes:
    return make_zip(MEMBERS, zipfile.ZIP_STORED)  # stored: each member is a third of it


async def patch(c, uid: str, data: bytes, start: int, total: int | str, **headers):
    end = start + len(data) - 1
    return await c.patch(f"{UP}/{uid}", content=data,
                         headers={"content-range": f"bytes {start}-{end}/{total}",
                                  "content-type": "application/offset+octet-stream", **headers})


async def test_chunks_resume_refuse_overlaps_and_become_a_batch_like_the_whole_archive(tmp_path):
    data = archive()
    n, third = len(data), len(data) // 3
    app = make_app(tmp_path, rate_limit_enabled=False, max_request_bytes=n // 2)  # the archive needs 2+ requests
    store = app.state.astrodash.engine.store
    async with client(app) as c:
        whole = await c.post(f"{JOBS}/submit", files={"zip_file": ("a.zip", data)})  # too big for one request
        singles = {}
        for name, content in MEMBERS.items():
            single = await c.post("/api/v1/process", files={"file": (name, content)})
            assert single.status_code == 200, single.text
            singles[name] = single.json()
        made = await c.post(UP, json={"total_size": n, "sha256": hashlib.sha256(data).hexdigest(),
                                      "filename": "night.zip"})
        uid = made.json()["upload_id"]
        first = await patch(c, uid, data[:third], 0, n)
        gap = await patch(c, uid, data[2 * third:], 2 * third, n)              # not where the bytes end
        overlap = await patch(c, uid, data[third - 10:2 * third], third - 10, n)  # repeats 10 bytes
        beyond = await patch(c, uid, data[n - 5:] + b"xxxxx", n - 5, n)          # past the declared size
        wrong_total = await patch(c, uid, data[third:2 * third], third, n + 1)
        short = await c.patch(f"{UP}/{uid}", content=data[third:third + 5],       # says 10 bytes, sends 5
                              headers={"content-range": f"bytes {third}-{third + 9}/{n}"})

        async def cut_short():  # chunked, no Content-Length: the body just ends early
            yield data[third:third + 5]

        cut = await c.patch(f"{UP}/{uid}", content=cut_short(),
                            headers={"content-range": f"bytes {third}-{third + 9}/{n}"})
        head = await c.head(f"{UP}/{uid}")                                       # an interrupted client asks
        resume = int(head.headers["upload-offset"])
        second = await patch(c, uid, data[resume:2 * third], resume, "*")
        early = await c.post(f"{JOBS}/submit", data={"upload_id": uid})
        last = await patch(c, uid, data[2 * third:], 2 * third, n)
        assert open(store.upload_file(uid), "rb").read() == data
        sub = await c.post(f"{JOBS}/submit", data={"upload_id": uid, "priority": "high"})
        again = await c.post(f"{JOBS}/submit", data={"upload_id": uid})
        after = (await c.get(f"{UP}/{uid}")).json()
        done_up = await wait_done(c, sub.json()["batch_id"])
        res_up = (await c.get(f"{JOBS}/results/{sub.json()['batch_id']}")).json()["results"]
    await app.state.astrodash.shutdown()
    assert whole.status_code == 413
    assert made.status_code == 201 and made.headers["location"].endswith(f"{UP}/{uid}")
    assert made.json()["offset"] == 0 and made.headers["upload-offset"] == "0"
    assert first.status_code == 200 and first.json()["offset"] == third and not first.json()["complete"]
    for r in (gap, overlap):  # both say where to resume
        assert r.status_code == 409 and r.headers["upload-offset"] == str(third) and r.json()["offset"] == third
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{n}"
    assert wrong_total.status_code == 416
    assert short.status_code == 422 and short.json()["field"] == "Content-Length"
    assert cut.status_code == 422 and cut.json()["field"] == "body"  # and nothing of it kept: resume == third
    assert head.status_code == 200 and resume == third and head.headers["upload-length"] == str(n)
    assert second.status_code == 200 and second.json()["offset"] == 2 * third
    assert early.status_code == 409 and early.json()["field"] == "upload_id"
    assert last.status_code == 200 and last.json()["complete"] and last.json()["status"] == "complete"
    assert sub.status_code == 202, sub.text
    assert sub.json()["request_count"] == 3
    assert again.status_code == 409 and again.json()["batch_id"] == sub.json()["batch_id"]
    assert after["status"] == "submitted" and after["batch_id"] == sub.json()["batch_id"]
    assert not store.upload_dir.joinpath(f"{uid}.part").exists()  # the bytes live on as the batch's archive only
    assert done_up["status"] == "completed" and done_up["completed_requests"] == 3
    # each archived spectrum classified as /process classifies the same file
    assert {r["name"]: r["output"]["classification"]["best_match"]["type"] for r in res_up} == \
        {name: r["classification"]["best_match"]["type"] for name, r in singles.items()}
    assert {r["name"]: r["output"]["redshift"] for r in res_up} == \
        pytest.approx({name: r["redshift"] for name, r in singles.items()})


async def test_a_checksum_mismatch_empties_the_upload_and_bad_creations_are_refused(tmp_path):
    data = archive()
    app = make_app(tmp_path, rate_limit_enabled=False, upload_max_bytes=10 * len(data),
                   upload_max_total_bytes=3 * len(data))
    async with client(app) as c:
        bad = [await c.post(UP, json=body) for body in (
            {}, {"total_size": 0}, {"total_size": "9"}, {"total_size": True}, {"total_size": 5, "sha256": "ab"},
            {"total_size": 5, "filename": "../x"}, {"total_size": 5, "extra": 1})]
        too_big = await c.post(UP, json={"total_size": 10 * len(data) + 1})
        form = await c.post(UP, data={"total_size": "5"})
        wrong = await c.post(UP, json={"total_size": len(data), "sha256": "0" * 64})
        uid = wrong.json()["upload_id"]
        full = await patch(c, uid, data, 0, len(data))
        state = (await c.get(f"{UP}/{uid}")).json()
        second = await c.post(UP, json={"total_size": len(data)})
        no_room = await c.post(UP, json={"total_size": len(data) + 1})  # 2n held, 3n allowed
        gone = await c.delete(f"{UP}/{uid}")
        room = await c.post(UP, json={"total_size": len(data) + 1})
        missing = await c.get(f"{UP}/{uid}")
    await app.state.astrodash.shutdown()
    assert [r.status_code for r in bad] == [422] * 7
    assert [r.json()["field"] for r in bad] == ["total_size", "total_size", "total_size", "total_size", "sha256",
                                                "filename", "extra"]
    assert too_big.status_code == 413 and form.status_code == 415
    assert full.status_code == 422 and full.json()["field"] == "sha256" and full.headers["upload-offset"] == "0"
    assert state["offset"] == 0 and state["status"] == "open"  # emptied: send it again
    assert second.status_code == 201 and no_room.status_code == 507
    assert gone.status_code == 200 and room.status_code == 201 and missing.status_code == 404


async def test_abandoned_uploads_expire_and_uploads_belong_to_their_key(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"{USER_A} alice\n{USER_B} bob\n")
    app = make_app(tmp_path, rate_limit_enabled=False, require_api_key=True, api_keys_file=str(keys),
                   upload_ttl=60)
    store = app.state.astrodash.engine.store
    a, b = {"x-api-key": USER_A}, {"x-api-key": USER_B}
    async with client(app) as c:
        made = await c.post(UP, json={"total_size": 100}, headers=a)
        uid = made.json()["upload_id"]
        chunk = await c.patch(f"{UP}/{uid}", content=b"x" * 40, headers={**a, "content-range": "bytes 0-39/100"})
        as_b = [await c.get(f"{UP}/{uid}", headers=b), await c.delete(f"{UP}/{uid}", headers=b),
                await c.post(f"{JOBS}/submit", data={"upload_id": uid}, headers=b)]
        still = await c.get(f"{UP}/{uid}", headers=a)
    path = store.upload_file(uid)
    later = time.time() + 61  # a minute after the last chunk: expired, file and record removed
    assert store.get_upload(uid, now=later) is None
    assert store.expire_uploads(now=later) == 1
    await app.state.astrodash.shutdown()
    assert made.status_code == 201 and chunk.json()["offset"] == 40
    assert [r.status_code for r in as_b] == [404, 404, 404]
    assert still.status_code == 200 and still.json()["offset"] == 40
    assert not os.path.exists(path) and store.get_upload(uid) is None
