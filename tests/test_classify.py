"""The classify API and CLI end to end, with the shipped models on real spectra."""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_core.classify import AGNOSTIC, KNOWN_Z, Classifier

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SN1994D = EXAMPLES / "sn1994D_p02.dat"
FITS = EXAMPLES / "sn1990aa_z0.03.fits"


@pytest.fixture(scope="module")
def clf():
    return Classifier()


def test_models_load_once_and_are_cached(clf):
    assert clf.model_for(KNOWN_Z) is clf.model_for(KNOWN_Z)
    assert clf.model_for(AGNOSTIC).variant == "agnostic"
    assert len(clf.model_for(KNOWN_Z).labels) == 306


def test_given_redshift_classifies_a_real_type_ia(clf):
    (r,) = clf.classify([SN1994D], redshift=0.0)
    assert r.error is None and r.redshift_source == "given"
    assert r.best_match.broad_type == "Ia"
    assert r.matches[0].probability >= r.matches[-1].probability
    d = r.to_dict()
    assert set(d["classification"]) == {"best_matches", "best_match", "reliable_matches"}
    assert set(d["classification"]["best_match"]) >= {"type", "age", "probability", "redshift", "rlap", "reliable",
                                                       "rlap_warning"}
    json.dumps(d)


def test_redshift_from_file_header_and_estimated_when_unknown(clf):
    from_header, estimated = clf.classify([FITS, SN1994D], redshift=None)
    assert from_header.redshift == pytest.approx(0.03) and from_header.redshift_source == "given"
    assert estimated.redshift_source == "estimated"
    assert estimated.error is None


def test_one_bad_source_never_fails_the_others(clf):
    results = clf.classify([SN1994D, (b"\x00garbage" * 20, "bad.dat"), (b"4000 1\n4001 2\n", "short.dat")],
                           redshift=[0.0, 0.0, 0.0])
    assert results[0].error is None
    assert "bad.dat" in results[1].error and "binary" in results[1].error
    assert "short.dat" in results[2].error
    assert results[1].to_dict()["error"]


def test_batch_equals_one_by_one(clf):
    files = sorted(EXAMPLES.glob("*.dat"))
    together = clf.classify(files, redshift=0.0, rlap=False)
    alone = [clf.classify([f], redshift=0.0, rlap=False)[0] for f in files]
    for a, b in zip(together, alone):
        assert a.best_match.type == b.best_match.type
        assert a.best_match.probability == pytest.approx(b.best_match.probability, abs=1e-5)


def test_probabilities_on_request_and_top_n():
    (r,) = ad.classify([SN1994D], redshift=0.0, top_n=3, probabilities=True)
    assert len(r.matches) == 3
    assert r.probabilities.shape == (306,) and r.probabilities.sum() == pytest.approx(1, abs=1e-4)
    assert len(r.to_dict(include_probabilities=True)["probabilities"]) == 306


def test_classifier_takes_its_redshift_model():
    from astrodash_core.classify import Classifier
    from astrodash_core.errors import ModelFileError
    from astrodash_core.models import default_model

    zm = default_model("redshift")
    assert Classifier(redshift_model=zm).redshift_model() is zm
    with pytest.raises(ModelFileError, match="not a redshift model"):
        Classifier(redshift_model=default_model("known-z")).redshift_model()
    with pytest.raises(ModelFileError):  # a redshift model asked for and missing is an error ...
        Classifier(redshift_model="no-such-model").redshift_model()


def test_no_template_bank_installed_means_the_agnostic_models_answer(monkeypatch):
    """Without a bank (redshift and rlap need it) a spectrum given no redshift gets the agnostic model's answer,
    computed here from the model directly; a spectrum that cannot be preprocessed gets its error, in input order."""
    import astrodash_core.templates as templates
    from astrodash_core.labels import split_class
    from astrodash_core.models import default_model
    from astrodash_core.preprocess import PreprocessSettings, preprocess

    def no_bank():
        raise FileNotFoundError("no template bank installed")

    monkeypatch.setattr(templates, "default_bank", no_bank)
    clf = Classifier()
    files = [EXAMPLES / "sn1983N_p12.dat", SN1994D]
    short = ad.Spectrum(np.linspace(5000, 5010, 20), np.ones(20), name="short")
    out = clf.classify([*files, short, EXAMPLES / "sn1979C_p07.dat"])
    assert clf.bank() is None and len(out) == 4
    model = default_model(AGNOSTIC)
    specs = [ad.read_spectrum(f) for f in [*files, EXAMPLES / "sn1979C_p07.dat"]]
    probs = model.predict(preprocess(specs, redshift=0.0,
                                     settings=PreprocessSettings.from_dict(model.preprocessing)).flux)
    for r, p in zip([out[0], out[1], out[3]], probs):
        assert r.error is None and r.redshift is None and r.redshift_source == "estimated"
        assert r.model == model.name and r.best_match.rlap is None
        assert r.matches[0].probability == pytest.approx(float(p.max()), abs=1e-6)
        assert (r.matches[0].type, r.matches[0].age) == split_class(int(p.argmax()))
    assert out[2].error and "short" == out[2].name


def test_no_redshift_model_installed_means_templates_alone(monkeypatch):
    """... while none installed is not: the estimate then comes from the templates' correlation."""
    import astrodash_core.models as models
    from astrodash_core.classify import Classifier
    from astrodash_core.errors import ModelFileError

    real = models.default_model

    def without_redshift(variant):
        if variant == "redshift":
            raise ModelFileError("no redshift model installed")
        return real(variant)

    monkeypatch.setattr(models, "default_model", without_redshift)
    clf = Classifier()
    assert clf.redshift_model() is None and clf.redshift_model() is None
    r = clf.classify(EXAMPLES / "sn1994D_p02.dat", rlap=False)[0]
    assert r.redshift_source == "estimated" and r.error is None and abs(r.redshift) < 0.02


