"""``astrodash train``: build the data, train, calibrate, evaluate on held-out objects, write the model file."""
from __future__ import annotations

import datetime as _dt
import subprocess
import time
from pathlib import Path

import numpy as np

from .. import interpret, labels
from ..nn import DEFAULT_ARCHITECTURE
from ..preprocess import Preprocessed, PreprocessSettings
from ..variants import Variant
from .augment import (DEGRADED, REDSHIFT_SURVEY, REDSHIFT_SURVEY_HOST_LINES, AugmentConfig, Augmenter, balanced_weights,
                      objects_of)
from .evaluation import metrics, redshift_metrics, type_only_metrics
from .real_data import REAL_TYPE_POWER
from .templates_data import find_data_root, load_templates, load_unlabelled, split_objects

DATA_DESCRIPTION = ("SNID templates (Blondin & Tonry 2007; Liu & Modjaz 2016; BSNIP, Silverman et al. 2012) "
                    "as gathered by DASH (Muthukrishna et al. 2019); Superfit host galaxies (Howell et al. 2005; "
                    "Kinney et al. 1996)")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def prepare(variant: str, seed: int, data=None, log=print, config: AugmentConfig | None = None,
            unlabelled: bool = False, split_seed: int | None = None):
    """Templates split by object, and an augmenter for ``variant``.

    ``unlabelled`` (the redshift model only): also the spectra outside the label space
    (:func:`~.templates_data.load_unlabelled`) as ``parts["unlabelled_train"]`` / ``["unlabelled_val"]``: those of
    a split object on its side, those of objects the labelled templates lack on the training side; those of test
    objects are left out."""
    check_unlabelled(variant, unlabelled)
    root = find_data_root(data)
    templates = load_templates(root, log)
    side = split_objects(templates, seed if split_seed is None else split_seed)
    parts = {s: [t for t in templates if side[t.object] == s] for s in ("train", "val", "test")}
    if unlabelled:
        extra = load_unlabelled(root, log)
        for s in ("train", "val"):
            parts[f"unlabelled_{s}"] = [t for t in extra if side.get(t.object, "train") == s]
    for s, ts in parts.items():
        log(f"{s}: {len({t.object for t in ts})} objects, {len(ts)} spectra")
    return parts, Augmenter.from_data(root, variant, config), side


def check_unlabelled(variant: str, unlabelled: bool) -> None:
    """Spectra without class labels can teach only the redshift model (ValueError otherwise)."""
    if unlabelled and variant != "redshift":
        raise ValueError("spectra without class labels can only train the redshift model")


