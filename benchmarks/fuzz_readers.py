"""Fuzzing campaign over every spectrum reader: each input is read or raises SpectrumReadError naming the file.

Inputs come from two sources:

- byte-level mutation of real files (``../shared/data/real``, ``examples/``, SNID templates) and of FITS, JSON
  and CSV seeds written here with astropy: truncation, bit flips, byte insertions and deletions, numbers
  replaced by NaN/inf/huge/tiny/malformed values, wrong separators, BOMs (UTF-8, UTF-16), CRLF and CR line
  ends, NUL bytes, long lines, gzip wrapping and truncated gzip, FITS header cards broken (sizes, types,
  WCS, units, missing END), deeply nested and enormous JSON, and 10^7-row text files;
- hypothesis strategies that build text tables, CSV headers, OSC JSON documents and FITS headers from scratch.

Each input runs in a worker process; the parent restarts a worker that dies (a segfault, a hang past a minute)
and records the input that killed it.  An input *fails* when

- it raises anything but ``SpectrumReadError``, or a ``SpectrumReadError`` whose ``filename`` is not the file's;
- it returns spectra that break the Spectrum invariants (wavelength finite, positive, strictly increasing,
  flux finite, at least 10 points);
- it takes more than ``--time-limit`` seconds of CPU time (the process's own, so a worker starved by other
  work on a shared machine is not blamed; re-timed, best of three, before it counts);
- reading it raises the worker's resident memory more than ``--memory-limit-mb`` above what it was before
  (Linux peak RSS, reset before each input, so C allocations count; the input's own bytes are not counted;
  tracemalloc's peak where /proc is not available).

Usage::

    nice -n 10 python benchmarks/fuzz_readers.py --inputs 100000 --out runs/fuzz

prints the counts per outcome and per mutation, and writes every failing input to ``--out`` with a JSON
report (``report.json``).  ``tests/test_fuzz_readers.py`` runs a short version of the same engine.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing as mp
import random
import re
import sys
import time
import tracemalloc
import traceback
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
TEMPLATES = REPO.parent / "shared" / "data" / "templates"
EXAMPLES = REPO / "examples"

#: A read still running after this many seconds is stopped (in the worker, by an alarm) and counted as hung.
HANG_SECONDS = 30.0

#: Largest input made by mutation (duplicated lines compound: an uncapped one reached 2 GB).
MAX_INPUT_BYTES = 400 * 1024 * 1024

#: Every how many mutation inputs one is a 10^7-row text file (they take ~1 s each to build and read).
BIG_EVERY = 5000


# ---- seeds ------------------------------------------------------------------------------------------------

def _fits_bytes(hdul) -> bytes:
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def generated_seeds() -> list[tuple[str, bytes]]:
    """FITS, JSON and CSV seeds in every layout the readers know, written here with astropy."""
    import warnings

    from astropy.io import fits
    from astropy.table import Table

    out = []
    n = 600
    lam = np.linspace(3500.0, 9500.0, n)
    flux = 1.0 + 0.3 * np.sin(lam / 300.0)

    def image(data, **cards):
        h = fits.PrimaryHDU(np.asarray(data))
        h.header.update(cards)
        return fits.HDUList([h])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.append(("linear.fits", _fits_bytes(image(flux, CTYPE1="WAVE", CRVAL1=3500.0, CDELT1=10.0, CRPIX1=1.0,
                                                     CUNIT1="Angstrom", BUNIT="erg/s/cm2/A", REDSHIFT=0.02))))
        out.append(("log.fits", _fits_bytes(image(flux, CTYPE1="WAVE-LOG", CRVAL1=3500.0, CDELT1=3.0, CRPIX1=1.0,
                                                  CUNIT1="Angstrom"))))
        out.append(("iraf.fits", _fits_bytes(image(flux, CRVAL1=3.55, CD1_1=1e-4, CRPIX1=1.0, **{"DC-FLAG": 1}))))
        out.append(("freq.fits", _fits_bytes(image(flux, CTYPE1="FREQ", CRVAL1=4e14, CDELT1=5e11, CUNIT1="Hz",
                                                   BUNIT="erg/s/cm2/Hz"))))
        stack = np.vstack([flux, flux * 0.1, flux * 0.05])
        out.append(("multispec.fits", _fits_bytes(image(stack, CRVAL1=4000.0, CDELT1=5.0, BANDID3="sigma"))))
        out.append(("stack3d.fits", _fits_bytes(image(stack[:, None, :], CRVAL1=4000.0, CDELT1=5.0))))
        t = Table({"WAVELENGTH": lam, "FLUX": flux, "ERR": flux * 0.05})
        t["WAVELENGTH"].unit = "nm"
        out.append(("table.fits", _fits_bytes(fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(t)]))))
        sdss = Table({"flux": flux.astype(np.float32), "loglam": np.log10(lam).astype(np.float32),
                      "ivar": np.full(n, 4.0, np.float32), "and_mask": np.zeros(n, np.int32)})
        out.append(("spec-sdss.fits", _fits_bytes(fits.HDUList([
            fits.PrimaryHDU(), fits.BinTableHDU(sdss, name="COADD"),
            fits.BinTableHDU(Table({"Z": [0.05]}), name="SPECOBJ")]))))
        hdus = [fits.PrimaryHDU()]
        for cam, lo in (("B", 3600.0), ("R", 5700.0)):
            w = lo + 0.8 * np.arange(300)
            hdus += [fits.ImageHDU(w, name=f"{cam}_WAVELENGTH"), fits.ImageHDU(np.ones((2, 300)), name=f"{cam}_FLUX"),
                     fits.ImageHDU(np.full((2, 300), 9.0), name=f"{cam}_IVAR")]
        out.append(("desi.fits", _fits_bytes(fits.HDUList(hdus))))
        sci = fits.ImageHDU(flux, name="SCI")
        sci.header.update(CTYPE1="AWAV", CRVAL1=3.5e-7, CDELT1=1e-9, CUNIT1="m")
        out.append(("mef.fits", _fits_bytes(fits.HDUList([fits.PrimaryHDU(np.ones((8, 8))), sci,
                                                          fits.ImageHDU(flux * 0.1, name="ERR")]))))
        comp = fits.CompImageHDU(flux.astype(np.float32))
        comp.header.update(CTYPE1="WAVE", CRVAL1=3500.0, CDELT1=10.0, CUNIT1="Angstrom")
        out.append(("comp.fits.fz", _fits_bytes(fits.HDUList([fits.PrimaryHDU(), comp]))))
        out.append(("linear.fits.gz", gzip.compress(out[0][1], mtime=0)))
    rows = [[float(a), float(b), float(b) * 0.05] for a, b in zip(lam[::3], flux[::3])]
    osc = {"SN2099zz": {"redshift": [{"value": "0.031"}],
                        "spectra": [{"data": [[str(v) for v in r] for r in rows], "u_wavelengths": "Angstrom",
                                     "u_fluxes": "erg/s/cm^2/Angstrom", "time": "58000"},
                                    {"data": [[str(v) for v in r[:2]] for r in rows], "u_wavelengths": "nm"}]}}
    out.append(("osc.json", json.dumps(osc).encode()))
    out.append(("table.csv", ("wavelength,flux,flux_err\n" + "\n".join(
        f"{a:.3f},{b:.5g},{b * 0.05:.3g}" for a, b in zip(lam, flux))).encode()))
    out.append(("ivar.csv", ("# z = 0.1\nloglam;flux;ivar\n" + "\n".join(
        f"{np.log10(a):.6f};{b:.5g};25" for a, b in zip(lam, flux))).encode()))
    return out


def load_seeds(max_real: int | None = 300, seed: int = 0) -> list[tuple[str, bytes]]:
    """Real files (a fixed sample), the examples, SNID and superfit templates, and the generated seeds."""
    rng = random.Random(seed)
    seeds: list[tuple[str, bytes]] = []
    if REAL.is_dir():
        real = sorted(p for p in REAL.iterdir() if p.is_file() and p.suffix in (".dat", ".csv", ".txt"))
        if max_real is not None and len(real) > max_real:
            real = sorted(rng.sample(real, max_real))
        seeds += [(p.name, p.read_bytes()) for p in real]
    if EXAMPLES.is_dir():
        seeds += [(p.name, p.read_bytes()) for p in sorted(EXAMPLES.iterdir()) if p.suffix in (".dat", ".fits")]
    if TEMPLATES.is_dir():
        lnw = sorted(TEMPLATES.rglob("*.lnw"))
        seeds += [(p.name, p.read_bytes()) for p in (rng.sample(lnw, min(20, len(lnw))) if lnw else [])]
        dat = sorted(TEMPLATES.rglob("*.dat"))
        seeds += [(p.name, p.read_bytes()) for p in (rng.sample(dat, min(10, len(dat))) if dat else [])]
    return seeds + generated_seeds()


# ---- mutations -----------------------------------------------------------------------------------------------

_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?")
_SPECIALS = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e308", b"-1e308", b"1e999", b"1e-320", b"5e-324",
             b"0", b"-0", b"0.0", b"1e-300", b"9" * 400, b"1." + b"0" * 500 + b"1", b"--1", b"1e", b"1.2.3", b"0x1p3",
             b"1_000", b"\xd9\xa1\xd9\xa2", b"", b"1,5", b"+", b".", b"e5", b"1d400", b"NULL", b"null", b"-",
             b"1e+308", b"-nan", b"+inf", b"4000.0", b"1e10", b"1e-10"]
_SEPARATORS = [b" ", b"\t", b",", b";", b"|", b":", b", ", b";;", b"  \t ", b"\x0b", b"\x0c", b"\xc2\xa0", b"/"]
_BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"]
_FITS_KEYS = [b"NAXIS", b"NAXIS1", b"NAXIS2", b"NAXIS3", b"BITPIX", b"CRVAL1", b"CDELT1", b"CD1_1", b"CRPIX1",
              b"CTYPE1", b"CUNIT1", b"BUNIT", b"DC-FLAG", b"TFIELDS", b"TFORM1", b"TFORM2", b"TTYPE1", b"TTYPE2",
              b"TUNIT1", b"TUNIT2", b"PCOUNT", b"GCOUNT", b"EXTNAME", b"XTENSION", b"BSCALE", b"BZERO", b"REDSHIFT",
              b"Z", b"ZIMAGE", b"ZCMPTYPE", b"ZBITPIX", b"ZNAXIS1", b"ZTILE1", b"COEFF0", b"COEFF1", b"BANDID1",
              b"THEAP", b"TDIM1", b"SIMPLE", b"EXTEND", b"END", b"TNULL1", b"TSCAL1", b"TZERO1"]
_FITS_VALUES = [b"0", b"1", b"-1", b"2", b"3", b"8", b"16", b"-32", b"-64", b"7", b"999999999", b"2147483647",
                b"-2147483648", b"9223372036854775807", b"1E300", b"-1E300", b"1E-300", b"NaN", b"'NaN'", b"T", b"F",
                b"'WAVE-LOG'", b"'WAVE'", b"'FREQ'", b"'VRAD'", b"'AWAV-LOG'", b"'WAVE-TAB'", b"'WAVE-F2W'",
                b"'XXXX-YYY'", b"'LINEAR'", b"'LOG-LINEAR'", b"'RA---TAN'", b"'Angstrom'", b"'nm'", b"'Hz'",
                b"'m/s'", b"'erg/s/cm2/Hz'", b"'Jy'", b"'blah'", b"'1E-17 erg/cm^2/s/Ang'", b"'100000D'",
                b"'1PE(10)'", b"'E'", b"'J'", b"'A'", b"'Q'", b"'X'", b"''", b"'", b"(1, 2)", b"4.0E3", b"3.6",
                b"'BINTABLE'", b"'IMAGE   '", b"'RICE_1'", b"'GZIP_1'", b"'HCOMPRESS_1'", b"'PLIO_1'",
                b"'(1,1,1)'", b"'(99999999)'", b"1e999", b"'" + b"x" * 70]


def _replace_numbers(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(max(1, len(data) - 20_000))
    matches = list(_NUMBER.finditer(data, start, start + 20_000))
    if not matches:
        return data
    chosen = rng.sample(matches, min(len(matches), rng.choice([1, 1, 2, 5, 20, 200])))
    chosen.sort(key=lambda m: m.start(), reverse=True)
    out = bytearray(data)
    for m in chosen:
        out[m.start():m.end()] = rng.choice(_SPECIALS)
    return bytes(out)


def _all_numbers_to(rng: random.Random, data: bytes) -> bytes:
    value = rng.choice(_SPECIALS[:12])
    lines = data.split(b"\n")
    col = rng.randrange(3)

    def fix(line):
        parts = line.split()
        if len(parts) > col and _NUMBER.fullmatch(parts[col]):
            parts[col] = value
            return b" ".join(parts)
        return line

    return b"\n".join(fix(ln) if rng.random() < 0.7 else ln for ln in lines)


def _lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    op = rng.randrange(7)
    if op == 0 and len(lines) > 2:
        rng.shuffle(lines)
    elif op == 1:
        k = rng.randrange(len(lines))
        lines[k:k] = [lines[k]] * rng.choice([2, 100, 10000])
    elif op == 2:
        lines = [ln for ln in lines if rng.random() < 0.5]
    elif op == 3:
        lines = [b" ".join(ln.split()[::-1]) for ln in lines]
    elif op == 4:
        lines = [b" ".join(ln.split()[:1]) for ln in lines]
    elif op == 5:
        lines = [ln + b" " + b" ".join([b"1.0"] * rng.choice([5, 60, 300])) for ln in lines]
    else:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice([b"wave flux err", b"wavelength,flux", b"# z = 0.1",
                                                                 b"#" * 5000, b"x" * 100000, b"\x00" * 10,
                                                                 b"lambda;flux;ivar", b"% z: 1e999"]))
    return b"\n".join(lines)


def _fits_card(rng: random.Random, data: bytes) -> bytes:
    """Break a header card of a FITS file: a size, a type, a WCS keyword, a unit, the END card."""
    out = bytearray(data)
    header_cards = [i for i in range(0, min(len(data), 2880 * 40), 80)
                    if data[i:i + 8].rstrip() in {k for k in _FITS_KEYS}]
    if not header_cards:
        return data
    for _ in range(rng.choice([1, 1, 2, 3])):
        i = rng.choice(header_cards)
        key = bytes(out[i:i + 8])
        if key.rstrip() == b"END":
            out[i:i + 3] = b"   "
            continue
        if rng.random() < 0.15:  # insert a new card instead, right after
            newkey = rng.choice(_FITS_KEYS).ljust(8)[:8]
            card = (newkey + b"= " + rng.choice(_FITS_VALUES).rjust(20)).ljust(80)[:80]
            out[i:i + 80] = card
            continue
        card = (key + b"= " + rng.choice(_FITS_VALUES).rjust(20)).ljust(80)[:80]
        out[i:i + 80] = card
    return bytes(out)


def _bitflip(rng: random.Random, data: bytes, region: int | None = None) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    span = min(len(out), region) if region else len(out)
    for _ in range(rng.choice([1, 1, 2, 4, 16, 64])):
        k = rng.randrange(span)
        out[k] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    if len(data) < 2:
        return data
    if data.startswith(b"SIMPLE") and rng.random() < 0.5:
        blocks = max(1, len(data) // 2880)
        return data[:2880 * rng.randrange(blocks) + rng.choice([0, 0, 1, 80, 2879])]
    return data[:rng.randrange(len(data))]


def _bytes_edit(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 3, 10])):
        k = rng.randrange(len(out) + 1)
        op = rng.randrange(3)
        if op == 0:
            out[k:k] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 80])))
        elif op == 1:
            del out[k:k + rng.choice([1, 10, 1000])]
        else:
            out[k:k] = out[max(0, k - 500):k]
    return bytes(out)


def _encoding(rng: random.Random, data: bytes) -> bytes:
    op = rng.randrange(6)
    if op == 0:
        return rng.choice(_BOMS) + data
    if op == 1:
        return data.replace(b"\n", b"\r\n")
    if op == 2:
        return data.replace(b"\n", b"\r")
    if op == 3:
        try:
            return b"\xff\xfe" + data.decode("latin-1").encode("utf-16-le")
        except UnicodeError:
            return data
    if op == 4:
        return data.replace(b" ", rng.choice(_SEPARATORS))
    return re.sub(rb"[ \t,;]+", rng.choice(_SEPARATORS), data)


def _wrap(rng: random.Random, data: bytes) -> bytes:
    op = rng.randrange(4)
    if op == 0:
        return gzip.compress(data, compresslevel=1, mtime=0)
    if op == 1:
        z = gzip.compress(data, compresslevel=1, mtime=0)
        return z[:rng.randrange(2, max(3, len(z)))]
    if op == 2:
        return _bitflip(rng, gzip.compress(data, compresslevel=1, mtime=0))
    return gzip.compress(gzip.compress(data, compresslevel=1, mtime=0), mtime=0)


def _json_abuse(rng: random.Random, data: bytes) -> bytes:
    op = rng.randrange(8)
    if op == 0:
        depth = rng.choice([100, 1000, 100_000, 1_000_000])
        return b"[" * depth + b"]" * depth
    if op == 1:
        depth = rng.choice([100, 10_000, 200_000])
        return b'{"a":' * depth + b"1" + b"}" * depth
    if op == 2:
        rows = rng.choice([1000, 100_000, 1_000_000])
        body = b",".join(b'["%d","1.5"]' % (4000 + k) for k in range(rows))
        return b'{"SN":{"spectra":[{"data":[' + body + b"]}]}}"
    if op == 3:  # many objects and spectra, each small
        one = b'{"data":[[4000,1],[4001,2]]}'
        return b'{"SN":{"spectra":[' + b",".join([one] * rng.choice([10, 10_000, 200_000])) + b"]}}"
    if op == 4:
        return b'{"SN":{"spectra":[{"data":[[' + b",".join([b"[1]"] * 1000) + b"]]}]}}"
    if op == 5:
        weird = rng.choice([b"null", b"true", b'"x"', b"[]", b"{}", b"1e999", b"-1e999", b'[null,null]',
                            b'[[1,2],[3]]', b'[["a","b"]]', b'[[1e308,1e308,1e308]]', b'{"data":1}', b"NaN",
                            b'[[4000,NaN],[4001,Infinity]]', b'"' + b"\\u0000" * 1000 + b'"'])
        return b'{"SN":{"spectra":[{"data":' + weird + b', "u_wavelengths": ' + rng.choice(
            [b'"nm"', b'"Hz"', b'1', b'null', b'["A"]', b'"' + b"A/" * 1000 + b'"', b'"erg/s"']) + b"}]}}"
    if op == 6:
        return b'{"SN":{"spectra":"' + b"x" * rng.choice([10, 10_000_000]) + b'"}}'
    return data.replace(b'"', b"'") if rng.random() < 0.5 else data.replace(b"]", b"", 1)


_BIG_CACHE: dict[int, bytes] = {}


def big_table(rows: int = 10_000_000) -> bytes:
    """A text table of ``rows`` rows (built once per process)."""
    if rows not in _BIG_CACHE:
        k = np.arange(rows)
        wave = np.char.mod(b"%d", 3000 + k)
        _BIG_CACHE[rows] = b"\n".join(wave.astype(bytes).tolist()).replace(b"\n", b" 1\n") + b" 1\n"
    return _BIG_CACHE[rows]


MUTATORS = {
    "truncate": _truncate, "bitflip": _bitflip, "bitflip-header": lambda r, d: _bitflip(r, d, 2880 * 2),
    "bytes": _bytes_edit, "numbers": _replace_numbers, "column-special": _all_numbers_to, "lines": _lines,
    "encoding": _encoding, "gzip": _wrap, "fits-card": _fits_card, "json": _json_abuse,
}


def make_input(seeds, index: int, seed: int) -> tuple[str, bytes, str]:
    """Input number ``index`` of a campaign: (file name, content, what was done).  Deterministic."""
    rng = random.Random(seed * 1_000_003 + index)
    if index % BIG_EVERY == BIG_EVERY - 1:
        kind = rng.choice(["big-dat", "big-crlf", "big-nosuffix"])
        data = big_table()
        if kind == "big-crlf":
            data = data[:len(data) // 2].replace(b"\n", b"\r\n")
        return ("big.dat" if kind != "big-nosuffix" else "big"), data, kind
    name, data = seeds[rng.randrange(len(seeds))]
    if name.endswith(".json") or rng.random() < 0.02:
        names = ["json"] + [k for k in MUTATORS if k != "json"]
        weights = [5] + [1] * (len(names) - 1)
    elif data.startswith(b"SIMPLE") or name.endswith(".gz"):
        names = ["fits-card", "bitflip-header", "truncate", "bitflip", "bytes", "gzip"]
        weights = [6, 3, 2, 1, 1, 1]
    else:
        names = ["numbers", "column-special", "lines", "encoding", "truncate", "bitflip", "bytes", "gzip"]
        weights = [4, 2, 3, 3, 2, 2, 2, 1]
    applied = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        mut = rng.choices(names, weights)[0]
        if data.startswith(b"\x1f\x8b") and mut != "gzip" and rng.random() < 0.5:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error):
                pass
        data = MUTATORS[mut](rng, data)[:MAX_INPUT_BYTES]
        applied.append(mut)
    roll = rng.random()
    if roll < 0.1:
        name = "noext"
    elif roll < 0.15:
        name = rng.choice(["x.fits", "x.dat", "x.csv", "x.json", "x.lnw", "x.fits.gz", "x.fz", "x.txt"])
    return name, data, "+".join(applied)


# ---- hypothesis inputs ------------------------------------------------------------------------------------------

def hypothesis_inputs():
    """A hypothesis strategy of (file name, content, kind) built from scratch: tables, CSV, JSON, FITS headers."""
    from hypothesis import strategies as st

    floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=3000, max_value=10000),
                       st.sampled_from([0.0, -0.0, 1e-320, 5e-324, 1e308, -1e308]))
    token = st.one_of(floats.map(lambda x: repr(x).encode()), st.sampled_from(_SPECIALS),
                      st.binary(max_size=6), st.text(max_size=6).map(lambda s: s.encode("utf-8", "replace")))
    sep = st.sampled_from(_SEPARATORS + [b"\t\t", b" , "])
    eol = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"])
    row = st.tuples(st.lists(token, min_size=0, max_size=5), sep).map(lambda t: t[1].join(t[0]))

    @st.composite
    def table(draw):
        rows = draw(st.lists(row, max_size=60))
        if draw(st.booleans()):  # mostly-good rows around the junk, so the reader gets far
            start = draw(st.floats(min_value=1, max_value=20000, allow_nan=False))
            good = [f"{start + 5 * k:.3f} {draw(floats)!r}".encode() for k in range(draw(st.integers(0, 40)))]
            rows = good + rows if draw(st.booleans()) else rows + good
        head = draw(st.sampled_from([b"", b"# wave flux\n", b"\xef\xbb\xbf", b"wavelength,flux,err\n",
                                     b"loglam;flux;ivar\n", b"# z = 0.05\n", b"% redshift: 1e999\n"]))
        name = draw(st.sampled_from(["t.dat", "t.csv", "t.txt", "noext", "t.json", "t.fits", "t.lnw"]))
        return name, head + draw(eol).join(rows), "hyp-table"

    json_value = st.recursive(
        st.one_of(st.none(), st.booleans(), floats, st.text(max_size=5)),
        lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(st.text(max_size=5), children,
                                                                                   max_size=4)),
        max_leaves=40)

    @st.composite
    def osc(draw):
        spectra = draw(st.lists(st.fixed_dictionaries(
            {"data": st.one_of(st.lists(st.lists(st.one_of(floats, st.text(max_size=4), st.none()),
                                                 min_size=0, max_size=4), max_size=40), json_value)},
            optional={"u_wavelengths": st.one_of(st.sampled_from(["Angstrom", "nm", "Hz", "um", "m/s", "", "A"]),
                                                 json_value),
                      "u_fluxes": st.one_of(st.sampled_from(["erg/s/cm^2/Angstrom", "Jy", "Uncalibrated"]),
                                            json_value),
                      "redshift": json_value}), max_size=3))
        doc = {draw(st.text(max_size=8)): {"spectra": spectra, "redshift": draw(json_value)}}
        try:
            text = json.dumps(doc, allow_nan=True).encode()
        except (ValueError, TypeError):
            text = b"{}"
        return draw(st.sampled_from(["o.json", "noext", "o.dat"])), text, "hyp-json"

    card_key = st.sampled_from([k.decode() for k in _FITS_KEYS if k not in (b"SIMPLE", b"END")])
    card_val = st.one_of(st.sampled_from([v.decode("latin-1") for v in _FITS_VALUES]),
                         st.integers(-10 ** 12, 10 ** 12).map(str), floats.map(lambda x: repr(x).upper()))

    @st.composite
    def fits_header(draw):
        naxis1 = draw(st.integers(0, 3000))
        bitpix = draw(st.sampled_from([8, 16, 32, 64, -32, -64]))
        cards = [("SIMPLE", "T"), ("BITPIX", str(bitpix)), ("NAXIS", "1"), ("NAXIS1", str(naxis1))]
        cards += draw(st.lists(st.tuples(card_key, card_val), max_size=12))
        header = b"".join(f"{k:<8}= {v:>20}".encode("latin-1", "replace").ljust(80)[:80] for k, v in cards)
        header += b"END".ljust(80)
        header = header.ljust(-(-len(header) // 2880) * 2880)
        nbytes = naxis1 * abs(bitpix) // 8
        body = draw(st.sampled_from(["zeros", "random", "short", "none"]))
        if body == "zeros":
            payload = bytes(nbytes)
        elif body == "random":
            payload = draw(st.binary(min_size=min(nbytes, 64), max_size=min(nbytes, 64))) * (nbytes // 64 + 1)
            payload = payload[:nbytes]
        elif body == "short":
            payload = bytes(nbytes // 2)
        else:
            payload = b""
        payload = payload.ljust(-(-len(payload) // 2880) * 2880, b"\0")
        return draw(st.sampled_from(["h.fits", "noext", "h.fits.fz"])), header + payload, "hyp-fits"

    return st.one_of(table(), osc(), fits_header())


# ---- running one input ------------------------------------------------------------------------------------------

def _invariants(spectra) -> str | None:
    from astrodash_core.spectrum import MIN_POINTS, Spectrum

    if not isinstance(spectra, list) or not spectra:
        return f"returned {type(spectra).__name__} {spectra!r:.80}, not a non-empty list of Spectrum"
    for s in spectra:
        if not isinstance(s, Spectrum):
            return f"returned a {type(s).__name__}, not a Spectrum"
        w, f = s.wave, s.flux
        if w.ndim != 1 or w.size != f.size or w.size < MIN_POINTS:
            return f"shape: wave {w.shape}, flux {f.shape}"
        if not (np.isfinite(w).all() and (w > 0).all() and (np.diff(w) > 0).all()):
            return "wavelengths not finite, positive and strictly increasing"
        if not np.isfinite(f).all():
            return "flux not finite"
        if s.error is not None and (s.error.shape != f.shape or (s.error[np.isfinite(s.error)] <= 0).any()):
            return "error column of the wrong shape or not positive"
    return None


def _peak_rss_reset() -> int | None:
    """Reset the process's peak resident size (Linux ``clear_refs``) and return the current size in bytes, or
    None where that is not available."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status("VmRSS")
    except OSError:
        return None


