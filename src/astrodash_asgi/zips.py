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


def extract(data: bytes, zip_name: str, limits: ZipLimits) -> list[tuple[str, bytes | None, str | None]]:
    """[(name, content, None) or (name, None, error)] in archive order; 413/400 for the whole archive."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir() and not _skipped(i.filename)]
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
    out: list[tuple[str, bytes | None, str | None]] = []
    total = 0
    for i in infos:
        why = unsafe_name(i.orig_filename)
        if why is not None:  # reported, never read: the name is the problem, whatever the content
            out.append((i.orig_filename, None, why))
            continue
        if i.file_size > limits.max_file_bytes:
            out.append((i.filename, None, f"file exceeds the limit of {size_text(limits.max_file_bytes)}"))
            continue
        if i.flag_bits & 0x1:
            out.append((i.filename, None, "encrypted entries are not supported"))
            continue
        try:
            buf = bytearray()
            with zf.open(i) as fh:
                while chunk := fh.read(CHUNK):
                    buf += chunk
                    total += len(chunk)
                    if len(buf) > max(i.file_size, 0) or total > limits.max_total_bytes:
                        raise too_large(f"{zip_name}: entry {i.filename!r} inflates beyond its declared size")
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as exc:
            out.append((i.filename, None, f"cannot be extracted ({exc})"))
            continue
        out.append((i.filename, bytes(buf), None))
    return out
