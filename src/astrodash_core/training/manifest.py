"""The manifest of a folder of real spectra (``manifest.csv``: file, name, catalogue type, redshift, ...)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import AstrodashError

MANIFEST = "manifest.csv"
FIELDS = ("file", "name", "type", "z", "mjd", "instrument", "survey", "flux_unit", "source")


def _float(s):
    try:
        x = float(s)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def read_manifest(directory) -> list[dict]:
    """The rows of ``directory/manifest.csv``: every field of FIELDS present (None when absent or empty),
    ``z`` and ``mjd`` as floats (None when missing or not a number), ``name`` from the file name
    (``NAME_MJD.dat``) when the column is missing.  Rows without a file and ``#`` comment lines are skipped."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise AstrodashError(f"{path}: no such file (a real-spectra folder holds the spectra and a {MANIFEST})")
    with open(path, newline="") as fh:
        reader = csv.DictReader(line for line in fh if not line.lstrip().startswith("#"))
        rows = []
        for raw in reader:
            row = {k: ((raw.get(k) or "").strip() or None) for k in FIELDS}
            if not row["file"]:
                continue
            row["z"], row["mjd"] = _float(row["z"]), _float(row["mjd"])
            if not row["name"]:
                row["name"] = Path(row["file"]).stem.rsplit("_", 1)[0]
            rows.append(row)
    return rows