def _status(key: str) -> int:
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(key.encode()):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


class _Hang(BaseException):
    """Raised by the alarm in a read that runs past the hang limit (a BaseException: readers' ``except
    Exception`` does not swallow it)."""


def _alarm(signum, frame):
    raise _Hang()


def run_one(name: str, data: bytes, *, measure: bool = True, hang_seconds: float | None = None
            ) -> tuple[str, str, float, int]:
    """(outcome, detail, seconds, peak bytes) of reading one input: read / rejected / crash / bad-error /
    invalid-spectrum.  With ``measure``, the peak is how far the process's resident memory rose above what it
    was before the read (Linux peak RSS, reset per input: C allocations included), or where that is not
    available tracemalloc's peak of the read alone."""
    from astrodash_core import SpectrumReadError
    from astrodash_core import read_spectra

    rss_before = _peak_rss_reset() if measure else None
    if measure and rss_before is None:
        tracemalloc.start()
    if hang_seconds:
        import signal

        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, hang_seconds)
    t0 = time.process_time()
    try:
        try:
            spectra = read_spectra(data, filename=name)
        finally:
            if hang_seconds:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Hang:
        outcome, detail = "hung", f"still reading after {hang_seconds} s"
        spectra = None
    except SpectrumReadError as exc:
        outcome, detail = ("rejected", str(exc)) if exc.filename == name and name in str(exc) else (
            "bad-error", f"SpectrumReadError not naming {name!r}: {exc}")
    except RecursionError as exc:
        outcome, detail = "crash", f"RecursionError: {str(exc)[:200]}"
    except Exception as exc:  # anything else is the failure the campaign looks for
        outcome, detail = "crash", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]
    else:
        problem = _invariants(spectra)
        outcome, detail = ("invalid-spectrum", problem) if problem else ("read", "")
        del spectra
    seconds = time.process_time() - t0
    peak = 0
    if measure and rss_before is not None:
        peak = max(0, _status("VmHWM") - rss_before)
    elif measure:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, detail, seconds, peak