def run_training(variant: str, out: str | Path, *, seed: int = 0, data=None, epochs: int = 30,
                 examples_per_epoch: int = 40000, val_per_spectrum: int = 4, time_budget_s: float = 3000,
                 arch_name: str | None = None, members: int = 1, refit: bool = False,
                 config: AugmentConfig | None = None, unlabelled: bool = False, real=None,
                 real_fraction: float = 0.1, slsn_outside: bool = False, outside_fraction: float = 0.03,
                 real_split=None, real_augment: bool = False, init=None, lr: float | None = None,
                 real_parts=("train",), real_type_power: float = REAL_TYPE_POWER, init_weight: float = 0.0,
                 log=print):
    """Train one model variant and write it to ``out``; returns the Model.

    ``members`` > 1 trains an ensemble: networks from different initialisations and augmented data (member 0
    is what a single-network run gives), on the same split and validation set, probabilities averaged.
    ``time_budget_s`` is for each member.

    ``refit``: after the run on the training objects (whose validation metrics and reliability threshold are
    recorded), train the same recipe again on the training *and* validation objects, for the full number of
    epochs, and ship that.  The test objects stay held out of both; the threshold is the first run's, as the
    refitted model has no unseen validation objects left to calibrate on (the test report states the precision
    it gives there).

    ``unlabelled`` (redshift model): train also on the spectra outside the label space (see :func:`prepare`);
    validation and test stay the labelled templates of their objects.

    ``real`` (classifiers): a folder of real spectra with a manifest (like shared/data/real); the training part
    of the fixed real split joins every epoch as ``real_fraction`` of its examples, with its partial labels
    (:mod:`.real_data`).  Its validation and test parts are never trained on.

    ``slsn_outside`` (classifiers): superluminous spectra (the SNID set's ``SLSN/`` of the training side, and with
    ``real`` the real training part's SLSNe) make up ``outside_fraction`` of each epoch, trained towards a flat
    distribution over the classes (``labels.OUTSIDE``): outside the label space, nothing should be confident.
    ``real_split``: the split file whose training part trains (default the shipped ``data/real_split.csv``; a
    cross-validation fold's file holds its other objects out); ``real_augment``: crop, tilt and noise on each
    real example (:func:`.real_data.augment_real`); ``real_parts``: the parts of the split that train (the
    real-test part never can); ``real_type_power``: how far the real examples are balanced over broad types
    (:func:`.real_data.real_weights`: 0 as the objects come, 1 each broad type the same).

    ``arch_name="transformer"`` (``variant`` known-z only): AstroDASH 2.0's five classes without ages
    (``labels.TRANSFORMER_CLASSES``), every label code mapped to one of them; the superluminous spectra are its
    SLSNe-I class and always train it (at least :data:`TRANSFORMER_SLSN_FRACTION` of each epoch); type-only
    cross-entropy, validation metrics, threshold and test figures (:func:`evaluate_type_only`).

    ``init`` (a model file or Model of ``variant``): fine-tune it instead of training from scratch, at learning
    rate ``lr``.  It is trained on the template objects it was fitted on (training, or training + validation
    when its provenance says so; the test objects stay out), once (``refit`` does not apply), the last epoch
    kept; its reliability threshold is kept.  ``init_weight`` w: the model written has the weights
    w x ``init``'s + (1 - w) x the fine-tuned ones (weight-space ensembling, :func:`interpolate_weights`)."""
    from .train import LOSS, REDSHIFT_LOSS, TRANSFORMER_LOSS

    if not 0.0 <= init_weight < 1.0 or (init_weight and init is None):
        raise ValueError(f"init_weight {init_weight}: a share in [0, 1) of the initial model's weights, with init only")
    if "test" in real_parts or not set(real_parts) <= {"train", "val"}:
        raise ValueError(f"real parts {'+'.join(real_parts)}: the real-test part never trains; give train and/or val")
    types_only = is_type_only(arch_name)
    if types_only and variant != "known-z":
        raise ValueError(f"the transformer (AstroDASH 2.0's five classes, no ages) is a known-z model: it classifies at "
                         f"a given or estimated redshift; --variant {variant} is not available for it")
    if types_only:  # SLSNe-I is one of its classes: the superluminous spectra always train it
        slsn_outside, outside_fraction = True, max(outside_fraction, TRANSFORMER_SLSN_FRACTION)
    t0 = time.time()
    commit = _commit()  # the code that trains, not whatever is checked out when training ends
    if init is not None:
        from ..models import Model

        init_path = init if not isinstance(init, Model) else None
        init = Model.load(init) if init_path is not None else init
        if refit:
            raise ValueError("fine-tuning (init) trains once on the objects the initial model was fitted on: no refit")
    parts, aug, side = prepare(variant, seed, data, log, config, unlabelled,
                               split_seed=None if init is None else init.provenance.get("seed"))
    if init is not None:
        check_same_split(init, parts)
    train, val, test = parts["train"], parts["val"], parts["test"]
    extra_train, extra_val = parts.get("unlabelled_train", []), parts.get("unlabelled_val", [])
    reads_z = variant == "redshift"  # the target is the redshift itself, not the class
    rng = np.random.default_rng([seed, 10_000])
    X_val, y_val, z_val = aug.examples(val, np.repeat(np.arange(len(val)), val_per_spectrum), rng)
    arch_name = arch_name or DEFAULT_ARCHITECTURE
    loss = REDSHIFT_LOSS if reads_z else TRANSFORMER_LOSS if types_only else LOSS
    real_items = None
    if real is not None:
        if reads_z:
            raise ValueError("real spectra with catalogue types can train the classifiers, not the redshift model")
        from .real_data import load_real_training

        real_items = load_real_training(real, parts=tuple(real_parts), split=real_split, log=log,
                                        outside=slsn_outside)
    outside = {}
    if slsn_outside:
        if reads_z:
            raise ValueError("superluminous spectra as 'outside the label space' can train the classifiers only")
        outside = slsn_templates(find_data_root(data), side, log)
        if types_only and outside["val"]:  # validated (and calibrated) on its SLSNe-I class too
            Xo, yo, zo = aug.examples(outside["val"], np.repeat(np.arange(len(outside["val"])), val_per_spectrum), rng)
            X_val, y_val, z_val = np.concatenate([X_val, Xo]), np.concatenate([y_val, yo]), np.concatenate([z_val, zo])
    recipe = dict(seed=seed, epochs=epochs, examples_per_epoch=examples_per_epoch, time_budget_s=time_budget_s,
                  arch_name=arch_name, members=members, log=log, real=real_items, real_fraction=real_fraction,
                  outside_fraction=outside_fraction, real_augment=real_augment, init=init, lr=lr,
                  real_type_power=real_type_power)

    def fit(objects, select: str, outside_spectra=None):
        return fit_recipe(variant, objects, aug, X_val, z_val if reads_z else y_val, select=select,
                          outside=outside_spectra, **recipe)

    real_entry = (real_provenance(real_items, real_fraction, real_augment, real_parts, real_type_power)
                  if real_items else None)
    if init is not None:
        return finish_fine_tuned(init, init_path, fit, parts, outside, aug, seed, out, t0, commit, log, real_entry,
                                 outside_fraction, types_only, lr, init_weight)
    model, history = fit(train + extra_train, "best", outside.get("train"))
    if reads_z:
        from ..redshift import network_redshifts

        z_hat, _ = network_redshifts(model, X_val)
        validation, reliability = redshift_metrics(z_hat, z_val), None
    elif types_only:
        probs_val = model.predict(X_val)
        validation = type_only_metrics(probs_val, y_val)
        reliability = interpret.calibrate_threshold(probs_val, y_val, _scored=interpret.type_only_scored(probs_val, y_val))
        log(f"reliability: threshold {reliability['threshold']:.3f} gives precision {reliability['precision']:.3f} "
            f"on {100 * reliability['coverage']:.1f} % of validation spectra")
    else:
        probs_val = model.predict(X_val)
        validation = {k: v for k, v in metrics(probs_val, y_val).items() if k != "confusion"}
        reliability = interpret.calibrate_threshold(probs_val, y_val)
        log(f"reliability: threshold {reliability['threshold']:.3f} gives precision {reliability['precision']:.3f} "
            f"on {100 * reliability['coverage']:.1f} % of validation spectra")
    epochs_log = {"epochs": history}
    if refit:
        log(f"refit on train + validation objects: {len({t.object for t in train + val})} objects")
        model, refit_history = fit(train + val + extra_train + extra_val, "last",
                                   outside and outside["train"] + outside["val"])
        epochs_log = {"epochs_without_validation_objects": history, "epochs": refit_history}
    model.provenance = {
        "name": f"{arch_name}-{variant}",
        "architecture": arch_name,
        "data": DATA_DESCRIPTION,
        "seed": seed,
        "commit": commit,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "split": {s: sorted({t.object for t in parts[s]}) for s in ("val", "test")},
        "fit_on": "train+val" if refit else "train",
        **({"unlabelled_spectra": unlabelled_provenance(extra_train + extra_val if refit else extra_train)}
           if unlabelled else {}),
        **({"real_spectra": real_entry} if real_entry else {}),
        **({"outside_spectra": outside_provenance(outside["train"] + (outside["val"] if refit else []),
                                                  outside_fraction, types_only)}
           if outside else {}),
        "augmentation": aug.config.to_dict(),
        "loss": loss,
        "members": members,
        **epochs_log,
        "validation": validation,
    }
    if refit:
        model.provenance["validation_note"] = ("validation metrics and reliability threshold are those of the same "
                                               "recipe fitted without the validation objects")
    if reliability is not None:
        model.provenance["reliability"] = reliability  # before the test, which measures the flag
    return test_and_write(model, test, aug, seed, out, t0, log)


