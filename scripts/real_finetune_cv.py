"""Cross-validation of a real-spectra fine-tuning recipe over the real train+val objects, and the reliability
threshold set on its out-of-fold predictions (not part of CI: each fold is a training of ~4 minutes).

The shipped known-z model was made this way (see docs/accuracy.md): folds by object over the real split's
training and validation parts (stratified like the split: type group x z range), each fold's model fine-tuned
without its fold's objects and classifying them with the catalogue redshift given, rlap on.  The real-test part
is never read.

    python scripts/real_finetune_cv.py folds  --out runs/cv --seed 17
    python scripts/real_finetune_cv.py train  --out runs/cv --fold 0 -- --init MODEL --lr 5e-4 --epochs 4 \\
        --seed 17 --slsn-outside --real-fraction 0.3          # arguments after -- go to `astrodash train`
    python scripts/real_finetune_cv.py eval   --out runs/cv --fold 0 [--model MODEL]   # default: the fold's model
    python scripts/real_finetune_cv.py report --out runs/cv [--name F0]
    python scripts/real_finetune_cv.py threshold --out runs/cv --name F1 --precision 0.97 [--write MODEL]

``folds`` writes ``fold{k}.csv`` split files (the fold's objects as ``val``, the other train+val objects as
``train``, the test part as ``test``); ``eval`` writes ``oof/{name}_f{k}.json``; ``threshold`` prints the lowest
threshold >= 0.5 (step 0.005) at which the pooled out-of-fold reliable spectra reach the precision by broad type,
with no superluminous spectrum reliable.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


def make_folds(out: Path, k_folds: int, seed: int, real: Path) -> None:
    from astrodash_core.training.real_eval import read_manifest
    from astrodash_core.training.real_split import load_real_split, stratum

    split = load_real_split()
    first: dict = {}
    for row in read_manifest(real):
        first.setdefault(row["name"], row)
    strata = defaultdict(list)
    for name in sorted(first):
        if split.get(name) in ("train", "val"):
            strata[stratum(first[name])].append(name)
    rng = np.random.default_rng(seed)
    fold, offset = {}, 0
    for key in sorted(strata):
        names = strata[key]
        rng.shuffle(names)
        for i, n in enumerate(names):
            fold[n] = (i + offset) % k_folds
        offset += len(names)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(k_folds):
        with open(out / f"fold{k}.csv", "w") as fh:
            fh.write("name,part\n")
            for name in sorted(split):
                part = "test" if split[name] == "test" else ("val" if fold.get(name) == k else "train")
                fh.write(f"{name},{part}\n")
    print({k: sum(v == k for v in fold.values()) for k in range(k_folds)})


def train(out: Path, k: int, name: str, real: Path, train_args: list[str]) -> None:
    model = out / "models" / f"{name}_f{k}.npz"
    model.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "astrodash_core.cli", "train", "--variant", "known-z", "--out", str(model),
           "--real", str(real), "--real-split", str(out / f"fold{k}.csv"), *train_args]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def evaluate(out: Path, k: int, name: str, model_path: str | None, real: Path) -> None:
    from astrodash_core.classify import Classifier
    from astrodash_core.models import Model
    from astrodash_core.training.real_eval import SLSN_TYPES, TRUTH_BROAD, predicted_types, read_manifest
    from astrodash_core.training.real_split import load_real_split, select_part

    names = select_part(load_real_split(out / f"fold{k}.csv"), "val")
    rows = [r for r in read_manifest(real) if r["name"] in names and r["z"] is not None
            and (r["type"] in TRUTH_BROAD or r["type"] in SLSN_TYPES)]
    path = model_path or str(out / "models" / f"{name}_f{k}.npz")
    res = Classifier(model=Model.load(path)).classify([str(real / r["file"]) for r in rows],
                                                      redshift=[r["z"] for r in rows], rlap=True)
    preds = []
    for r, c in zip(rows, res):
        if c.error is not None:
            preds.append({"file": r["file"], "error": c.error})
            continue
        broad, sub = predicted_types(c)
        b = c.best_match
        preds.append({"file": r["file"], "object": r["name"], "type": r["type"], "slsn": r["type"] in SLSN_TYPES,
                      "truth": TRUTH_BROAD.get(r["type"]), "pred": broad, "sub": sub, "prob": b.probability,
                      "rlap_warning": b.rlap_warning, "reliable": b.reliable, "z": r["z"]})
    (out / "oof").mkdir(exist_ok=True)
    with open(out / "oof" / f"{name}_f{k}.json", "w") as fh:
        json.dump(preds, fh)
    print(summary([preds], f"{name} fold {k}"))


def right(x: dict) -> bool:
    from astrodash_core.training.real_eval import broad_right

    return broad_right(x["truth"], x["pred"])


def reliable_at(x: dict, threshold: float) -> bool:
    from astrodash_core.interpret import reliable_with_rlap

    return reliable_with_rlap(x["prob"] >= threshold, x["rlap_warning"])


def summary(parts: list[list[dict]], label: str, threshold: float | None = None) -> str:
    xs = [x for p in parts for x in p if "error" not in x]
    sn = [x for x in xs if not x["slsn"]]
    flag = (lambda x: x["reliable"]) if threshold is None else (lambda x: reliable_at(x, threshold))
    rel = [x for x in sn if flag(x)]
    prec = np.mean([right(x) for x in rel]) if rel else float("nan")
    return (f"{label}: n={len(sn)} broad {100 * np.mean([right(x) for x in sn]):.1f} % "
            f"Ia-vs-rest {100 * np.mean([(x['pred'] == 'Ia') == (x['truth'] == 'Ia') for x in sn]):.1f} % "
            f"reliable {100 * len(rel) / len(sn):.1f} % prec {100 * prec:.1f} % "
            f"SLSN reliable {sum(flag(x) for x in xs if x['slsn'])}/{sum(x['slsn'] for x in xs)} "
            f"errors {sum('error' in x for p in parts for x in p)}")


def pooled(out: Path, name: str) -> list[list[dict]]:
    return [json.load(open(f)) for f in sorted((out / "oof").glob(f"{name}_f*.json"))]


def threshold(out: Path, name: str, precision: float, write: str | None = None) -> float | None:
    """The lowest threshold (see the module's doc); with ``write``, stored in that model file as its
    ``reliability`` (the one it had is kept as ``reliability_templates``)."""
    parts = pooled(out, name)
    xs = [x for p in parts for x in p if "error" not in x]
    for t in np.round(np.arange(0.5, 1.0, 0.005), 3):
        rel = [x for x in xs if reliable_at(x, t)]
        if rel and not any(x["slsn"] for x in rel) and np.mean([right(x) for x in rel]) >= precision:
            print(summary(parts, f"{name} pooled at threshold {t:.3f}", threshold=t))
            if write:
                store_threshold(write, float(t), rel, xs, precision, len(parts))
            return float(t)
    print("no threshold reaches the precision")
    return None


def store_threshold(path: str, t: float, rel: list[dict], xs: list[dict], precision: float, folds: int) -> None:
    from astrodash_core.models import Model

    model = Model.load(path)
    sn = [x for x in xs if not x["slsn"]]
    if "reliability" in model.provenance and "reliability_templates" not in model.provenance:
        model.provenance["reliability_templates"] = model.provenance["reliability"]
    model.provenance["reliability"] = {
        "threshold": t, "precision": float(np.mean([right(x) for x in rel])), "coverage": len(rel) / len(sn),
        "n": len(sn), "target_precision": precision, "objects": len({x["object"] for x in xs}),
        "slsn_spectra": sum(x["slsn"] for x in xs), "slsn_reliable": 0,
        "source": f"{folds}-fold cross-validation by object over the real train+val part (scripts/"
                  f"real_finetune_cv.py), pooled out-of-fold predictions with the catalogue redshift: the lowest "
                  f"threshold >= 0.5 with broad-type precision >= {precision:.0%} and no superluminous spectrum "
                  f"reliable"}
    model.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["folds", "train", "eval", "report", "threshold"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--real", type=Path, default=REAL)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--fold", type=int)
    p.add_argument("--name", default="F1")
    p.add_argument("--model")
    p.add_argument("--precision", type=float, default=0.97)
    p.add_argument("--write", metavar="MODEL", help="threshold: store it in this model file")
    args, rest = p.parse_known_args(argv)
    rest = [a for a in rest if a != "--"]
    if args.what == "folds":
        make_folds(args.out, args.folds, args.seed, args.real)
    elif args.what == "train":
        train(args.out, args.fold, args.name, args.real, rest)
    elif args.what == "eval":
        evaluate(args.out, args.fold, args.name, args.model, args.real)
    elif args.what == "report":
        parts = pooled(args.out, args.name)
        for k, part in enumerate(parts):
            print(summary([part], f"  {args.name} fold {k}"))
        print(summary(parts, f"{args.name} pooled ({len(parts)} folds)"))
    else:
        threshold(args.out, args.name, args.precision, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
