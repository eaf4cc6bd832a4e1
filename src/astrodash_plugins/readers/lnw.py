"""SNID ``.lnw`` templates: every epoch as a Spectrum, with age, subtype and name from the header.

The flux in the file is continuum-divided and flattened around zero; it is returned as ``flat + 1`` (a
continuum-normalised spectrum, positive like any other) and the continuum spline SNID removed is kept in
``meta["spline"]`` so training can restore the spectral shape.
"""
from __future__ import annotations

import numpy as np

from astrodash_core._parse import parse_table
from astrodash_core.errors import SpectrumReadError
from astrodash_core.reader_base import Reader, make_spectrum
from astrodash_core.spectrum import MAX_POINTS


def _floats(line: str, filename: str, what: str) -> list[float]:
    try:
        return [float(x) for x in line.split()]
    except ValueError:
        raise SpectrumReadError(f"malformed {what} line in SNID template", filename) from None


class LnwReader(Reader):
    name = "lnw"
    suffixes = (".lnw",)

    def sniff(self, head: bytes, filename: str) -> float:
        first = head.split(b"\n", 1)[0].split()
        if len(first) >= 8:
            try:
                nepoch, nw = int(first[0]), int(first[1])
                float(first[2]), float(first[3]), int(first[4])
            except ValueError:
                return 0.0
            return 0.97 if nepoch > 0 and nw > 10 else 0.0
        return 0.0

    def read(self, data: bytes, filename: str):
        text_head = data[:200000].decode("latin-1")
        lines = text_head.split("\n")
        hdr = lines[0].split()
        if len(hdr) < 8:
            raise SpectrumReadError("not a SNID template: header needs nepoch nw w0 w1 mostknots name dm15 type",
                                    filename)
        try:
            nepoch, nw, w0, w1, mostknots = int(hdr[0]), int(hdr[1]), float(hdr[2]), float(hdr[3]), int(hdr[4])
        except ValueError:
            raise SpectrumReadError("malformed SNID template header", filename) from None
        if not 0 < nepoch < 256:
            raise SpectrumReadError(f"SNID template has {nepoch} epochs; 1 to 255 are supported", filename)
        if not 0 <= mostknots <= len(lines) - 3:
            raise SpectrumReadError(f"SNID template declares {mostknots} spline knots but has {len(lines)} lines",
                                    filename)
        obj, sn_type = hdr[5], hdr[7]
        dm15 = float(hdr[6]) if hdr[6].replace(".", "", 1).lstrip("-").isdigit() else None
        knot_counts = _floats(lines[1], filename, "spline")
        try:
            nknot = [int(knot_counts[1 + 2 * j]) for j in range(nepoch)] if len(knot_counts) >= 1 + 2 * nepoch else []
        except (ValueError, OverflowError):
            raise SpectrumReadError("malformed knot counts in SNID template", filename) from None
        if any(not 0 <= k <= mostknots for k in nknot):
            raise SpectrumReadError(f"knot counts {nknot[:5]} outside 0..{mostknots}", filename)
        fmean = [knot_counts[2 + 2 * j] for j in range(nepoch)] if nknot else []
        xk = np.zeros((mostknots, nepoch))
        yk = np.zeros((mostknots, nepoch))
        for k in range(mostknots):
            vals = _floats(lines[2 + k], filename, "spline knot")
            if len(vals) >= 1 + 2 * nepoch:
                xk[k] = vals[1:1 + 2 * nepoch:2]
                yk[k] = vals[2:2 + 2 * nepoch:2]
        age_line = _floats(lines[2 + mostknots], filename, "age")
        if len(age_line) < nepoch + 1:
            raise SpectrumReadError(f"age line has {len(age_line) - 1} ages for {nepoch} epochs", filename)
        ages = age_line[1:1 + nepoch]
        start = sum(len(ln) + 1 for ln in lines[:3 + mostknots])
        body = np.frombuffer(data[start:], dtype=np.uint8)
        table, counts, _ = parse_table(body, nepoch + 1)
        table = table[counts == nepoch + 1]
        if table.shape[1] < nepoch + 1:
            raise SpectrumReadError(f"flux table has {table.shape[1] - 1} columns for {nepoch} epochs", filename)
        wave = table[:, 0]
        out = []
        for j in range(nepoch):
            flat = table[:, 1 + j]
            nz = np.nonzero(flat != 0)[0]
            if nz.size < 10:
                continue
            sl = slice(nz[0], nz[-1] + 1)
            n = nknot[j] if nknot else 0
            meta = {"format": self.name, "sn_type": sn_type, "age": float(ages[j]), "object": obj, "epoch": j,
                    "dm15": dm15, "w0": w0, "w1": w1, "nw": nw, "ttype": hdr[8:] if len(hdr) > 8 else [],
                    "flux_unit": "continuum-normalised (SNID flat flux + 1)",
                    "spline": {"nknot": n, "fmean": fmean[j] if fmean else None,
                               "xknot": xk[:n, j].tolist(), "yknot": yk[:n, j].tolist()}}
            out.append(make_spectrum(wave[sl], flat[sl] + 1.0, None, filename=filename, meta=meta,
                                     name=f"{obj} {ages[j]:+.1f}d", unit_factor=1.0, unit_name="Angstrom"))
            if len(out) * wave.size > MAX_POINTS:
                raise SpectrumReadError(f"SNID template holds more than {MAX_POINTS:,} points", filename)
        if not out:
            raise SpectrumReadError("SNID template has no epoch with data", filename)
        return out