def real_provenance(real_items, fraction: float, augmented: bool, parts=("train",),
                    type_power: float = REAL_TYPE_POWER) -> dict:
    """What a model file records of the real spectra it was trained on."""
    return {"part": "+".join(parts), "spectra": len(real_items), "objects": len({r.object for r in real_items}),
            "fraction": fraction, "augmented": bool(augmented), "type_power": type_power,
            "what": "real observed spectra with catalogue types (partial labels, no ages)"}


def outside_provenance(spectra, fraction: float, types_only: bool) -> dict:
    """What a model file records of the superluminous spectra it was trained on."""
    return {"slsn_templates": len(spectra), "fraction": fraction,
            "target": "the SLSNe-I class" if types_only else "flat over the classes"}


def test_and_write(model, test, aug: Augmenter, seed: int, out, t0: float, log=print):
    """Measure ``model`` on the held-out ``test`` templates into its provenance and write it to ``out``."""
    model.provenance["test"] = evaluate_model(model, test, aug, seed)
    model.provenance["train_wall_time_s"] = round(time.time() - t0, 1)
    model.name = model.provenance["name"]  # the model was built before its provenance (and name) existed
    model.save(out)
    log(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f} s")
    return model


#: The transformer's share of superluminous spectra (its SLSNe-I class) in each epoch, at least.
TRANSFORMER_SLSN_FRACTION = 0.08
#: The transformer's peak learning rate when none is given.
TRANSFORMER_LR = 1e-3


