"""ZIP archives opened safely, in memory: limits on entry count, total uncompressed size and compression
ratio checked before anything is inflated, and again while inflating; ``__MACOSX/`` and dot-files skipped;
entries with unsafe names (``..`` components, absolute paths, backslashes) reported as per-file errors."""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from .errors import bad_file, too_large
from .forms import size_text

CHUNK = 1024 * 1024
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


class Archive:
    """A zip whose directory passed the whole-archive limits; entries are inflated one at a time by
    :meth:`read`, so a batch holds only the chunk it is working on."""

    def __init__(self, data: bytes | str, zip_name: str, limits: ZipLimits):
        """``data``: the archive's bytes, or the path of a file holding them."""
        self.name, self.limits = zip_name, limits
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
        """(name, content, None) or (name, None, error) for one entry; 413 when the archive inflates past the
        sizes its directory declared."""
        limits = self.limits
        why = unsafe_name(i.orig_filename)
        if why is not None:  # reported, never read: the name is the problem, whatever the content
            return i.orig_filename, None, why
        if i.file_size > limits.max_file_bytes:
            return i.filename, None, f"file exceeds the limit of {size_text(limits.max_file_bytes)}"
        if i.flag_bits & 0x1:
            return i.filename, None, "encrypted entries are not supported"
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
    return [archive.read(i) for i in archive.infos]