def judge(name: str, data: bytes, time_limit: float, memory_limit: int) -> dict:
    """One input, measured: outcome plus 'slow'/'memory' flags (a slow one is re-timed, best of three)."""
    outcome, detail, seconds, peak = run_one(name, data, hang_seconds=HANG_SECONDS)
    flags = []
    if seconds > time_limit and outcome != "hung":
        seconds = min(run_one(name, data, measure=False)[2] for _ in range(3))
        if seconds > time_limit:
            flags.append("slow")
    if peak > memory_limit:
        flags.append("memory")
    return {"outcome": outcome, "detail": detail, "seconds": seconds, "peak": peak, "flags": flags}


# ---- the worker and the supervisor ------------------------------------------------------------------------------

def _limit_address_space(mb: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mb * 1024 * 1024, mb * 1024 * 1024))
    except (ImportError, ValueError, OSError):
        pass


def _warm_up():
    from astrodash_core import read_spectra

    for name, data in generated_seeds():
        read_spectra(data, filename=name)


def _worker(conn, cfg: dict) -> None:
    """Reads jobs from ``conn``: ("mut", index) or ("hyp", batch); answers one result dict per input."""
    _limit_address_space(cfg["address_space_mb"])
    import warnings

    warnings.simplefilter("ignore")
    seeds = load_seeds(cfg["max_real"], cfg["seed"])
    _warm_up()
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, arg = job
        if kind == "mut":
            name, data, how = make_input(seeds, arg, cfg["seed"])
            conn.send([dict(judge(name, data, cfg["time_limit"], cfg["memory_limit"]), index=arg, how=how,
                            name=name, size=len(data))])
        else:
            conn.send(_hypothesis_batch(arg, cfg))