def test_per_source_redshifts_stay_aligned_across_chunks(clf):
    """iter_classify in chunks of 2 over 5 sources with 5 different redshifts: each result carries its own
    source's redshift (a redshift iterator restarted per chunk would give the second chunk the first's)."""
    s = ad.read_spectrum(SN1994D)
    zs = [0.01, 0.02, 0.03, 0.04, 0.05]
    sources = [ad.Spectrum(wave=s.wave * (1 + z), flux=s.flux, name=f"z{z}") for z in zs]
    results = list(clf.iter_classify(sources, redshift=zs, chunk_size=2, rlap=False))
    assert [r.name for r in results] == [f"z{z}" for z in zs]
    assert [r.redshift for r in results] == zs
    assert len({r.best_match.type for r in results}) == 1  # each read at its own z: the same Ia every time


def test_reliable_uses_the_models_calibrated_threshold():
    """The threshold stored in the model file decides `reliable`: the same known-z network with its threshold
    raised above the best match's probability is not reliable, and lowered below it is."""
    from dataclasses import replace

    from astrodash_core.models import default_model

    base = default_model("known-z")
    prob = Classifier().classify(SN1994D, redshift=0.0, rlap=False)[0].best_match.probability
    for threshold, expected in ((min(prob + 0.05, 0.999), False), (prob - 0.05, True)):
        prov = {**base.provenance, "reliability": {**base.provenance["reliability"], "threshold": threshold}}
        model = replace(base, provenance=prov)
        r = Classifier(model=model).classify(SN1994D, redshift=0.0, rlap=False)[0]
        assert r.best_match.probability == pytest.approx(prob)
        assert r.best_match.reliable is expected


def test_plot_leaves_the_callers_matplotlib_backend_and_figures_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    code = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
import astrodash_core as ad
from astrodash_core.plot import plot_classification
mine = plt.figure()
result = ad.Classifier().classify([{str(SN1994D)!r}], redshift=[0.0], include_spectrum=True)[0]
path = plot_classification(result, {str(tmp_path / 'p.png')!r})
print(matplotlib.get_backend(), plt.get_fignums(), plt.gcf() is mine, open(path, 'rb').read(4))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "svg" and "[1] True b'\\x89PNG'" in out.stdout, out.stdout


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "astrodash_core.cli", *args], capture_output=True, text=True,
                          cwd=ROOT)


def _with_threshold(tmp_path, threshold):
    """The shipped known-z model written to a file whose calibrated threshold is ``threshold``."""
    from dataclasses import replace

    from astrodash_core.models import default_model

    base = default_model("known-z")
    prov = {**base.provenance, "reliability": {**base.provenance["reliability"], "threshold": threshold}}
    return replace(base, provenance=prov).save(tmp_path / f"known_z_{threshold!r}.npz")


def test_the_threshold_read_from_a_model_file_flips_reliable(tmp_path):
    """Model files with thresholds 0.99, 0.01 and exactly the best match's probability: not reliable, reliable,
    reliable (p >= threshold), through the library and the CLI's --model."""
    prob = Classifier().classify(SN1994D, redshift=0.0, rlap=False)[0].best_match.probability
    assert 0.01 < prob < 0.99
    for threshold, expected in ((0.99, False), (0.01, True), (float(prob), True),
                                (float(np.nextafter(prob, 1.0)), False)):
        path = _with_threshold(tmp_path, threshold)
        r = Classifier(model=str(path)).classify(SN1994D, redshift=0.0, rlap=False)[0]
        assert r.best_match.probability == prob
        assert r.best_match.reliable is expected, (threshold, prob)
    for threshold, expected in ((0.99, False), (0.01, True)):
        out = run_cli("classify", str(SN1994D), "--redshift", "0", "--format", "json", "--model",
                      str(_with_threshold(tmp_path, threshold)))
        (d,) = json.loads(out.stdout)
        assert d["classification"]["best_match"]["reliable"] is expected


def test_iter_classify_in_chunks_equals_one_by_one(clf):
    """Five sources at five redshifts (one left to the file: None) in chunks of 2: every result, rlap included,
    is the one classifying that source alone gives."""
    s = ad.read_spectrum(SN1994D)
    zs = [0.0, 0.05, None, 0.12, 0.2]
    sources = [ad.Spectrum(wave=s.wave * (1 + (z or 0.0)), flux=s.flux, name=f"s{i}") for i, z in enumerate(zs)]
    chunked = list(clf.iter_classify(sources, redshift=zs, chunk_size=2))
    alone = [clf.classify([src], redshift=[z])[0] for src, z in zip(sources, zs)]
    assert [r.name for r in chunked] == [f"s{i}" for i in range(5)]
    for a, b in zip(chunked, alone):
        assert (a.redshift_source, a.best_match.type, a.best_match.age) == \
            (b.redshift_source, b.best_match.type, b.best_match.age)
        assert a.redshift == pytest.approx(b.redshift, abs=1e-6)
        assert a.best_match.probability == pytest.approx(b.best_match.probability, abs=1e-5)
        assert a.best_match.rlap == pytest.approx(b.best_match.rlap, rel=1e-5)
        assert [m.rlap for m in a.matches] == pytest.approx([m.rlap for m in b.matches], rel=1e-5, abs=1e-9)
    assert [r.redshift for r in chunked[:2] + chunked[3:]] == [0.0, 0.05, 0.12, 0.2]
    assert chunked[2].redshift_source == "estimated"