def is_type_only(arch_name: str | None) -> bool:
    """Whether the architecture ``arch_name`` trains AstroDASH 2.0's five type-only classes (the transformer)."""
    from ..nn import ARCHITECTURES, is_transformer

    return arch_name is not None and is_transformer(ARCHITECTURES.get(arch_name))


def check_same_split(init, parts) -> None:
    """Fine-tuning must see the template objects split as the initial model saw them, or its test objects
    would be trained on (ValueError)."""
    recorded = init.provenance.get("split") or {}
    for s in ("val", "test"):
        if sorted({t.object for t in parts[s]}) != sorted(recorded.get(s, [])):
            raise ValueError(f"the template {s} objects differ from those the initial model {init.name!r} recorded: "
                             "fine-tune it on the template set and split seed it was trained with")


def finish_fine_tuned(init, init_path, fit, parts, outside, aug, seed, out, t0, commit, log, real_entry,
                      outside_fraction, types_only, lr, init_weight: float = 0.0):
    """The fine-tuning branch of :func:`run_training`: fit once from ``init``'s weights on the template objects
    it was fitted on (then mix ``init_weight`` of ``init``'s weights back in), keep its threshold, evaluate on the
    test objects and write the model."""
    import hashlib

    both = init.provenance.get("fit_on") == "train+val"
    objects = parts["train"] + (parts["val"] if both else [])
    log(f"fine-tuning {init.name!r} on {len({t.object for t in objects})} template objects "
        f"({'training + validation' if both else 'training'})")
    outside_spectra = outside and (outside["train"] + (outside["val"] if both else []))
    model, history = fit(objects, "last", outside_spectra or None)
    if init_weight:
        model.weights = interpolate_weights(init.weights, model.weights, init_weight)
    digest = hashlib.sha256(Path(init_path).read_bytes()).hexdigest() if init_path else None
    keep = ("name", "architecture", "data", "seed", "commit", "date", "split", "fit_on", "augmentation", "loss",
            "members", "reliability", "validation", "validation_note", "unlabelled_spectra", "real_spectra",
            "outside_spectra")
    model.provenance = {k: v for k, v in init.provenance.items() if k in keep}
    model.provenance.update({
        "commit": commit,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fine_tuned_from": {"name": init.name, "sha256": digest, "commit": init.provenance.get("commit"),
                            "date": init.provenance.get("date")},
        "fine_tuning": {"epochs": history, "learning_rate": lr, "seed": seed,
                        "template_objects": "train+val" if both else "train", "init_weight": init_weight},
    })
    if real_entry:
        model.provenance["real_spectra"] = real_entry
    if outside_spectra:
        model.provenance["outside_spectra"] = outside_provenance(outside_spectra, outside_fraction, types_only)
    return test_and_write(model, parts["test"], aug, seed, out, t0, log)


