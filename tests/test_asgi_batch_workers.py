"""``/batch-process``'s own worker processes (ASTRODASH_BATCH_PROCESSES, default 1), against a real ``astrodash serve``:
/health reports them, a batch's parts are classified by both them and the classification worker process, and
the two give the same answers, which are the library's."""
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from asgi_support import make_zip, spectrum_bytes, worker_processes

from astrodash_asgi.process import ServerProcess
from astrodash_asgi.state import AppState
from astrodash_core.classify import Classifier
from astrodash_core.reading import read_spectrum

PATIENCE = 120
KNOWN_Z = {"params": json.dumps({"knownZ": True, "zValue": 0.01})}
OTHER = Path(__file__).parent / "data" / "SN2013dh_56464.500065.dat"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("batchworkers"),
                       {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_RESULT_CACHE_MAX_ENTRIES": "0"}) as s:
        deadline = time.monotonic() + PATIENCE  # the batch worker loads its models beside the other one
        while _health(s)["classification"]["batch"]["status"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.2)
        yield s


def _health(server) -> dict:
    return httpx.get(server.base + "/health", timeout=PATIENCE).json()


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_health_reports_the_batchworker_processes(server):
    classification = _health(server)["classification"]
    assert classification["processes"] == 1
    assert classification["batch"] == {"processes": 1, "status": "ready", "restarts": 0}
    assert len(worker_processes(server)) == 2


def test_a_batch_is_shared_by_both_worker_processes_with_the_same_answers(server):
    sn, other = spectrum_bytes(), OTHER.read_bytes()
    # 256 files: four parts of 64, two for each process; the two spectra alternate, so each part holds both
    entries = {f"{i:03d}.dat": (sn if i % 2 == 0 else other) for i in range(256)}
    workers = worker_processes(server)
    before = {pid: _cpu_ticks(pid) for pid in workers}
    r = httpx.post(server.base + "/api/v1/batch-process", files={"zip_file": ("b.zip", make_zip(entries))},
                   data=KNOWN_Z, timeout=PATIENCE)
    assert r.status_code == 200
    used = {pid: _cpu_ticks(pid) - before[pid] for pid in workers}
    assert all(ticks >= 2 for ticks in used.values()), used  # each classified parts (20 ms of CPU or more)
    out = r.json()
    assert list(out) == list(entries)

    def answer(name):  # all but the names
        return {k: v for k, v in out[name].items() if k not in ("name", "file")}

    for first, second in (("000.dat", "064.dat"), ("001.dat", "065.dat"), ("000.dat", "192.dat")):
        assert answer(first) == answer(second)  # parts of the two processes
    ref = Classifier().classify([read_spectrum(sn, filename="000.dat"), read_spectrum(other, filename="001.dat")],
                                [0.01, 0.01])
    for name, expected in zip(("000.dat", "001.dat"), ref):
        best = out[name]["classification"]["best_match"]
        assert (best["type"], best["age"]) == (expected.best_match.type, expected.best_match.age)
        assert best["probability"] == pytest.approx(float(expected.best_match.probability), abs=1e-6)


def test_parts_go_to_the_batch_workers_only_once_they_are_ready():
    main, extra = object(), SimpleNamespace(status="starting")
    state = SimpleNamespace(runner=main, batch_runner=extra)
    assert AppState.part_runners(state) == [main]
    extra.status = "failed"
    assert AppState.part_runners(state) == [main]
    extra.status = "ready"
    assert AppState.part_runners(state) == [main, extra]
    state.batch_runner = None
    assert AppState.part_runners(state) == [main]


def _thread_settings() -> dict:
    from importlib import import_module  # (the package's ``classify`` is the function)

    nn, classify = import_module("astrodash_core.nn"), import_module("astrodash_core.classify")
    reader_batch, zips = import_module("astrodash_core.reader_batch"), import_module("astrodash_asgi.zips")
    return {"forward": nn.FORWARD_THREADS, "chunks": classify.CHUNK_THREADS, "read": reader_batch.THREADS,
            "inflate": zips.THREADS, "numba": import_module("numba").get_num_threads()}


def _inside_and_after(classifiers, threads) -> tuple[dict, dict]:
    """In a worker process: the thread settings inside ``limited_threads(threads)``, and after it."""
    from astrodash_asgi.workers import limited_threads

    with limited_threads(threads):
        inside = _thread_settings()
    return inside, _thread_settings()


def test_a_part_classifies_on_the_threads_it_is_given_and_the_worker_keeps_its_own():
    from astrodash_asgi.settings import Settings
    from astrodash_asgi.workers import ProcessPool, limited_threads

    pool = ProcessPool(Settings.from_env({}, warmup=False), 1)
    try:
        own = pool.call(_inside_and_after, None)[1]
        inside, after = pool.call(_inside_and_after, 1)
    finally:
        pool.shutdown()
    assert own == {"forward": 2, "chunks": 2, "read": 2, "inflate": 2, "numba": 2} or os.cpu_count() == 1
    assert inside == {"forward": 1, "chunks": 1, "read": 1, "inflate": 1, "numba": 1}
    assert after == own
    here = _thread_settings()
    with limited_threads(1):  # the server process: its threads classify side by side, so nothing changes
        assert _thread_settings() == here


def test_encode_entries_runs_under_the_limit(monkeypatch):
    from astrodash_asgi import classification, workers

    seen = []
    monkeypatch.setattr(workers, "_IN_WORKER", True)
    monkeypatch.setattr(classification, "classify_entries",
                        lambda *a, **k: seen.append(_thread_settings()["forward"]) or ({}, 0))
    assert classification.encode_entries(None, [], [], None, 5, 64, True, False, 1) == (b"", 0)
    assert classification.encode_entries(None, [], [], None, 5, 64, True, False, None) == (b"", 0)
    assert seen == [1, min(2, os.cpu_count() or 1)]
