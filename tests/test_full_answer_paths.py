"""The full answer's shortcuts change no answer: the agnostic model run only where its probabilities are used,
cached transforms of whole templates in rlap's second pass, and forward-pass blocks on two threads, against the
same classification with each of them undone (every row through the agnostic model, every template transformed
per pair, one thread), on the bundled examples and real spectra, no redshift given, rlap on."""
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class _EagerProbs:
    """classify's previous way: the agnostic model over every row, at once."""

    def __init__(self, model, flux):
        self.probs = model.predict(flux)

    def __call__(self, rows):
        return self.probs[np.asarray(rows, dtype=np.int64)]


def test_the_full_answer_is_the_one_without_shortcuts(monkeypatch):
    from astrodash_core import nn
    from astrodash_core.classify import Classifier
    from astrodash_core.templates import TemplateBank

    real = sorted(shared_data("real", what="real spectra").glob("*.dat"))[::60]  # 21 files across the set
    sources = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".dat", ".fits")) + real
    fast = Classifier()
    got = [r.to_dict() for r in fast.classify(sources, probabilities=True)]
    assert sum(r["redshift_source"] == "estimated" for r in got) >= len(sources) - 1
    assert all(r["classification"]["best_match"]["rlap"] is not None for r in got if not r.get("error"))
    classify_mod = __import__("sys").modules["astrodash_core.classify"]
    monkeypatch.setattr(classify_mod, "_RowProbs", _EagerProbs)
    monkeypatch.setattr(TemplateBank, "cut_transforms", property(lambda self: None))
    monkeypatch.setattr(nn, "FORWARD_THREADS", 1)
    want = [r.to_dict() for r in Classifier().classify(sources, probabilities=True)]
    assert got == want