def interpolate_weights(initial: dict, tuned: dict, init_weight: float) -> dict:
    """Weight-space ensembling of a fine-tuned network with the one it started from (WiSE-FT): each array
    ``init_weight`` x initial + (1 - init_weight) x tuned, in the tuned array's dtype.  Interpolating back
    towards the initial weights keeps more of what the initial network did well."""
    if set(initial) != set(tuned) or any(np.shape(initial[k]) != np.shape(tuned[k]) for k in tuned):
        raise ValueError("the two networks' weights differ in names or shapes: they cannot be interpolated")
    return {k: (init_weight * np.asarray(initial[k], np.float64) + (1.0 - init_weight) * np.asarray(v, np.float64))
            .astype(np.asarray(v).dtype) for k, v in tuned.items()}


def slsn_templates(root, side: dict, log=print) -> dict:
    """The SNID set's superluminous spectra as ``labels.OUTSIDE`` examples, by side of the split
    ({"train": [...], "val": [...]}; those of test objects are left out)."""
    from dataclasses import replace

    from .templates_data import load_unlabelled

    out: dict[str, list] = {"train": [], "val": []}
    for t in load_unlabelled(root, log=lambda *_: None):
        if t.sn_type == "SLSN" and side.get(t.object, "train") in out:
            out[side.get(t.object, "train")].append(replace(t, label=labels.OUTSIDE))
    log(f"superluminous spectra: {len(out['train'])} training, {len(out['val'])} validation")
    return out


def unlabelled_provenance(spectra) -> dict:
    """What a model file records of the unlabelled spectra its redshift model was also trained on."""
    return {"spectra": len(spectra), "objects": len({t.object for t in spectra}),
            "what": "SNID epochs outside the age bins, SLSN/ spectra, Superfit sne/ spectra of objects the SNID "
                    "templates lack"}


def fit_recipe(variant: str, objects, aug: Augmenter, X_monitor, y_monitor, *, seed: int, epochs: int,
               examples_per_epoch: int, time_budget_s: float, arch_name: str, members: int, select: str, log=print,
               real=None, real_fraction: float = 0.1, outside=None, outside_fraction: float = 0.03, init=None,
               lr: float | None = None, real_augment: bool = False, real_type_power: float = REAL_TYPE_POWER):
    """Train the recipe on the templates ``objects`` (fresh augmented, class-balanced examples each epoch) and
    return (Model without provenance, history).  ``X_monitor``/``y_monitor`` (class labels, or redshifts for
    the redshift variant) are scored every epoch; with ``select="best"`` they also choose the epoch kept.
    ``real``: real spectra (:func:`.real_data.load_real_training`) that make up ``real_fraction`` of each
    epoch's examples, drawn by :func:`.real_data.real_weights` (``real_type_power``), each cropped, tilted and given noise
    (:func:`.real_data.augment_real`) with ``real_augment``.  ``outside``: template spectra labelled
    ``labels.OUTSIDE`` that make up ``outside_fraction`` of each epoch (each object weighing the same).
    ``init``: a Model of this variant and architecture (one network) whose weights training starts from
    (fine-tuning; ``lr`` is then usually lower than the default 2e-3)."""
    from ..models import Model
    from ..nn import ARCHITECTURES, with_outputs
    from .train import class_scores, redshift_loss, redshift_scores, train_model, transformer_loss, transformer_scores

    reads_z = variant == "redshift"
    types_only = is_type_only(arch_name)
    out_labels = list(labels.REDSHIFT_LABELS if reads_z else labels.TRANSFORMER_CLASSES if types_only
                      else labels.CLASS_LABELS)
    arch = with_outputs(ARCHITECTURES[arch_name], len(out_labels))
    if types_only and lr is None:
        lr = TRANSFORMER_LR
    init_weights = None
    if init is not None:
        check_init(init, variant, arch, out_labels, members)
        init_weights = dict(init.weights)
    weights = balanced_weights(objects, aug.config.type_power, aug.config.object_power)
    n_real = int(round(real_fraction * examples_per_epoch)) if real else 0
    n_out = int(round(outside_fraction * examples_per_epoch)) if outside else 0
    if n_out:
        o_weights = balanced_weights(outside, 1.0, 0.0)
    if n_real:
        from .real_data import real_examples, real_weights

        r_weights = real_weights(real, real_type_power)

    def epochs_of(member: int):
        def make_epoch(epoch: int):
            r = np.random.default_rng([seed, epoch] + ([member] if member else []))
            idx = r.choice(len(objects), size=examples_per_epoch - n_real - n_out, p=weights)
            X, y, z = aug.examples(objects, idx, r)
            if reads_z:
                return X, z.astype(np.float32)
            if n_out:
                Xo, yo, _ = aug.examples(outside, r.choice(len(outside), size=n_out, p=o_weights), r)
                X, y = np.concatenate([X, Xo]), np.concatenate([y, yo])
            if n_real:
                Xr, yr = real_examples(real, r.choice(len(real), size=n_real, p=r_weights), r, variant=variant,
                                       z_error_sigma=aug.config.z_error_sigma, augment=real_augment)
                X, y = np.concatenate([X, Xr]), np.concatenate([y, yr])
            return X, y
        return make_epoch

    nn_weights, history = {}, []
    for member in range(members):
        if members > 1:
            log(f"ensemble member {member + 1} of {members}")
        w, h = train_model(
            epochs_of(member), X_monitor, np.asarray(y_monitor).astype(np.float32) if reads_z else y_monitor,
            arch=arch, seed=seed + 1000 * member, epochs=epochs, time_budget_s=time_budget_s, log=log,
            select=select, loss_fn=redshift_loss() if reads_z else transformer_loss() if types_only else None,
            score_fn=redshift_scores if reads_z else transformer_scores if types_only else class_scores,
            init=init_weights, lr=lr)
        nn_weights.update({f"m{member}.{k}" if members > 1 else k: v for k, v in w.items()})
        history.append(h)
    settings = PreprocessSettings()
    model = Model(arch=arch, weights=nn_weights, labels=out_labels, grid=settings.grid.to_dict(),
                  preprocessing=settings.to_dict(), variant=Variant(variant), provenance={}, members=members)
    return model, history[0] if members == 1 else history


