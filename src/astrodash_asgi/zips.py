"""ZIP archives opened safely, in memory: limits on entry count, total uncompressed size and compression
ratio checked before anything is inflated, and again while inflating; ``__MACOSX/`` and dot-files skipped;
entries with unsafe names (``..`` components, absolute paths, backslashes) reported as per-file errors.

An entry is taken out of its archive in two steps: :meth:`Archive.member` cuts its compressed bytes out (a
:class:`Member`, cheap, where the archive is), :func:`inflate` inflates them (where the entry is read, so a
classification worker process is sent the compressed bytes).  Inflating a member never gives more than the
size the archive's directory declared for it, and its CRC-32 is checked.  Deflated members are inflated by
ISA-L (the ``isal`` package, 2-3 times zlib's speed) when it is installed, by zlib otherwise.
"""
from __future__ import annotations

import io
import os
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, NamedTuple

from .errors import bad_file, too_large
from .forms import size_text

_inflating: ModuleType
try:
    from isal import isal_zlib as _inflating
except ImportError:  # pragma: no cover - isal is a dependency; zlib inflates the same bytes, slower
    _inflating = zlib
_decompressobj: Callable[[int], Any] = _inflating.decompressobj
_inflate_error: type[Exception] = _inflating.error

CHUNK = 1024 * 1024
#: the length of a zip local file header before its name and extra field, and its first four bytes
_LOCAL_HEADER = 30
_LOCAL_SIGNATURE = b"PK\x03\x04"
#: members holding less than this in all are inflated on the calling thread alone
PARALLEL_MIN_BYTES = 1024 * 1024
#: threads :func:`inflated` inflates on (the calling one and a helper; 1: the calling thread alone)
THREADS: int = min(2, os.cpu_count() or 1)
#: Entries smaller than this are exempt from the ratio check (tiny files compress absurdly well).
RATIO_MIN_BYTES = 1024 * 1024


@dataclass
class ZipLimits:
    max_entries: int
    max_total_bytes: int
    max_ratio: float
    max_file_bytes: int


def limits_from(settings, max_entries: int) -> ZipLimits:
    """The archive limits of the service's ``settings`` (sizes, ratio), with at most ``max_entries`` entries."""
    return ZipLimits(max_entries, settings.zip_max_total_bytes, settings.zip_max_ratio, settings.max_file_bytes)


