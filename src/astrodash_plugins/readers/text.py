"""Text-table readers: plain ASCII columns and CSV with a header naming the columns (Cython-parsed)."""
from __future__ import annotations

import re

import numpy as np

from astrodash_core._parse import parse_table, parse_tables, sniff_lines
from astrodash_core.errors import SpectrumReadError
from astrodash_core.reader_base import READER_FAILURES, Reader, looks_binary, make_spectrum
from astrodash_core.spectrum import MAX_POINTS

_NUMBER_ROW = re.compile(rb"^\s*[-+]?(\d+\.?\d*|\.\d+)([eEdD][-+]?\d+)?[\s,;]+[-+]?(\d|\.\d|nan|NaN|inf)")
_ONE_NUMBER = re.compile(rb"^\s*[-+]?(\d+\.?\d*|\.\d+)([eEdD][-+]?\d+)?\s*$", re.M)
_REDSHIFT_COMMENT = re.compile(rb"^[#%]\s*(?:redshift|z)\s*[=:]\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)", re.I | re.M)


#: Lines of a file's head that sniffing looks at.
_SNIFF_LINES = 200


def _text_score(head: bytes) -> float:
    """How much the head of a file looks like a numeric table (fraction of data-looking lines among its first
    ``_SNIFF_LINES`` lines that are neither blank nor comments)."""
    if looks_binary(head):
        return 0.0
    if b"\r" in head:
        return _text_score_by_line(head)
    content, numeric = sniff_lines(np.frombuffer(head, dtype=np.uint8), _SNIFF_LINES)
    return numeric / content if content else 0.0


def _text_score_by_line(head: bytes) -> float:
    """:func:`_text_score` line by line (any line ends: \\n, \\r, \\r\\n)."""
    lines = [ln for ln in head.splitlines()[:_SNIFF_LINES] if ln.strip() and not ln.lstrip().startswith((b"#", b"%"))]
    if not lines:
        return 0.0
    numeric = sum(1 for ln in lines if _NUMBER_ROW.match(ln))
    return numeric / len(lines)


def _redshift_from_comments(head: bytes):
    if b"#" not in head and b"%" not in head:  # no comment line to search (most tables)
        return None
    m = _REDSHIFT_COMMENT.search(head)
    if not m:
        return None
    z = float(m.group(1))
    return z if np.isfinite(z) and z > -1 else None  # "# z = 1e999" is no redshift, not a broken file


def _check_rows(data: bytes, filename: str) -> None:
    """Refuse a table with more lines than a spectrum may have points, before parsing it (counting stops as
    soon as the limit is passed, so a huge file is refused after its first tens of megabytes)."""
    if len(data) <= MAX_POINTS:  # no more lines than bytes: nothing to count
        return
    lf = cr = 0
    step = 4 * 1024 * 1024
    for start in range(0, len(data), step):
        lf += data.count(b"\n", start, start + step)
        cr += data.count(b"\r", start, start + step)
        if max(lf, cr) > MAX_POINTS:
            raise SpectrumReadError(f"more than {MAX_POINTS:,} lines; a spectrum of at most {MAX_POINTS:,} points "
                                    "is read", filename)


def _columns_from(values: np.ndarray, counts: np.ndarray, filename: str):
    if values.shape[0] == 0:
        raise SpectrumReadError("no numeric data rows (need wavelength and flux columns)", filename)
    ncols = 3 if (counts >= 3).all() else 2
    return values[:, 0], values[:, 1], values[:, 2] if ncols == 3 else None


class AsciiReader(Reader):
    """Two or three columns (wavelength, flux, error): whitespace-aligned, tab, comma or semicolon separated."""

    name = "ascii"
    suffixes = (".dat", ".txt", ".ascii", ".asc", ".flm", ".spec", ".tab")

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.9 * _text_score(head)

    def read(self, data: bytes, filename: str):
        self._check(data, filename)
        return self._spectra(data, filename, *parse_table(np.frombuffer(data, dtype=np.uint8), 3))

    def read_many(self, items):
        """``read`` of each ``(data, filename)``, with the tables of all of them parsed in one call (which releases
        the GIL once, not once per file); a file's failure is returned in its place."""
        out: list = [None] * len(items)
        texts, where = [], []
        for k, (data, filename) in enumerate(items):
            try:
                self._check(data, filename)
            except SpectrumReadError as exc:
                out[k] = exc
                continue
            texts.append(data if isinstance(data, bytes) else bytes(data))
            where.append(k)
        for k, parsed in zip(where, parse_tables(texts, 3)):
            data, filename = items[k]
            try:
                out[k] = self._spectra(data, filename, *parsed)
            except (SpectrumReadError, *READER_FAILURES) as exc:
                out[k] = exc
        return out

    @staticmethod
    def _check(data: bytes, filename: str) -> None:
        """Refuse what is not a text table, or too long to be a spectrum, before parsing it."""
        if looks_binary(data, 65536):
            raise SpectrumReadError("binary content, not a text table", filename)
        _check_rows(data, filename)

    def _spectra(self, data: bytes, filename: str, values: np.ndarray, counts: np.ndarray, skipped: int):
        """The spectrum of a parsed table (``parse_table``'s answer for ``data``)."""
        if values.shape[0] == 0:
            if _ONE_NUMBER.search(data, 0, 1 << 20):  # the message only: a 200 MB file is not searched whole
                raise SpectrumReadError("only one numeric column; need wavelength and flux", filename)
            raise SpectrumReadError("non-numeric content: no line holds a wavelength and a flux", filename)
        wave, flux, error = _columns_from(values, counts, filename)
        return [make_spectrum(wave, flux, error, filename=filename, redshift=_redshift_from_comments(data[:8192]),
                              meta={"format": self.name, "skipped_lines": int(skipped)})]