def check_init(init, variant: str, arch: list[dict], out_labels: list[str], members: int) -> None:
    """A model to fine-tune must be of the variant, architecture and labels trained, and one network
    (ValueError naming the difference)."""
    if str(init.variant) != variant:
        raise ValueError(f"the initial model {init.name!r} is a {init.variant} model, not {variant}")
    if init.arch != arch or list(init.labels) != out_labels:
        raise ValueError(f"the initial model {init.name!r} has another architecture or label set than the one trained")
    if members != 1 or init.members != 1:
        raise ValueError("fine-tuning starts from one network: give --members 1 and a single-network model")


def evaluate_model(model, test, aug: Augmenter, seed: int, bank=None, redshift_model=None) -> dict:
    """Metrics of ``model`` on the held-out ``test`` templates: clean and degraded.

    A redshift model is measured by the redshift error of its own estimate, under the degraded conditions
    and under the redshift target's (``redshift_survey``).  For the agnostic model with a template ``bank``
    the degraded metrics include the redshift error of the full estimate (:func:`estimate_batch`: the
    redshift model when given, the agnostic classes' templates), and ``redshift_survey`` measures it under
    the redshift target's conditions.
    """
    rng = np.random.default_rng([seed, 20_000])
    if model.variant == "redshift":
        from ..redshift import network_redshifts

        out = {}
        conditions = [("degraded", DEGRADED), ("redshift_survey", REDSHIFT_SURVEY)]
        if aug.line_galaxies:  # drawn last, so the two sets above are the same with or without it
            conditions.append(("redshift_survey_host_lines", REDSHIFT_SURVEY_HOST_LINES))
        for key, degradation in conditions:
            Xd, _, zd, objects = aug.degraded(test, rng, degradation, return_objects=True)
            out[key] = {"n": int(len(zd)), "conditions": degradation.describe(),
                        "redshift": redshift_metrics(network_redshifts(model, Xd)[0], zd, objects)}
        return out
    threshold = model.provenance.get("reliability", {}).get("threshold")
    if labels.is_transformer_labels(model.labels):
        return evaluate_type_only(model, test, aug, rng, threshold)
    X, y, _, objects = aug.clean(test, return_objects=True)
    probs = model.predict(X)
    out = {"clean": metrics(probs, y, objects)}
    if threshold is not None:
        out["clean"]["reliability"] = interpret.reliability_at(probs, y, threshold)
    degraded_sets = {"degraded": DEGRADED}
    if bank is not None and model.variant == "agnostic":
        degraded_sets["redshift_survey"] = REDSHIFT_SURVEY
    for key, degradation in degraded_sets.items():
        Xd, yd, zd, lo, hi, objects = aug.degraded(test, rng, degradation, return_ranges=True, return_objects=True)
        probs = model.predict(Xd)
        out[key] = metrics(probs, yd, objects)
        if threshold is not None:
            out[key]["reliability"] = interpret.reliability_at(probs, yd, threshold)
        out[key]["conditions"] = degradation.describe()
        if bank is not None and model.variant == "agnostic" and len(yd):
            rows = Preprocessed(Xd, lo, hi, np.zeros(len(Xd)), aug.settings)  # observed frame (agnostic)
            z_est = estimate_batch(rows, probs, bank, redshift_model)
            out[key]["redshift"] = redshift_metrics(z_est, zd, objects)
    return out


