"""A fixed split of the real observed spectra (shared/data/real) by object: test, validation, training.

The real set is the only honest check of how the classifier does on spectra as they are observed, so its
test part is drawn once and shipped (``data/real_split.csv``): models may then be tuned or trained on the
other parts without ever seeing the test objects.  Every spectrum of one supernova lands on the same side,
and the draw is stratified by catalogue type group and redshift range so rare types and high-z objects are
in every part in proportion.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

PARTS = ("test", "val", "train")
DEFAULT_FRACTIONS = (("test", 0.35), ("val", 0.20), ("train", 0.45))
#: The smallest share of objects the test part may hold; make_real_split refuses a split below it.
MIN_TEST_SHARE = 0.30
SPLIT_FILE = resources.files("astrodash_core") / "data" / "real_split.csv"
SPLIT_HEADER = ("# made by astrodash_core.training.real_split.make_real_split(seed=1) from shared/data/real/manifest.csv; "
                "do not regenerate: the test part is fixed")

#: Catalogue type -> the group it is stratified in (subtypes too rare to stand alone join their family).
TYPE_GROUP: dict[str, str] = {
    "Ia": "Ia",
    "Ia-91T": "Ia-pec", "Ia-91bg": "Ia-pec", "Ia-pec": "Ia-pec", "Iax": "Ia-pec", "Ia-csm": "Ia-pec",
    "Ib": "Ib", "Ib/c": "Ib", "Ibn": "Ib", "IIb": "Ib", "Ib-pec": "Ib",
    "Ic": "Ic", "Ic-broad": "Ic", "Ic-pec": "Ic",
    "II": "II", "IIP": "II", "IIL": "II", "II-pec": "II",
    "IIn": "IIn",
    "SLSN-I": "SLSN", "SLSN-II": "SLSN",
}
#: Redshift ranges of the strata (and of the evaluation's breakdown): z < 0.05, 0.05 <= z <= 0.15, z > 0.15.
Z_RANGES = ("z<0.05", "0.05-0.15", "z>0.15")


def z_range(z) -> str:
    """The redshift range a catalogue redshift falls in ("z?" when it is missing)."""
    if z is None or not np.isfinite(z):
        return "z?"
    return Z_RANGES[0] if z < 0.05 else Z_RANGES[1] if z <= 0.15 else Z_RANGES[2]


def stratum(row: dict) -> tuple[str, str]:
    """(type group, z range) of a manifest row; an unknown type is its own group."""
    t = (row.get("type") or "").strip()
    return TYPE_GROUP.get(t, t or "?"), z_range(row.get("z"))


def _counts(n: int, fractions: np.ndarray, rng) -> np.ndarray:
    """Objects of each part in a stratum of n: largest remainder of n * fraction (ties broken at random);
    a lone object goes to a part drawn with the fractions as probabilities, so singletons are not all sent
    to the largest part."""
    if n == 1:
        out = np.zeros(len(fractions), dtype=int)
        out[rng.choice(len(fractions), p=fractions)] = 1
        return out
    exact = n * fractions
    out = np.floor(exact).astype(int)
    rest = exact - out
    order = np.lexsort((rng.random(len(fractions)), -rest))
    out[order[: n - out.sum()]] += 1
    return out


def make_real_split(manifest_rows, seed: int = 1, fractions=DEFAULT_FRACTIONS) -> dict[str, str]:
    """Assign each object (manifest ``name``) to a part: {name: part}.

    Objects are stratified by (catalogue type group, z range) of their first spectrum; within a stratum,
    each part gets its largest-remainder share, and the parts are interleaved along the objects sorted by
    catalogue type (then at random) so each subtype inside a group is spread over the parts too.  Seeded
    and deterministic: the same rows, seed and fractions give the same split.  Raises ValueError when the
    test part would hold under MIN_TEST_SHARE of the objects.
    """
    names = [p for p, _ in fractions]
    frac = np.array([f for _, f in fractions], dtype=float)
    if frac.min() < 0 or not np.isclose(frac.sum(), 1.0):
        raise ValueError("split fractions must be non-negative and sum to 1")
    first: dict[str, dict] = {}
    for row in manifest_rows:
        first.setdefault(row["name"], row)
    strata: dict[tuple, list[str]] = defaultdict(list)
    for name, row in first.items():
        strata[stratum(row)].append(name)
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for key in sorted(strata):
        objs = sorted(strata[key])
        shuffle = rng.permutation(len(objs))
        objs = [objs[i] for i in np.lexsort((shuffle, np.asarray([first[o].get("type") or "" for o in objs])))]
        counts = _counts(len(objs), frac, rng)
        # interleave: part p's j-th slot sits at (j + u_p) / count_p along the stratum
        slots = [((j + rng.random()) / c, p) for p, c in enumerate(counts) for j in range(c)]
        for obj, (_, p) in zip(objs, sorted(slots)):
            out[obj] = names[p]
    if "test" in names and out:
        share = sum(p == "test" for p in out.values()) / len(out)
        if share < MIN_TEST_SHARE:
            raise ValueError(f"the test part holds {100 * share:.1f} % of the objects, under {100 * MIN_TEST_SHARE:.0f} %")
    return dict(sorted(out.items()))


def write_real_split(split: dict[str, str], path=SPLIT_FILE, header: str = SPLIT_HEADER) -> None:
    """Write {name: part} as ``name,part`` rows sorted by name under a comment line."""
    with open(path, "w", newline="") as fh:
        fh.write(header + "\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", "part"])
        for name in sorted(split):
            w.writerow([name, split[name]])


def load_real_split(path=None) -> dict[str, str]:
    """{object name: part} from a split file (default: the shipped ``data/real_split.csv``)."""
    path = Path(path) if path else SPLIT_FILE
    out: dict[str, str] = {}
    with open(path, newline="") as fh:
        rows = csv.reader(line for line in fh if not line.lstrip().startswith("#"))
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["name", "part"]:
            raise ValueError(f"{path}: not a real split file (expected a 'name,part' header)")
        for row in rows:
            if len(row) >= 2 and row[0].strip():
                part = row[1].strip()
                if part not in PARTS:
                    raise ValueError(f"{path}: object {row[0]!r} has unknown part {part!r}")
                out[row[0].strip()] = part
    return out


def select_part(split: dict[str, str], part: str) -> set[str]:
    """Object names in ``part`` (all | test | val | train | trainval)."""
    wanted = {"all": set(PARTS), "trainval": {"train", "val"}}.get(part, {part})
    if not wanted <= set(PARTS):
        raise ValueError(f"unknown part {part!r}: use all, test, val, train or trainval")
    return {n for n, p in split.items() if p in wanted}


if __name__ == "__main__":  # pragma: no cover - how the shipped file was made; refuses to remake it
    import sys

    from .manifest import read_manifest

    if SPLIT_FILE.is_file():
        sys.exit(f"{SPLIT_FILE} exists and is not remade: its test part is fixed")
    write_real_split(make_real_split(read_manifest(sys.argv[1]), seed=1))
    print(f"wrote {SPLIT_FILE}")