_WAVE_NAMES = ("wavelength", "wave", "lambda", "lam", "wl", "wav", "angstrom", "loglam")
_FLUX_NAMES = ("flux", "f_lambda", "flam", "fnu", "f", "flux_density", "counts", "intensity")
_ERR_NAMES = ("error", "err", "flux_err", "fluxerr", "e_flux", "sigma", "unc", "uncertainty", "noise", "dflux",
              "flux_error", "ivar", "inverse_variance", "var", "variance")


def find_column(names: list[str], wanted: tuple[str, ...]) -> int | None:
    """Index of the first column whose (normalised) name is one of ``wanted`` or starts with one of them."""
    norm = [re.sub(r"[\s\[\]\(\)]+.*$", "", n.strip().strip('"').strip("'").lower()) for n in names]
    for w in wanted:
        if w in norm:
            return norm.index(w)
    for i, n in enumerate(norm):
        if any(n.startswith(w) and len(w) > 2 for w in wanted):
            return i
    return None


def error_from(kind: str, values: np.ndarray) -> np.ndarray:
    """An error column from error / inverse-variance / variance values (non-positive variances become NaN)."""
    k = kind.lower()
    with np.errstate(divide="ignore", invalid="ignore"):
        if k.startswith("ivar") or k.startswith("inverse"):
            return np.where(values > 0, 1.0 / np.sqrt(values), np.nan)
        if k.startswith("var"):
            return np.where(values >= 0, np.sqrt(values), np.nan)
    return values


#: Columns of a CSV header that are looked at (the parser reads at most 256 columns anyway).
_MAX_COLUMNS = 256


class CsvReader(Reader):
    """CSV (or TSV) with a header row naming the columns: wavelength, flux and optionally error or ivar."""

    name = "csv"
    suffixes = (".csv", ".tsv")

    @staticmethod
    def _header(data: bytes):
        for raw in data[:65536].splitlines():
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith(("#", "%")):
                continue
            sep = "," if "," in line else ";" if ";" in line else "\t" if "\t" in line else None
            # a header names a handful of columns: a 64 KiB "header" line of numbers is not searched in full
            return [c for c in (line.split(sep, _MAX_COLUMNS) if sep else line.split(None, _MAX_COLUMNS))][
                :_MAX_COLUMNS], sep
        return None, None

    def sniff(self, head: bytes, filename: str) -> float:
        if looks_binary(head):
            return 0.0
        names, _ = self._header(head)
        if not names or find_column(names, _WAVE_NAMES) is None or find_column(names, _FLUX_NAMES) is None:
            return 0.0
        return 0.95

    def read(self, data: bytes, filename: str):
        if looks_binary(data, 65536):
            raise SpectrumReadError("binary content, not a CSV table", filename)
        _check_rows(data, filename)
        names, _ = self._header(data)
        if not names:
            raise SpectrumReadError("no header row", filename)
        iw, i_f = find_column(names, _WAVE_NAMES), find_column(names, _FLUX_NAMES)
        if iw is None or i_f is None:
            # no named header: treat as a plain table
            return AsciiReader().read(data, filename)
        ie = find_column(names, _ERR_NAMES)
        ncols = min(256, max(iw, i_f, ie if ie is not None else 0) + 1)
        values, counts, skipped = parse_table(np.frombuffer(data, dtype=np.uint8), max(2, ncols))
        if values.shape[0] == 0:
            raise SpectrumReadError("no numeric data rows under the header", filename)
        keep = counts >= max(iw, i_f) + 1
        values = values[keep]
        if values.shape[0] == 0:
            raise SpectrumReadError(f"no row has values in both the {names[iw]!r} and {names[i_f]!r} columns",
                                    filename)
        wave = values[:, iw]
        meta = {"format": self.name, "columns": [n.strip() for n in names]}
        if names[iw].strip().lower().startswith("loglam"):
            wave = 10.0 ** wave
        error = error_from(names[ie].strip(), values[:, ie]) if ie is not None else None
        return [make_spectrum(wave, values[:, i_f], error, filename=filename, meta=meta,
                              redshift=_redshift_from_comments(data[:8192]))]
