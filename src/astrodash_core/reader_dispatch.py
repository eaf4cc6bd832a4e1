"""``read_spectrum``/``read_spectra``: any source (path, bytes, file object, array, Spectrum) to validated
spectra, dispatched to the reader plugin that fits.

The reader is chosen by the file's suffix and, when the suffix is missing or lies about the content, by
sniffing the first bytes: every registered reader scores the content and the best score wins.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import SpectrumReadError
from .reader_base import READER_FAILURES, SNIFF_BYTES, base_name, looks_binary
from .spectrum import Spectrum

#: A suffix's reader is trusted unless it scores the content below this.
_SUFFIX_TRUST = 0.2

#: Largest size a gzip-compressed file may expand to (a small upload must not become gigabytes in memory).
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(data: bytes, filename: str) -> tuple[bytes, str]:
    """The content of a gzip-compressed file and its name without ``.gz`` (at most MAX_DECOMPRESSED_BYTES)."""
    import zlib

    out = []
    size = 0
    rest = data
    try:
        while rest[:2] == _GZIP_MAGIC:  # concatenated gzip members are one file
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = d.decompress(rest, MAX_DECOMPRESSED_BYTES + 1 - size)
            size += len(chunk)
            out.append(chunk)
            if size > MAX_DECOMPRESSED_BYTES or d.unconsumed_tail:
                raise SpectrumReadError(f"gzip content expands to more than {MAX_DECOMPRESSED_BYTES:,} bytes",
                                        filename)
            if not d.eof:
                raise SpectrumReadError("gzip content is truncated", filename)
            rest = d.unused_data
    except zlib.error as exc:
        raise SpectrumReadError(f"corrupt gzip content ({exc})", filename) from None
    name = filename[:-3] if filename.lower().endswith(".gz") else filename
    return b"".join(out), name


def _has_suffix(reader, name: str) -> bool:
    """Whether the lower-cased file name ``name`` ends with one of ``reader``'s suffixes."""
    return bool(name) and name.endswith(reader.suffixes)


def _choose_reader(head: bytes, filename: str):
    from .plugins import get_readers

    readers = get_readers()
    name = filename.lower()
    for r in readers:  # the suffix's readers first: sniffing them alone is enough when one trusts the content
        if _has_suffix(r, name) and r.sniff(head, filename) >= _SUFFIX_TRUST:
            return r
    scores = [(r.sniff(head, filename), i, r) for i, r in enumerate(readers)]
    score, _, best = max(scores, key=lambda s: (s[0], -s[1]), default=(0.0, 0, None))
    if best is None or score <= 0:
        by_suffix = [r for r in readers if _has_suffix(r, name)]
        if by_suffix:
            return by_suffix[0]  # nothing recognises it: let the suffix's reader say what is wrong
        if looks_binary(head):
            raise SpectrumReadError("binary content that no reader recognises (not FITS, not a text table)", filename)
        raise SpectrumReadError("no reader recognises this content as a spectrum", filename)
    return best


def _from_array(arr: np.ndarray, name: str) -> Spectrum:
    if arr.ndim != 2 or (arr.shape[1] not in (2, 3) and arr.shape[0] not in (2, 3)):
        raise SpectrumReadError(f"an array source must be N x 2 or N x 3, got shape {arr.shape}", name)
    if arr.shape[1] not in (2, 3):
        arr = arr.T
    error = arr[:, 2] if arr.shape[1] == 3 else None
    return Spectrum(arr[:, 0], arr[:, 1], error, name=name, meta={"format": "array"})