def evaluate_type_only(model, test, aug: Augmenter, rng, threshold) -> dict:
    """:func:`evaluate_model` of a type-only model (the transformer): its class accuracy on the held-out
    templates, clean and degraded, and the reliable flag's precision and coverage at ``threshold``."""
    out = {}
    X, y, _, objects = aug.clean(test, return_objects=True)
    for key, (Xs, ys, objs) in (("clean", (X, y, objects)),
                                ("degraded", _degraded(aug, test, rng))):
        probs = model.predict(Xs)
        out[key] = type_only_metrics(probs, ys, objs)
        if threshold is not None and len(ys):
            out[key]["reliability"] = interpret.reliability_at(probs, ys, threshold,
                                                               interpret.type_only_scored(probs, ys))
    out["degraded"]["conditions"] = DEGRADED.describe()
    return out


def _degraded(aug: Augmenter, test, rng):
    Xd, yd, _, objects = aug.degraded(test, rng, DEGRADED, return_objects=True)
    return Xd, yd, objects


def estimate_batch(pre: Preprocessed, probs, bank, redshift_model=None) -> np.ndarray:
    """Redshift estimates of preprocessed observed-frame rows, as ``classify`` makes them without a redshift
    (:func:`astrodash_core.redshift.estimate_observed`)."""
    from ..redshift import estimate_observed

    return np.array([e.redshift for e in estimate_observed(pre, probs, bank, redshift_model, match=False)])


def evaluate_pipeline(known_model, agnostic_model, test, aug: Augmenter, seed: int,
                      degradation=REDSHIFT_SURVEY, redshift_model=None) -> dict:
    """What ``classify`` gives with no redshift, on the held-out ``test`` templates observed under
    ``degradation``: z estimated (redshift model and templates), then the known-z model at that z.  Class
    metrics (the probabilities at the estimated z) and the redshift error."""
    from ..classify import Classifier

    spectra, z_true = aug.observed(test, np.random.default_rng([seed, 30_000]), degradation)
    results = Classifier(model=known_model, agnostic_model=agnostic_model, redshift_model=redshift_model).classify(
        spectra, None, min_wave=degradation.window[0], max_wave=degradation.window[1], probabilities=True,
        rlap=False)
    ok = np.array([r.error is None and r.probabilities is not None for r in results])
    probs = np.array([r.probabilities for r, k in zip(results, ok) if k]).reshape(-1, labels.N_CLASSES)
    y = np.array([t.label for t in test])[ok]
    objects = objects_of(test, ok)
    out = metrics(probs, y, objects)
    out["conditions"] = degradation.describe() + "; no redshift given: classify's own estimate"
    out["redshift"] = redshift_metrics(np.array([r.redshift for r, k in zip(results, ok) if k], dtype=float), z_true[ok],
                                       objects)
    return out