def _hypothesis_batch(batch: int, cfg: dict) -> list[dict]:
    from hypothesis import HealthCheck, given, seed as hyp_seed, settings

    results: list[dict] = []

    @hyp_seed(cfg["seed"] * 7919 + batch)
    @settings(max_examples=cfg["hyp_batch"], database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(hypothesis_inputs())
    def check(case):
        name, data, how = case
        r = judge(name, data, cfg["time_limit"], cfg["memory_limit"])
        if r["outcome"] not in ("read", "rejected") or r["flags"]:
            r["data"] = data.hex() if len(data) < 200_000 else None
        results.append(dict(r, index=f"hyp{batch}.{len(results)}", how=how, name=name, size=len(data)))

    check()
    return results


def campaign(n_inputs: int, *, seed: int = 1, hyp_fraction: float = 0.2, time_limit: float = 1.0,
             memory_limit_mb: int = 200, max_real: int | None = 300, out: Path | None = None,
             hang_seconds: float = 2 * HANG_SECONDS, address_space_mb: int = 4096, progress: bool = True) -> dict:
    """Run ``n_inputs`` inputs (a ``hyp_fraction`` of them from hypothesis) in a supervised worker process."""
    cfg = {"seed": seed, "time_limit": time_limit, "memory_limit": memory_limit_mb * 1024 * 1024,
           "max_real": max_real, "hyp_batch": 500, "address_space_mb": address_space_mb}
    n_hyp_batches = int(n_inputs * hyp_fraction) // cfg["hyp_batch"]
    n_mut = n_inputs - n_hyp_batches * cfg["hyp_batch"]
    jobs = [("mut", i) for i in range(n_mut)]
    step = max(1, len(jobs) // (n_hyp_batches + 1))
    for b in range(n_hyp_batches):  # interleaved so a stopped run has some of both
        jobs.insert((b + 1) * step + b, ("hyp", b))
    ctx = mp.get_context("spawn")
    outcomes: Counter = Counter()
    by_how: dict[str, Counter] = {}
    failures: list[dict] = []
    slowest: list[tuple[float, str, str]] = []
    biggest: list[tuple[int, str, str]] = []
    seeds_for_saving = None
    t_start = time.time()
    done = 0
    proc = conn = None

    def start():
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, cfg), daemon=True)
        p.start()
        return p, parent

    def record(r):
        nonlocal done, seeds_for_saving
        done += 1
        label = r["outcome"] if not r["flags"] else f"{r['outcome']}+{'+'.join(r['flags'])}"
        outcomes[label] += 1
        how = r["how"].split("+")[0] if not r["how"].startswith("big") else r["how"]
        by_how.setdefault(how, Counter())[r["outcome"]] += 1
        slowest.append((r["seconds"], str(r["index"]), r["how"]))
        biggest.append((r["peak"], str(r["index"]), r["how"]))
        if len(slowest) > 200:
            slowest.sort(reverse=True)
            del slowest[20:]
            biggest.sort(reverse=True)
            del biggest[20:]
        if r["outcome"] not in ("read", "rejected") or r["flags"]:
            r = {k: v for k, v in r.items()}
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                data = None
                if isinstance(r["index"], int):
                    if seeds_for_saving is None:
                        seeds_for_saving = load_seeds(max_real, seed)
                    try:
                        data = make_input(seeds_for_saving, r["index"], seed)[1]
                    except MemoryError:
                        data = None
                elif r.get("data"):
                    data = bytes.fromhex(r["data"])
                if data is not None:
                    path = out / f"fail_{r['index']}_{r['name'].replace('/', '_')}"
                    path.write_bytes(data)
                    r["file"] = str(path)
            r.pop("data", None)
            failures.append(r)

    import signal

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)  # a stopped campaign still writes its report
    stopped = False
    try:
        proc, conn = start()
        for job in jobs:
            if not proc.is_alive():
                proc, conn = start()
            conn.send(job)
            if conn.poll(hang_seconds if job[0] == "mut" else 20 * hang_seconds):
                try:
                    results = conn.recv()
                except EOFError:
                    results = None
            else:
                results = None
            if results is None:  # the worker died or hung on this input
                code = proc.exitcode
                proc.kill()
                proc.join()
                r = {"outcome": "died" if code is not None else "hung", "detail": f"exit code {code}",
                     "seconds": 0.0, "peak": 0, "flags": [], "index": job[1] if job[0] == "mut" else f"hyp{job[1]}",
                     "how": "?" if job[0] == "hyp" else "?", "name": "?", "size": 0}
                if job[0] == "mut":
                    seeds_for_saving = seeds_for_saving or load_seeds(max_real, seed)
                    try:
                        r["name"], _, r["how"] = make_input(seeds_for_saving, job[1], seed)
                    except MemoryError:
                        pass
                record(r)
                proc, conn = start()
                continue
            for r in results:
                record(r)
            if progress and (done % 2000 < len(results)):
                rate = done / max(1e-9, time.time() - t_start)
                print(f"  {done:,} inputs, {rate:.0f}/s: {dict(outcomes)}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        stopped = True
    finally:
        if conn is not None and proc is not None and proc.is_alive():
            conn.send(None)
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    slowest.sort(reverse=True)
    biggest.sort(reverse=True)
    report = {"inputs": done, "stopped_early": stopped, "seconds": round(time.time() - t_start, 1), "seed": seed,
              "time_limit_s": time_limit, "memory_limit_mb": memory_limit_mb,
              "outcomes": dict(outcomes), "by_mutation": {k: dict(v) for k, v in sorted(by_how.items())},
              "slowest": [{"seconds": round(s, 3), "index": i, "how": h} for s, i, h in slowest[:10]],
              "largest_peak": [{"mb": round(p / 2 ** 20, 1), "index": i, "how": h} for p, i, h in biggest[:10]],
              "failures": failures}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def recheck(directory: Path, time_limit: float = 1.0, memory_limit_mb: int = 200) -> list[dict]:
    """Judge again every failing input a campaign wrote to ``directory`` (after fixes: are they gone?)."""
    import warnings

    warnings.simplefilter("ignore")
    _warm_up()
    out = []
    for path in sorted(directory.glob("fail_*")):
        name = path.name.split("_", 2)[2]
        r = judge(name, path.read_bytes(), time_limit, memory_limit_mb * 1024 * 1024)
        out.append({"file": path.name, "outcome": r["outcome"], "flags": r["flags"],
                    "cpu_seconds": round(r["seconds"], 3), "peak_mb": round(r["peak"] / 2 ** 20, 1),
                    "detail": r["detail"][-200:]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hyp-fraction", type=float, default=0.2, help="share of inputs generated by hypothesis")
    ap.add_argument("--time-limit", type=float, default=1.0, help="CPU seconds per input")
    ap.add_argument("--memory-limit-mb", type=int, default=200, help="rise of resident memory per input")
    ap.add_argument("--max-real", type=int, default=300, help="real files sampled as seeds (0: all)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "fuzz")
    ap.add_argument("--recheck", type=Path, metavar="DIR", help="only judge again the failing inputs in DIR")
    args = ap.parse_args(argv)
    if args.recheck:
        rows = recheck(args.recheck, args.time_limit, args.memory_limit_mb)
        for row in rows:
            print(json.dumps(row))
        return 1 if any(r["outcome"] not in ("read", "rejected") or r["flags"] for r in rows) else 0
    report = campaign(args.inputs, seed=args.seed, hyp_fraction=args.hyp_fraction, time_limit=args.time_limit,
                      memory_limit_mb=args.memory_limit_mb, max_real=args.max_real or None, out=args.out)
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=1))
    bad = report["failures"]
    print(f"{report['inputs']:,} inputs in {report['seconds']} s; {len(bad)} failures"
          + (f" (written to {args.out})" if bad else ""))
    for r in bad[:30]:
        print(f"  {r['index']} {r['name']} [{r['how']}] {r['outcome']} {r['flags']}: {r['detail'][-300:]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