def _skipped(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") and p != ".." for p in parts)


def unsafe_name(name: str) -> str | None:
    """Why an entry name is unsafe (it could point outside the archive's directory), or None."""
    if "\\" in name:
        return "unsafe entry name (backslash path separator)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "unsafe entry name (absolute path)"
    if ".." in name.split("/"):
        return "unsafe entry name (a '..' component)"
    if "\0" in name:
        return "unsafe entry name (NUL character)"
    return None


class Member(NamedTuple):
    """A zip entry's compressed bytes cut out of its archive, and what its directory declares of them."""

    data: bytes
    method: int  # zipfile.ZIP_STORED or zipfile.ZIP_DEFLATED
    size: int  # declared uncompressed size
    crc: int  # declared CRC-32 of the uncompressed bytes


class InflateError(ValueError):
    """A member's bytes cannot be inflated into what its directory declares."""


def inflate(member: Member) -> bytes:
    """The uncompressed bytes of ``member``: never more than its declared size (:class:`InflateError` when the
    data would give more, less, or bytes whose CRC-32 differs from the declared one)."""
    data, size = member.data, member.size
    if member.method == zipfile.ZIP_STORED:
        if len(data) != size:
            raise InflateError(f"holds {len(data)} bytes where its directory declares {size}")
        out = data
    elif member.method == zipfile.ZIP_DEFLATED:
        inflater = _decompressobj(-15)
        try:
            out = inflater.decompress(data, size + 1)  # one byte more than declared tells a member that lies
        except _inflate_error as exc:
            raise InflateError(f"invalid deflate data: {exc}") from None
        if len(out) > size:
            raise InflateError("inflates beyond its declared size")
        if not inflater.eof:
            raise InflateError("its deflate data ends early")
        if len(out) != size:
            raise InflateError(f"inflates to {len(out)} bytes where its directory declares {size}")
    else:
        raise InflateError(f"compression method {member.method} is not supported")
    if zlib.crc32(out) != member.crc:
        raise InflateError("bad CRC-32")
    return out


def inflated(entries: list[tuple]) -> list[tuple[str, bytes | None, str | None]]:
    """``entries`` [(name, bytes | Member | None, error | None)] with each Member inflated (a per-entry error
    when it cannot be), on :data:`THREADS` threads when there is much to inflate (inflating releases the GIL)."""
    todo = [k for k, (_, content, _) in enumerate(entries) if isinstance(content, Member)]
    if not todo:
        return list(entries)
    out = list(entries)

    def run(ks):
        for k in ks:
            name, member, _ = entries[k]
            try:
                out[k] = (name, inflate(member), None)
            except InflateError as exc:
                out[k] = (name, None, f"cannot be extracted ({exc})")

    if THREADS > 1 and len(todo) > 1 and sum(entries[k][1].size for k in todo) >= PARALLEL_MIN_BYTES:
        half = len(todo) // 2
        other = _pool().submit(run, todo[half:])
        run(todo[:half])
        other.result()
    else:
        run(todo)
    return out


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The process's helper thread for :func:`inflated`, started on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(1, thread_name_prefix="astrodash-inflate")
        return _POOL


class Archive:
    """A zip whose directory passed the whole-archive limits; entries are taken out one at a time
    (:meth:`member`, :meth:`read`), so a batch holds only the chunk it is working on."""

    def __init__(self, data: bytes | str, zip_name: str, limits: ZipLimits):
        """``data``: the archive's bytes, or the path of a file holding them."""
        self.name, self.limits = zip_name, limits
        self._data = None if isinstance(data, str) else data
        try:
            self._zf = zipfile.ZipFile(data if isinstance(data, str) else io.BytesIO(data))
            infos = [i for i in self._zf.infolist() if not i.is_dir() and not _skipped(i.filename)]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
            raise bad_file(zip_name, f"not a readable zip archive ({exc})") from None
        if len(infos) > limits.max_entries:
            raise too_large(f"{zip_name}: {len(infos)} entries; at most {limits.max_entries} are accepted")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise too_large(f"{zip_name}: expands to {size_text(declared)}; at most "
                            f"{size_text(limits.max_total_bytes)} are accepted")
        for i in infos:
            ratio = i.file_size / max(i.compress_size, 1)
            if i.file_size >= RATIO_MIN_BYTES and ratio > limits.max_ratio:
                raise too_large(f"{zip_name}: entry {i.filename!r} expands {ratio:.0f}-fold (limit "
                                f"{limits.max_ratio:g}); refusing a possible zip bomb")
        self.infos = infos
        self._inflated = 0

    def close(self) -> None:
        self._zf.close()

    def names(self) -> list[str]:
        return [i.orig_filename for i in self.infos]

    def read(self, i: zipfile.ZipInfo) -> tuple[str, bytes | None, str | None]:
        """(name, content, None) or (name, None, error) for one entry: :meth:`member` inflated."""
        return inflated([self.member(i)])[0]

    def member(self, i: zipfile.ZipInfo) -> tuple[str, Member | bytes | None, str | None]:
        """(name, Member, None) for one stored or deflated entry, its compressed bytes cut out of the archive
        (:func:`inflate` gives its content); (name, content, None) for an entry of another compression method,
        inflated here; (name, None, error) for an entry that cannot be taken out (413 when one of another method
        inflates past the sizes the directory declared)."""
        limits = self.limits
        why = unsafe_name(i.orig_filename)
        if why is not None:  # reported, never read: the name is the problem, whatever the content
            return i.orig_filename, None, why
        if i.file_size > limits.max_file_bytes:
            return i.filename, None, f"file exceeds the limit of {size_text(limits.max_file_bytes)}"
        if i.flag_bits & 0x1:
            return i.filename, None, "encrypted entries are not supported"
        if i.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            try:
                return i.filename, Member(self._compressed(i), i.compress_type, i.file_size, i.CRC), None
            except (zipfile.BadZipFile, OSError) as exc:
                return i.filename, None, f"cannot be extracted ({exc})"
        return self._inflate_other(i)

    def _compressed(self, i: zipfile.ZipInfo) -> bytes:
        """The compressed bytes of entry ``i``, found through its local header (checked as zipfile checks it)."""
        start = i.header_offset
        header = self._span(start, _LOCAL_HEADER)
        if len(header) < _LOCAL_HEADER or header[:4] != _LOCAL_SIGNATURE:
            raise zipfile.BadZipFile("bad magic number for file header")
        name_len = int.from_bytes(header[26:28], "little")
        extra_len = int.from_bytes(header[28:30], "little")
        name = self._span(start + _LOCAL_HEADER, name_len)
        if name != i.orig_filename.encode("utf-8" if i.flag_bits & 0x800 else "cp437"):
            raise zipfile.BadZipFile(f"file name in directory {i.orig_filename!r} and header {name!r} differ")
        data = self._span(start + _LOCAL_HEADER + name_len + extra_len, i.compress_size)
        if len(data) != i.compress_size:
            raise zipfile.BadZipFile("the archive ends inside the entry")
        return data

    def _span(self, offset: int, n: int) -> bytes:
        if self._data is not None:
            return bytes(memoryview(self._data)[offset:offset + n])
        fp = self._zf.fp
        if fp is None:
            raise zipfile.BadZipFile("the archive is closed")
        return os.pread(fp.fileno(), n, offset)

    def _inflate_other(self, i: zipfile.ZipInfo) -> tuple[str, bytes | None, str | None]:
        """An entry of another compression method (bzip2, lzma) inflated by zipfile, a chunk at a time, checked
        against the sizes the directory declared."""
        limits = self.limits
        try:
            buf = bytearray()
            with self._zf.open(i) as fh:
                while chunk := fh.read(CHUNK):
                    buf += chunk
                    self._inflated += len(chunk)
                    if len(buf) > max(i.file_size, 0) or self._inflated > limits.max_total_bytes:
                        raise too_large(f"{self.name}: entry {i.filename!r} inflates beyond its declared size")
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as exc:
            return i.filename, None, f"cannot be extracted ({exc})"
        return i.filename, bytes(buf), None


def extract(data: bytes, zip_name: str, limits: ZipLimits) -> list[tuple[str, bytes | None, str | None]]:
    """[(name, content, None) or (name, None, error)] in archive order; 413/400 for the whole archive."""
    archive = Archive(data, zip_name, limits)
    return inflated([archive.member(i) for i in archive.infos])
