"""A batch's chunks classified two at a time (``classify.CHUNK_THREADS``): the same answers, in the same order, as
one chunk after another; a chunk's failure reaches the caller; the threaded preprocessing drivers never run twice
at once."""
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _classify_mod():
    import astrodash_core.classify  # noqa: F401 - the package's name `classify` is the function

    return sys.modules["astrodash_core.classify"]


@pytest.fixture(scope="module")
def sources():
    real = sorted(shared_data("real", what="real spectra").glob("*.dat"))[::90]  # 14 files across the set
    return sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".dat", ".fits")) + real


@pytest.fixture
def spied(monkeypatch):
    """classify's module with two chunk threads, and the (thread, file names) of every chunk classified."""
    mod = _classify_mod()
    monkeypatch.setattr(mod, "CHUNK_THREADS", 2)
    seen: list = []
    original = mod.Classifier._classify_chunk

    def spy(self, chunk, *args):
        seen.append((threading.current_thread(), [Path(p).name for p in chunk]))
        return original(self, chunk, *args)

    monkeypatch.setattr(mod.Classifier, "_classify_chunk", spy)
    return mod, seen


def test_batch_chunk_size():
    mod = _classify_mod()
    assert mod.CHUNK_THREADS == 2 or pytest.skip("one core: no second chunk thread")
    size = mod.batch_chunk_size
    assert [size(n) for n in (1, 7, mod.MIN_SPLIT - 1)] == [1, 7, mod.MIN_SPLIT - 1]  # small batches: one chunk
    assert size(mod.MIN_SPLIT) == mod.MIN_SPLIT // 2
    assert size(1000) == 500 and size(2 * mod.MAX_CHUNK) == mod.MAX_CHUNK
    assert size(2 * mod.MAX_CHUNK + 1) == 257  # four even chunks rather than 512 + 512 + 1
    for n in range(1, 5000, 37):
        c = size(n)
        chunks = -(-n // c)
        assert 1 <= c <= mod.MAX_CHUNK and (chunks == 1 or chunks % 2 == 0)


def test_chunks_in_pairs_give_the_answers_of_one_at_a_time(monkeypatch, sources, spied):
    mod, seen = spied
    clf = mod.Classifier()
    monkeypatch.setattr(mod, "CHUNK_THREADS", 1)
    want = [r.to_dict() for r in clf.iter_classify(sources, chunk_size=3, probabilities=True)]
    seen.clear()
    monkeypatch.setattr(mod, "CHUNK_THREADS", 2)
    got = [r.to_dict() for r in clf.iter_classify(sources, chunk_size=3, probabilities=True)]
    assert [r["name"] for r in got] == [r["name"] for r in want]
    assert got == want  # every field, to the bit
    helpers = [names for thread, names in seen if thread.name.startswith("astrodash-chunk")]
    assert len(seen) == 6 and len(helpers) == 3  # the first chunk of each pair on the helper
    names = [Path(p).name for p in sources]
    assert sorted(chunk for _, chunk in seen) == sorted(names[i:i + 3] for i in range(0, len(names), 3))
    # classify() splits a batch into an even number of chunks itself (two of 9 here), with the same answers
    monkeypatch.setattr(mod, "MIN_SPLIT", 6)
    seen.clear()
    got = [r.to_dict() for r in clf.classify(sources, probabilities=True)]
    assert sorted(len(chunk) for _, chunk in seen) == [9, 9]
    monkeypatch.setattr(mod, "CHUNK_THREADS", 1)
    assert got == [r.to_dict() for r in clf.iter_classify(sources, chunk_size=9, probabilities=True)]


def test_a_lone_chunk_runs_in_the_callers_thread(sources, spied):
    """One chunk in all (one file per call) starts no thread; of three chunks, the third runs in the caller's."""
    mod, seen = spied
    clf = mod.Classifier()
    threads_before = threading.active_count()
    assert [r.error for r in clf.classify(sources[:1])] == [None]
    assert [(t, len(c)) for t, c in seen] == [(threading.current_thread(), 1)]
    assert threading.active_count() == threads_before
    seen.clear()
    assert len(list(clf.iter_classify(sources[:3], chunk_size=1))) == 3
    on_helper = [t is not threading.current_thread() for t, _ in seen]
    assert sorted(on_helper) == [False, False, True] and on_helper[-1] is False


def test_a_failing_chunk_reaches_the_caller(monkeypatch, sources):
    mod = _classify_mod()
    monkeypatch.setattr(mod, "CHUNK_THREADS", 2)
    original = mod.Classifier._classify_chunk

    def fail_on_helper(self, chunk, *args):
        if threading.current_thread().name.startswith("astrodash-chunk"):
            raise RuntimeError("planted failure")
        return original(self, chunk, *args)

    monkeypatch.setattr(mod.Classifier, "_classify_chunk", fail_on_helper)
    with pytest.raises(RuntimeError, match="planted failure"):
        list(mod.Classifier().iter_classify(sources[:4], chunk_size=2))


def test_a_stream_left_early_stops(sources, spied):
    """A consumer that stops after the first result: no chunk beyond the pair in flight is classified."""
    mod, seen = spied
    stream = mod.Classifier().iter_classify(sources, chunk_size=2)
    first = next(stream)
    stream.close()
    assert first.error is None and [len(c) for _, c in seen] == [2, 2]


def test_threaded_drivers_take_turns(monkeypatch):
    """Two threads preprocessing batches at once: Numba's threaded drivers run one at a time (its workqueue
    layer aborts the process on concurrent launches)."""
    from astrodash_core import _kernels

    inside, most = [0], [0]
    lock = threading.Lock()

    def fake_driver(*args):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with lock:
            inside[0] -= 1

    monkeypatch.setattr(_kernels, "_rebin_batch", fake_driver, raising=False)
    monkeypatch.setattr(_kernels, "_finish_batch", fake_driver, raising=False)
    n = _kernels.SERIAL_BELOW
    z = np.zeros(n)

    def work(i):
        if i % 2:
            _kernels.rebin_batch(None, None, np.arange(n + 1), z, z, z, None, None, None, None)
        else:
            _kernels.finish_batch(np.zeros((n, 4)), None, None, 0, None, 0.0, 0.0, 0.0, None)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == 1
