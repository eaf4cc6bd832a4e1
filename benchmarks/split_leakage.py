"""How much a split by *spectrum* inflates accuracy: ``python benchmarks/split_leakage.py [--epochs N]``.

Most published accuracies of spectral classifiers hold out random spectra, so the held-out spectra's
supernovae (their other epochs) are in the training set.  This trains the known-redshift recipe twice in one
run, with the same seed, epochs and numbers of training and held-out spectra:

- by object: the train and test objects of ``split_objects`` (what astrodash reports);
- by spectrum: the same numbers of spectra drawn at random from all templates;

and prints the held-out accuracies of both, clean and degraded, as a markdown table.  Needs the ``train``
extra and the template data (~11 minutes on 2 cores at 18 epochs).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from astrodash_core.nn import DEFAULT_ARCHITECTURE
from astrodash_core.training.augment import DEGRADED, Augmenter
from astrodash_core.training.evaluation import metrics
from astrodash_core.training.run import fit_recipe
from astrodash_core.training.templates_data import find_data_root, load_templates, split_objects


def splits(templates, seed: int) -> dict:
    """{"by object": (train, test), "by spectrum": (train, test)} with equal sizes."""
    side = split_objects(templates, seed)
    by_object = ([t for t in templates if side[t.object] == "train"], [t for t in templates if side[t.object] == "test"])
    perm = np.random.default_rng(seed).permutation(len(templates))
    n_train, n_test = len(by_object[0]), len(by_object[1])
    by_spectrum = ([templates[i] for i in perm[n_test:n_test + n_train]], [templates[i] for i in perm[:n_test]])
    return {"by object": by_object, "by spectrum": by_spectrum}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--examples", type=int, default=40000)
    ap.add_argument("--json", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    root = find_data_root(None)
    templates = load_templates(root, log=lambda *a: None)
    aug = Augmenter.from_data(root, "known-z")
    results = {}
    for name, (train, test) in splits(templates, args.seed).items():
        shared = len({t.object for t in test} & {t.object for t in train})
        X, y, _, objects = aug.clean(test, return_objects=True)
        model, _ = fit_recipe("known-z", train, aug, X, y, seed=args.seed, epochs=args.epochs,
                              examples_per_epoch=args.examples, time_budget_s=3600, arch_name=DEFAULT_ARCHITECTURE,
                              members=1, select="last", log=lambda *a: None)
        Xd, yd, _, objects_d = aug.degraded(test, np.random.default_rng([args.seed, 20_000]), DEGRADED,
                                            return_objects=True)
        results[name] = {"train_spectra": len(train), "test_spectra": len(test), "test_objects_in_train": shared,
                         **{key: {k: v for k, v in metrics(model.predict(Xs), ys, obj).items() if k != "confusion"}
                            for key, (Xs, ys, obj) in (("clean", (X, y, objects)), ("degraded", (Xd, yd, objects_d)))}}
    print(f"known-z recipe, seed {args.seed}, {args.epochs} epochs; held-out spectra (95 % interval over objects)\n")
    print("| split | train / held-out spectra | held-out objects also trained on | clean broad | clean subtype | "
          "degraded broad | degraded subtype |\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        cells = [f"{100 * r[k][f'{m}_accuracy']:.1f} % ({100 * r[k]['by_object'][m]['ci95'][0]:.1f}-"
                 f"{100 * r[k]['by_object'][m]['ci95'][1]:.1f})"
                 for k in ("clean", "degraded") for m in ("broad_type", "subtype")]
        print(f"| {name} | {r['train_spectra']} / {r['test_spectra']} | {r['test_objects_in_train']} | "
              + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
