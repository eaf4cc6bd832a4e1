"""glibc's allocator told to keep freed memory for reuse, in astrodash's own processes (``astrodash serve`` and
its classification workers; never in a server that mounts the app).

A zip batch allocates and frees tens of megabytes per part: the entries, their text, spectra, answers.  With
glibc's defaults, blocks over 128 KiB and a heap top over 128 KiB are given back to the system when freed, and
the next part faults the same pages in again: on a virtual machine a page fault costs microseconds, and
inflating 80 MB of entries into fresh pages cost 37 of its 123 ms on the benchmark machine.  Kept, the
memory is reused; the price is memory a process holds without using it at the moment: up to ``keep_bytes`` at
the top of each of glibc's heaps (one per thread allocating at the same time).  Measured after twelve
1,000-file zips, two at a time: the server process 364 MB instead of 269, its worker 242 instead of 233.
"""
from __future__ import annotations

import ctypes
import platform

MB = 1024 * 1024
#: mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: the largest M_MMAP_THRESHOLD glibc accepts on 64-bit systems: larger blocks are always mapped on their own
MMAP_THRESHOLD_MAX = 32 * MB
#: memory taken from the system beyond each request that grows the heap
TOP_PAD = 16 * MB


def keep_freed_memory(keep_bytes: int) -> bool:
    """Keep up to ``keep_bytes`` of freed memory in this process's heaps for reuse: blocks up to
    min(``keep_bytes``, 32 MiB) come from a heap instead of their own mappings, and a heap is trimmed only past
    ``keep_bytes`` free at its top.  Whether it was applied (glibc only; ``keep_bytes`` 0 keeps glibc's
    defaults)."""
    if keep_bytes <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    keep = min(keep_bytes, 2**31 - 1)
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, min(keep, MMAP_THRESHOLD_MAX)), (M_TRIM_THRESHOLD, keep), (M_TOP_PAD, min(keep, TOP_PAD))))
