"""The forward pass runs its matrix products on BLAS_THREADS threads and leaves the process's BLAS settings
as they were (the library never changes them globally)."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from astrodash_core import nn
from test_models import make_model


def blas_threads_now() -> list[int]:
    """Threads of numpy's own BLAS (the one its matrix products use; other packages may load others)."""
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]


def blas_by_library() -> dict[str, int]:
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    if not blas_threads_now():
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    with threadpool_limits(limits=2, user_api="blas"):
        yield


def test_forward_uses_one_blas_thread_and_restores_the_setting(monkeypatch, two_blas_threads):
    model = make_model()
    seen = []
    original = nn.Network._forward_block

    def spy(self, x):
        seen.append(blas_threads_now())
        return original(self, x)

    monkeypatch.setattr(nn.Network, "_forward_block", spy)
    model.predict(np.zeros((1, int(model.grid["nw"])), dtype=np.float32))  # every BLAS library loaded
    seen.clear()
    before = blas_by_library()
    probs = model.predict(np.random.default_rng(0).random((40, int(model.grid["nw"])), dtype=np.float32))
    assert set(before.values()) == {2}
    assert seen and all(set(s) == {1} for s in seen)  # during the products
    assert blas_by_library() == before  # and put back afterwards
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_blas_threads_none_leaves_blas_alone(monkeypatch, two_blas_threads):
    model = make_model()
    seen = []
    original = nn.Network._forward_block
    monkeypatch.setattr(nn, "BLAS_THREADS", None)
    monkeypatch.setattr(nn.Network, "_forward_block", lambda self, x: seen.append(blas_threads_now()) or
                        original(self, x))
    model.predict(np.zeros((3, int(model.grid["nw"])), dtype=np.float32))
    assert len(seen) == 1 and set(seen[0]) == {2}


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    model = make_model()
    x = np.random.default_rng(1).random((70, int(model.grid["nw"])), dtype=np.float32)
    one = model.predict(x)
    monkeypatch.setattr(nn, "BLAS_THREADS", None)
    np.testing.assert_allclose(model.predict(x), one, rtol=1e-5, atol=1e-7)


def test_blocks_spread_over_forward_threads_give_the_same_bits(monkeypatch):
    """With FORWARD_THREADS = 2 a forward pass of several blocks runs them on two threads, each block on one
    BLAS thread, and gives exactly the probabilities of one thread; one block stays in the caller's thread."""
    import threading

    model = make_model()
    x = np.random.default_rng(2).random((300, int(model.grid["nw"])), dtype=np.float32)
    monkeypatch.setattr(nn, "FORWARD_THREADS", 1)
    one = model.predict(x)
    seen = []
    original = nn.Network._forward_block

    def spy(self, rows):
        seen.append((threading.get_ident(), len(rows), tuple(blas_threads_now())))
        return original(self, rows)

    monkeypatch.setattr(nn.Network, "_forward_block", spy)
    monkeypatch.setattr(nn, "FORWARD_THREADS", 2)
    np.testing.assert_array_equal(model.predict(x), one)
    assert sorted(n for _, n, _ in seen) == [44, 128, 128]
    assert threading.get_ident() not in {t for t, _, _ in seen}
    assert all(set(b) <= {1} for _, _, b in seen)
    seen.clear()
    model.predict(x[:100])
    assert [t for t, _, _ in seen] == [threading.get_ident()]


def test_the_limit_holds_while_any_thread_is_inside_a_forward_pass(monkeypatch, two_blas_threads):
    """Two threads in forward passes at once: the one that leaves first must not hand the other's later products
    BLAS's own threads (the limit is the process's), and a limit asked for from a thread other than the first
    one must not be silently ignored (threadpoolctl lets one thread control a pthreads OpenBLAS).  Both held
    with the limit shared by whoever is inside, and BLAS is put back when the last one leaves."""
    import threading

    model = make_model()
    nw = int(model.grid["nw"])
    model.predict(np.zeros((1, nw), dtype=np.float32))  # every BLAS library loaded
    before = blas_by_library()
    monkeypatch.setattr(nn, "FORWARD_THREADS", 1)
    original = nn.Network._forward_block
    both_inside = threading.Barrier(2, timeout=30)
    short_done = threading.Event()
    seen: dict[str, list] = {"short": [], "long": []}

    def spy(self, rows):
        who = threading.current_thread().name
        if len(seen[who]) == 0:
            both_inside.wait()  # each thread's first block: both are inside their forward pass
        elif who == "long":
            assert short_done.wait(30)  # the long pass's later blocks run after the short one has left
        seen[who].append(blas_threads_now())
        return original(self, rows)

    monkeypatch.setattr(nn.Network, "_forward_block", spy)
    rng = np.random.default_rng(3)
    inputs = {"short": rng.random((10, nw), dtype=np.float32), "long": rng.random((300, nw), dtype=np.float32)}
    errors = []

    def run(name):
        try:
            model.predict(inputs[name])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        if name == "short":
            short_done.set()

    threads = [threading.Thread(target=run, args=(name,), name=name) for name in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(seen["short"]) == 1 and len(seen["long"]) == 3
    assert all(set(s) == {1} for s in seen["short"] + seen["long"]), seen
    assert blas_by_library() == before


def test_blas_is_primed_once_inside_the_limit(monkeypatch, two_blas_threads):
    """The first forward pass of the process runs the priming product (nn._prime_blas), inside the one-thread
    limit, and no later pass runs it again."""
    model = make_model()
    nw = int(model.grid["nw"])
    primes = []
    real_ones = np.ones

    def ones(shape, dtype=None):
        if tuple(shape) in {nn.PRIME_SHAPE[:2], nn.PRIME_SHAPE[1:]}:
            primes.append(blas_threads_now())
        return real_ones(shape, dtype=dtype)

    monkeypatch.setattr(nn, "_primed", False)
    monkeypatch.setattr(nn.np, "ones", ones)
    x = np.random.default_rng(4).random((5, nw), dtype=np.float32)
    first = model.predict(x)
    again = model.predict(x)
    assert len(primes) == 2 and all(set(b) == {1} for b in primes)  # the product's two operands, made once
    np.testing.assert_array_equal(first, again)


def test_classify_holds_the_limit_for_a_chunk_and_puts_blas_back(monkeypatch, two_blas_threads):
    """classify sets the limit once per chunk (its forward passes inside share it) and leaves BLAS as it found
    it, also when a chunk fails."""
    from pathlib import Path

    from astrodash_core.classify import Classifier

    examples = sorted(p for p in (Path(__file__).resolve().parents[1] / "examples").iterdir()
                      if p.suffix in (".dat", ".fits"))
    clf = Classifier()
    clf.classify(examples)  # models loaded, Numba's kernels too, and every BLAS library (scipy's, when Numba finds it)
    before = blas_by_library()
    seen = []
    original = nn.Network._forward_block
    monkeypatch.setattr(nn.Network, "_forward_block", lambda self, x: seen.append(blas_threads_now()) or
                        original(self, x))
    from astrodash_core.nn import _threads

    changes = []
    real_change = _threads._as_controller
    monkeypatch.setattr(_threads, "_as_controller", lambda change: changes.append(1) or real_change(change))
    results = clf.classify(examples)
    assert all(r.error is None for r in results) and len(seen) >= 3
    assert len(changes) == 2  # one chunk: the limit set once and restored once, whatever its forward passes
    assert all(set(s) == {1} for s in seen)
    assert blas_by_library() == before
    monkeypatch.setattr(nn.Network, "_forward_block", lambda self, x: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        clf.classify(examples[:1])
    assert blas_by_library() == before
