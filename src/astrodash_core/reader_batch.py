"""``read_many`` / ``iter_read``: many sources read at once, in runs of files on several threads.

Each source gives what :func:`~astrodash_core.reader_dispatch.read_spectra` gives it (its list of spectra), or
the :class:`SpectrumReadError` that says why it cannot be read.  What makes it faster than calling
``read_spectra`` in a loop: the sources are read in runs of :data:`RUN` files; within a run, the files that one
reader reads go to its ``read_many`` together (the text reader parses all of them in one call, which releases
the GIL once instead of once per file), and :data:`THREADS` runs are read at a time, so that one thread's
parsing overlaps another's Python.  On one thread the sources are read one by one.  Results come back in the
order of the sources, and at most two runs per thread are held in memory, however many sources there are.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Iterable, Iterator, Sized

from .errors import SpectrumReadError
from .reader_base import read_each
from .reader_dispatch import _checked, _direct, _prepare, _reader_error, read_spectra
from .spectrum import Spectrum

#: Sources read together by one thread (at most: a batch of known length is cut into at least one run per
#: thread).  Long enough that a run's Python and its parsing each take a millisecond or more, so a thread hands
#: the GIL over rarely; short enough that a run's files (about a megabyte of real spectra) stay in the core's
#: cache from their reading to their parsing.
RUN = 16
#: Threads :func:`iter_read` reads with by default.
THREADS: int = min(2, os.cpu_count() or 1)

Result = list[Spectrum] | SpectrumReadError


def read_many(sources: Iterable[Any], *, threads: int | None = None, on_error: str = "raise") -> list[Result]:
    """The spectra of every source, as a list aligned with ``sources``: each item is that source's list of
    spectra (what :func:`~astrodash_core.reader_dispatch.read_spectra` returns for it).

    ``sources``: paths, ``(bytes, filename)`` pairs, bytes, file objects, arrays or Spectrum objects, as
    ``read_spectra`` takes them.  ``threads``: how many threads read (default :data:`THREADS`; 1 reads in the
    caller's thread).  ``on_error``: "raise" raises the first source's :class:`SpectrumReadError` (in source
    order); "collect" puts it in that source's place, and reads every other source.
    """
    return list(iter_read(sources, threads=threads, on_error=on_error))


def iter_read(sources: Iterable[Any], *, threads: int | None = None, on_error: str = "raise") -> Iterator[Result]:
    """:func:`read_many` one source at a time, reading ahead in runs: memory stays flat for any number of
    sources."""
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    threads = THREADS if threads is None else int(threads)
    if threads < 1:
        raise ValueError("threads must be at least 1")
    if threads == 1:  # no GIL to hand over: file by file, which keeps each file in cache from reading to parsing
        results: Iterator[Result] = map(_one, sources)
    else:
        run = RUN
        if isinstance(sources, Sized):  # a batch of a few long files: one run per thread, not one run for all
            run = max(1, min(RUN, -(-len(sources) // threads)))
        results = _threaded(_runs(iter(sources), run), threads)
    return results if on_error == "collect" else _raising(results)


def _raising(results: Iterator[Result]) -> Iterator[Result]:
    """The results, up to the first SpectrumReadError, which is raised; the reading stops with it (or when the
    consumer stops), and its threads with it."""
    try:
        for result in results:
            if isinstance(result, SpectrumReadError):
                raise result
            yield result
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _runs(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        run = list(islice(it, size))
        if not run:
            return
        yield run


def _one(source) -> Result:
    """``read_spectra`` of one source, or its SpectrumReadError."""
    try:
        return read_spectra(source)
    except SpectrumReadError as exc:
        return exc


def _threaded(runs: Iterator[list[Any]], threads: int) -> Iterator[Result]:
    """The runs read by a pool of ``threads``, each run's results yielded in order as soon as it and every run
    before it are read; two runs per thread are in flight at most."""
    first = next(runs, None)
    if first is None:
        return
    second = next(runs, None)
    if second is None:  # one run: nothing to read beside it
        yield from read_run(first)
        return
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="astrodash-read")
    pending: deque = deque()
    try:
        pending.extend([pool.submit(read_run, first), pool.submit(read_run, second)])
        for run in islice(runs, 2 * threads - 2):
            pending.append(pool.submit(read_run, run))
        while pending:
            done = pending.popleft().result()
            following = next(runs, None)
            if following is not None:
                pending.append(pool.submit(read_run, following))
            yield from done
    finally:
        for future in pending:  # a consumer that stops early: do not read what nobody will take
            future.cancel()
        pool.shutdown(wait=True)


def read_run(sources: list[Any]) -> list[Result]:
    """Every source of a run read in the calling thread: the files named by paths loaded together, each
    source's reader chosen, then the files of one reader read together (through its ``read_many`` when it has
    one)."""
    out: list[Result | None] = [None] * len(sources)
    groups: dict[int, tuple[Any, list[int], list[tuple[bytes, str]]]] = {}
    for k, source in enumerate(_loaded(sources)):
        try:
            direct = _direct(source, None)
            if direct is not None:
                out[k] = direct
                continue
            reader, data, fname = _prepare(source, None)
        except SpectrumReadError as exc:
            out[k] = exc
            continue
        _, where, items = groups.setdefault(id(reader), (reader, [], []))
        where.append(k)
        items.append((data, fname))
    for reader, where, items in groups.values():
        many = getattr(reader, "read_many", None)
        answers = many(items) if many is not None else read_each(reader, items)
        for k, (data, fname), answer in zip(where, items, answers):
            try:
                if isinstance(answer, BaseException):
                    raise _reader_error(reader, answer, fname)
                out[k] = _checked(reader, answer, fname)
            except SpectrumReadError as exc:
                out[k] = exc
    return out  # type: ignore[return-value]


def _loaded(sources: list[Any]) -> list[Any]:
    """The sources with every path that names a regular file replaced by ``(its bytes, the path)``, the files
    read in one call (``_files.read_files``); a path that call does not answer stays, to be read the usual way
    (which says what is wrong with it)."""
    where = [k for k, s in enumerate(sources) if isinstance(s, (str, os.PathLike))]
    if not where:
        return sources
    from ._files import read_files

    paths = [os.fspath(sources[k]) for k in where]
    out = list(sources)
    for k, path, data in zip(where, paths, read_files([os.fsencode(p) for p in paths])):
        if data is not None:
            out[k] = (data, path)
    return out


__all__ = ["read_many", "iter_read", "RUN", "THREADS"]
