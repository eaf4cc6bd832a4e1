"""``astrodash evaluate``: re-measure shipped (or given) models on the objects they held out."""
from __future__ import annotations

from ..errors import ModelFileError
from ..models import Model, default_model
from .augment import Augmenter
from .evaluation import format_redshift_report, format_report
from .run import evaluate_model, evaluate_pipeline
from .templates_data import find_data_root, load_galaxies, load_templates


def evaluation_report(model_paths=(), data=None) -> str:
    """Markdown report for each model on its own held-out test objects (recorded in the model file)."""
    try:
        redshift_model = default_model("redshift")
    except ModelFileError:
        redshift_model = None
    models = [Model.load(p) for p in model_paths] or [default_model("known-z"), default_model("agnostic"),
                                                        *([redshift_model] if redshift_model else [])]
    # a redshift model given on the command line is the one the agnostic model's estimate is measured with
    redshift_model = next((m for m in models if m.variant == "redshift"), redshift_model)
    root = find_data_root(data)
    templates = load_templates(root, log=lambda *_: None)
    galaxies, line_galaxies = load_galaxies(root), load_galaxies(root, lines=True)  # read once
    out = []
    for model in models:
        test_objects = set(model.provenance.get("split", {}).get("test", ()))
        if not test_objects:
            out.append(f"## {model.name}\n\nno held-out objects recorded in the model file\n")
            continue
        test = [t for t in templates if t.object in test_objects]
        seed = int(model.provenance.get("seed", 0))
        try:
            from ..templates import default_bank

            bank = default_bank()
        except FileNotFoundError:
            bank = None
        aug = Augmenter(galaxies, model.variant, line_galaxies=line_galaxies)
        result = evaluate_model(model, test, aug, seed, bank=bank, redshift_model=redshift_model)
        out.append(f"## {model.name} ({model.variant}), {len(test_objects)} held-out objects\n")
        if model.variant == "redshift":
            out.append(format_redshift_report(result))
            continue
        out.append(format_report("clean templates", result["clean"]))
        for key in ("degraded", "redshift_survey"):
            if key in result:
                out.append(format_report(f"{key.replace('_', ' ')}: {result[key]['conditions']}", result[key]))
        if model.variant == "known-z" and bank is not None:
            agnostic = next((m for m in models if m.variant == "agnostic"), None) or default_model("agnostic")
            pipeline = evaluate_pipeline(model, agnostic, test, aug, seed, redshift_model=redshift_model)
            out.append(format_report(f"classify without a redshift: {pipeline['conditions']}", pipeline))
    return "\n".join(out)
