"""Classification in worker processes (ASTRODASH_CLASSIFY_PROCESSES), against real ``astrodash serve`` processes:
the same answers as classification in the server process and as the library, uploaded models there too, errors
with the same statuses, a worker process that dies replaced, and overload answered 503 with Retry-After."""
import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgpack
import pytest

from asgi_support import make_zip, spectrum_bytes, worker_processes
from test_models import make_model, random_weights

from astrodash_asgi.process import ServerProcess
from astrodash_core.classify import Classifier
from astrodash_core.reading import read_spectrum

RETRY_AFTER = 7
PAUSE = 300  # seconds a refused connection is not read (far longer than the test looks at it)
PATIENCE = 120  # seconds a request or a restart may take on a loaded machine before the test gives up
KNOWN_Z = {"params": json.dumps({"knownZ": True, "zValue": 0.01})}
ESTIMATED = {"params": json.dumps({"knownZ": False, "calculateRlap": True})}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(in-process server, worker-process server); the second admits one /process at a time.  No result cache:
    every request is classified."""
    common = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_BODY_TIMEOUT_S": "300",
              "ASTRODASH_RESULT_CACHE_MAX_ENTRIES": "0"}
    local = ServerProcess(tmp_path_factory.mktemp("local"), {**common, "ASTRODASH_CLASSIFY_PROCESSES": "0"})
    pooled = ServerProcess(tmp_path_factory.mktemp("pooled"),
                           {**common, "ASTRODASH_CLASSIFY_PROCESSES": "1", "ASTRODASH_BATCH_PROCESSES": "0",
                            "ASTRODASH_MAX_PENDING_PROCESS": "1",
                            "ASTRODASH_OVERLOAD_RETRY_AFTER_S": str(RETRY_AFTER),
                            "ASTRODASH_OVERLOAD_PAUSE_S": str(PAUSE)})
    with ThreadPoolExecutor(2) as ex:  # both start (and load their models) at once
        started = [ex.submit(s.start) for s in (local, pooled)]
        errors = [f.exception() for f in started]
    try:
        if any(errors):
            raise next(e for e in errors if e)
        yield local, pooled
    finally:
        local.stop()
        pooled.stop()


def _post(server, path, files, data, **headers):
    return httpx.post(server.base + path, files=files, data=data, headers=headers, timeout=PATIENCE)


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(v.decode().split("=", 1) for v in f.read().split(b"\0") if b"=" in v)


def test_serve_makes_openmp_threads_wait_passively_in_the_server_and_its_workers(servers):
    """Numba's OpenMP threads spinning between batches would take a core from the event loop and the classifier:
    astrodash serve sets OMP_WAIT_POLICY=PASSIVE for itself and the worker processes it spawns (an operator's own
    value is kept)."""
    _, pooled = servers
    expected = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    (worker,) = worker_processes(pooled)
    assert _environ(worker).get("OMP_WAIT_POLICY") == expected
    assert open(f"/proc/{pooled.proc.pid}/cmdline", "rb").read().count(b"serve") == 1


def test_the_worker_processes_classify_exactly_as_the_server_process_and_the_library(servers):
    local, pooled = servers
    assert worker_processes(local) == [] and len(worker_processes(pooled)) == 1
    assert "classify_workers" not in httpx.get(local.base + "/ready", timeout=PATIENCE).json()["checks"]
    # ServerProcess waited for the worker process to load its models
    check = httpx.get(pooled.base + "/ready", timeout=PATIENCE).json()["checks"]["classify_workers"]
    assert check == {"ok": True, "state": "ready", "processes": 1}
    data = spectrum_bytes()
    answers = {}
    for label, form in (("known", KNOWN_Z), ("estimated", ESTIMATED)):
        a = _post(local, "/api/v1/process", {"file": ("sn.dat", data)}, form)
        b = _post(pooled, "/api/v1/process", {"file": ("sn.dat", data)}, form)
        assert a.status_code == b.status_code == 200
        assert a.content == b.content
        answers[label] = b.json()
    assert answers["estimated"]["classification"]["best_match"]["rlap"] is not None
    packed = _post(pooled, "/api/v1/process", {"file": ("sn.dat", data)}, KNOWN_Z, accept="application/msgpack")
    assert packed.headers["content-type"] == "application/msgpack"
    assert msgpack.unpackb(packed.content) == answers["known"]
    est = [_post(server, "/api/v1/estimate-redshift", {"file": ("sn.dat", data)}, {"sn_type": "Ia"})
           for server in servers]
    assert est[0].status_code == est[1].status_code == 200
    assert est[0].json() == est[1].json() and est[1].json()["estimated_redshift"] is not None
    # an independent reference: the library in this process
    ref = Classifier().classify([read_spectrum(data, filename="sn.dat")], [0.01])[0]
    best = answers["known"]["classification"]["best_match"]
    assert (best["type"], best["age"]) == (ref.best_match.type, ref.best_match.age)
    assert best["probability"] == pytest.approx(float(ref.best_match.probability), abs=1e-6)


def test_a_batch_is_classified_by_the_workers_in_input_order_with_per_file_errors(servers):
    local, pooled = servers
    entries = {f"{i:03d}.dat": spectrum_bytes() for i in range(70)}  # more than one call's worth (batch.CALL)
    entries["041_bad.dat"] = b"not a spectrum"
    archive = make_zip(entries)
    a = _post(local, "/api/v1/batch-process", {"zip_file": ("b.zip", archive)}, KNOWN_Z)
    b = _post(pooled, "/api/v1/batch-process", {"zip_file": ("b.zip", archive)}, KNOWN_Z)
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    results = b.json()
    assert list(results) == list(entries)  # input order
    assert "error" in results["041_bad.dat"] and "error" not in results["069.dat"]


def test_errors_keep_their_status_from_the_worker_processes(servers):
    for server in servers:
        bad = _post(server, "/api/v1/process", {"file": ("bad.dat", b"garbage")}, KNOWN_Z)
        assert bad.status_code == 400 and bad.json()["detail"].startswith("bad.dat:")
        bad = _post(server, "/api/v1/estimate-redshift", {"file": ("bad.dat", b"garbage")}, {})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("bad.dat:")
        unknown = _post(server, "/api/v1/process", {"file": ("sn.dat", spectrum_bytes())},
                        {**KNOWN_Z, "model_id": "no-such-model"})
        assert unknown.status_code == 404


def test_an_uploaded_model_classifies_in_the_worker_processes(servers, tmp_path):
    model = make_model(random_weights(seed=5))
    model.save(tmp_path / "m.npz")
    blob = (tmp_path / "m.npz").read_bytes()
    data = spectrum_bytes()
    answers = []
    for server in servers:
        up = _post(server, "/api/v1/upload-model", {"file": ("m.npz", blob)}, {"name": "random"})
        assert up.status_code == 200, up.text
        model_id = up.json()["model_id"]
        r = _post(server, "/api/v1/process", {"file": ("sn.dat", data)}, {**KNOWN_Z, "model_id": model_id})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["model_id"] == model_id
        answers.append({k: v for k, v in answer.items() if k != "model_id"})
        gone = httpx.delete(f"{server.base}/api/v1/models/{model_id}", timeout=PATIENCE)
        assert gone.status_code in (200, 204)
        again = _post(server, "/api/v1/process", {"file": ("sn.dat", data)}, {**KNOWN_Z, "model_id": model_id})
        assert again.status_code == 404
    assert answers[0] == answers[1]
    ref = Classifier(model=model).classify([read_spectrum(data, filename="sn.dat")], [0.01])[0]
    assert answers[1]["classification"]["best_match"]["type"] == ref.best_match.type
    assert answers[1]["classification"]["best_match"]["probability"] == \
        pytest.approx(float(ref.best_match.probability), abs=1e-6)


def _hold_process_request(server) -> tuple[socket.socket, bytes]:
    """A /process request whose body is only half sent (admitted, waiting for the rest); (socket, the rest)."""
    boundary = "heldrequestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n"
            f"{KNOWN_Z['params']}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"sn.dat\"\r\n\r\n").encode() + spectrum_bytes() + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/v1/process HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nConnection: close\r\n\r\n").encode()
    s = socket.create_connection((server.host, server.port), timeout=PATIENCE)
    half = len(body) // 2
    s.sendall(head + body[:half])
    return s, body[half:]


def _in_progress(server) -> int:
    return httpx.get(server.base + "/health", timeout=PATIENCE).json()["load"]["in_progress"]["process"]


def _refused_connection_is_not_read(server) -> None:
    """A kept-alive connection whose /process was refused: its next request waits unread (ASTRODASH_OVERLOAD_PAUSE_S)
    while other connections are answered."""
    boundary = "refusedboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sn.dat\"\r\n\r\n").encode() \
        + spectrum_bytes() + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/v1/process HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    with socket.create_connection((server.host, server.port), timeout=PATIENCE) as s:
        s.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503")
        length = int(answer.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(answer.split(b"\r\n\r\n", 1)[1]) < length:
            answer += s.recv(65536)
        s.sendall(f"GET /health HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
        for _ in range(3):  # other connections are served meanwhile
            assert httpx.get(server.base + "/health", timeout=PATIENCE).status_code == 200
        s.settimeout(1.0)
        with pytest.raises(socket.timeout):  # a server reading it at once would have answered by now
            s.recv(65536)


def test_process_requests_beyond_the_bound_are_answered_503_with_retry_after(servers):
    _, pooled = servers  # ASTRODASH_MAX_PENDING_PROCESS=1
    held, rest = _hold_process_request(pooled)
    try:
        deadline = time.monotonic() + PATIENCE
        while _in_progress(pooled) < 1:  # the held request is admitted once its headers are read
            assert time.monotonic() < deadline, "the held request was never admitted"
            time.sleep(0.05)
        rejected = httpx.get(pooled.base + "/health", timeout=PATIENCE).json()["load"]["rejected_busy"]["process"]
        busy = _post(pooled, "/api/v1/process", {"file": ("sn.dat", spectrum_bytes())}, KNOWN_Z)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == str(RETRY_AFTER)
        assert "limit 1" in busy.json()["detail"] and busy.json()["retry_after"] == RETRY_AFTER
        assert busy.headers["x-request-id"]  # refused before the stack, still with its request id
        packed = _post(pooled, "/api/v1/process", {"file": ("sn.dat", spectrum_bytes())}, KNOWN_Z,
                       accept="application/msgpack")
        assert packed.status_code == 503 and packed.headers["content-type"] == "application/msgpack"
        assert "limit 1" in msgpack.unpackb(packed.content)["detail"]
        # a browser's request goes through the whole stack: the same 503, with the CORS headers it needs
        browser = _post(pooled, "/api/v1/process", {"file": ("sn.dat", spectrum_bytes())}, KNOWN_Z,
                        origin="https://example.org")
        assert browser.status_code == 503 and browser.headers["retry-after"] == str(RETRY_AFTER)
        assert "access-control-allow-origin" in browser.headers
        batch = _post(pooled, "/api/v1/batch-process", {"zip_file": ("b.zip", make_zip({"a.dat": spectrum_bytes()}))},
                      KNOWN_Z)
        assert batch.status_code == 200  # its own bound (2 batches), untouched by the /process bound
        health = httpx.get(pooled.base + "/health", timeout=PATIENCE).json()
        assert health["load"]["rejected_busy"]["process"] == rejected + 3
        _refused_connection_is_not_read(pooled)
        held.sendall(rest)  # the held request completes normally
        answer = b""
        while chunk := held.recv(65536):
            answer += chunk
    finally:
        held.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"best_match"' in answer
    assert _in_progress(pooled) == 0
    after = _post(pooled, "/api/v1/process", {"file": ("sn.dat", spectrum_bytes())}, KNOWN_Z)
    assert after.status_code == 200


def test_a_worker_process_that_dies_is_replaced(servers):
    _, pooled = servers
    data = spectrum_bytes()
    expected = _post(pooled, "/api/v1/process", {"file": ("sn.dat", data)}, ESTIMATED).json()
    (worker,) = worker_processes(pooled)
    os.kill(worker, 9)
    statuses = []
    deadline = time.monotonic() + PATIENCE
    while True:  # the call that finds the pool broken is a 503; the next ones go to a new worker process
        r = _post(pooled, "/api/v1/process", {"file": ("sn.dat", data)}, ESTIMATED)
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert time.monotonic() < deadline
    assert r.json() == expected
    assert statuses.count(503) == 1  # the pool finds out at the first call after the death
    new = worker_processes(pooled)
    assert len(new) == 1 and new != [worker]
    health = httpx.get(pooled.base + "/health", timeout=PATIENCE).json()
    assert health["classification"] == {"processes": 1, "status": "ready", "restarts": statuses.count(503),
                                        "batch": {"processes": 0, "status": "none", "restarts": 0}}


def test_the_pipes_to_the_worker_processes_are_widened():
    """A batch part (megabytes of files) and its answers cross the pool's pipes: at 64 KiB a turn each waits for the
    other process to read, so the pool asks Linux for PIPE_BYTES (or the system's cap, when smaller)."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("no F_GETPIPE_SZ here")
    from astrodash_asgi import Settings
    from astrodash_asgi.workers import PIPE_BYTES, ProcessPool

    cap = int(open("/proc/sys/fs/pipe-max-size").read())
    pool = ProcessPool(Settings(warmup=False), 1)
    executor = pool.start()  # the executor and its queues; its processes start with the first call
    try:
        sizes = [fcntl.fcntl(conn.fileno(), fcntl.F_GETPIPE_SZ)
                 for conn in (executor._call_queue._writer, executor._result_queue._reader)]
    finally:
        pool.shutdown()
    assert sizes == [min(PIPE_BYTES, cap)] * 2 and PIPE_BYTES == 1 << 20