def _read_file(path: str) -> bytes:
    """A file's bytes: one read of its size from the descriptor (no buffered file object), then reads up to the end
    of file (a file that grew, a pipe or a special file reports no or a wrong size)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = [os.read(fd, os.fstat(fd).st_size + 1)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 2 else b"".join(chunks)


def _load_bytes(source, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), filename or "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            return _read_file(path), filename or path
        except FileNotFoundError:
            raise SpectrumReadError("no such file", path) from None
        except IsADirectoryError:
            raise SpectrumReadError("is a directory, not a spectrum file", path) from None
        except OSError as exc:
            raise SpectrumReadError(f"cannot be opened ({exc.strerror or exc})", path) from None
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            data = data.encode()
        return bytes(data), filename or str(getattr(source, "name", "") or "<stream>")
    raise SpectrumReadError(f"cannot read a spectrum from a {type(source).__name__}", filename)


def read_spectra(source: Any, filename: str | None = None) -> list[Spectrum]:
    """Every spectrum in a source (a SNID template holds one per epoch, a catalogue JSON several).

    ``source``: a path, bytes (give ``filename`` so the suffix can help), a binary file object, an N x 2 or
    N x 3 array (wavelength, flux, error), or a Spectrum.  Raises :class:`SpectrumReadError` naming the file.
    Many sources at once: :func:`astrodash_core.reader_batch.read_many` (faster, on several threads).
    """
    direct = _direct(source, filename)
    if direct is not None:
        return direct
    reader, data, fname = _prepare(source, filename)
    try:
        spectra = reader.read(data, fname)
    except Exception as exc:  # noqa: BLE001 - _reader_error re-raises what is not a reading failure
        raise _reader_error(reader, exc, fname) from None
    return _checked(reader, spectra, fname)


def _direct(source, filename: str | None) -> list[Spectrum] | None:
    """The spectra of a source that needs no reader (a Spectrum, an array), else None."""
    if isinstance(source, Spectrum):
        return [source]
    if isinstance(source, np.ndarray) or (isinstance(source, (list, tuple)) and source and
                                          not isinstance(source[0], (bytes, bytearray))):
        return [_from_array(np.asarray(source, dtype=np.float64), base_name(filename) if filename else "array")]
    return None


def _prepare(source, filename: str | None):
    """``(reader, data, name)``: a source's bytes (decompressed), the name to report it under and the reader
    that fits it.  Raises SpectrumReadError (no such file, empty, nothing recognises it ...)."""
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], (bytes, bytearray)):
        source, filename = source
    data, fname = _load_bytes(source, filename)
    if not data or data.isspace():  # no copy: a large file is not duplicated to test it
        raise SpectrumReadError("file is empty", fname)
    choose_by = fname
    if data[:2] == _GZIP_MAGIC:
        data, choose_by = _gunzip(data, fname)
        if not data or data.isspace():  # no copy: a large file is not duplicated to test it
            raise SpectrumReadError("file is empty (after gzip decompression)", fname)
    return _choose_reader(data[:SNIFF_BYTES], choose_by), data, fname


def _reader_error(reader, exc: BaseException, fname: str) -> SpectrumReadError:
    """A reader's failure on a file as the SpectrumReadError to report; anything else (a bug) is re-raised."""
    if isinstance(exc, SpectrumReadError):
        return exc
    if isinstance(exc, READER_FAILURES):
        return SpectrumReadError(f"{reader.name} reader could not parse it ({exc})", fname)
    raise exc


def _checked(reader, spectra, fname: str) -> list[Spectrum]:
    """A reader's answer for a file, with the format and source recorded (raises when it found nothing)."""
    if not spectra:
        raise SpectrumReadError("no spectrum found", fname)
    for s in spectra:
        s.meta.setdefault("format", reader.name)
        s.meta.setdefault("source", fname)
    return spectra


def read_spectrum(source: Any, filename: str | None = None, index: int = 0) -> Spectrum:
    """One spectrum from a source (see :func:`read_spectra`); ``index`` picks among several (default first)."""
    spectra = read_spectra(source, filename)
    try:
        return spectra[index]
    except IndexError:
        name = filename or getattr(spectra[0], "name", "source")
        raise SpectrumReadError(f"holds {len(spectra)} spectra; index {index} does not exist", name) from None


__all__ = ["read_spectrum", "read_spectra"]
