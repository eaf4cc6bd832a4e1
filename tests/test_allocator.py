"""astrodash serve's processes keep freed memory for reuse (astrodash_asgi.allocator): a block freed and allocated
again costs no new pages; with the setting at 0, or in any other process, glibc's defaults stay."""
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

# 20 rounds of 250 files of 80 kB (a batch part's entries) allocated and freed: the minor page faults they cost
_ROUNDS = """
import resource, sys
from astrodash_asgi.allocator import keep_freed_memory
applied = keep_freed_memory(int(sys.argv[1]))
files = [bytes(80_000) for _ in range(250)]; del files  # the first round faults its pages in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    files = [bytes(80_000) for _ in range(250)]
    del files
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep_bytes: int) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _ROUNDS, str(keep_bytes)], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


def test_freed_memory_is_reused_instead_of_faulted_in_again():
    pages = 250 * 80_000 // 4096
    applied, kept = _faults(256 << 20)
    default, returned = _faults(0)
    assert (applied, default) == ("True", "False")
    assert returned > 10 * pages  # glibc's defaults: the freed heap top is trimmed and faulted in again each round
    assert kept < pages // 10  # kept: the same pages serve every round


def test_the_serve_processes_and_the_workers_apply_the_setting(monkeypatch):
    """Both of astrodash's own process kinds call keep_freed_memory with ASTRODASH_MALLOC_KEEP_BYTES: the serve
    process when its protocol is first made, a classification worker when it starts."""
    from astrodash_asgi import allocator, protocol, workers
    from astrodash_asgi.settings import Settings

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", calls.append)
    monkeypatch.setattr("gc.freeze", lambda: None)  # what these process starts do besides
    monkeypatch.setattr("signal.signal", lambda *args: None)
    monkeypatch.setattr("sys.setswitchinterval", lambda interval: None)
    monkeypatch.setattr(workers, "_exit_with_parent", lambda: None)
    monkeypatch.setattr(workers, "_CLASSIFIERS", None)
    monkeypatch.setattr(workers, "_IN_WORKER", False)  # _init marks the process a worker: put back after
    monkeypatch.setattr(protocol._FromSettings, "cls", None)
    monkeypatch.setenv("ASTRODASH_MALLOC_KEEP_BYTES", "12345")
    protocol._FromSettings.get()
    workers._init(Settings(warmup=False, malloc_keep_bytes=678))
    assert calls == [12345, 678]
