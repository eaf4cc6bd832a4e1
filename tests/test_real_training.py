"""Real spectra as training examples: partial label codes, the marginal-likelihood loss, and the split kept."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrodash_core import labels
from astrodash_core.training.real_data import label_code, load_real_training, real_examples, real_weights
from astrodash_core.training.real_eval import read_manifest

SMALL = Path(__file__).parent / "data" / "real_small"


def test_label_codes_admit_exactly_the_catalogue_types_classes():
    allowed = labels.allowed_classes()
    type_of = np.arange(labels.N_CLASSES) // labels.N_AGE_BINS
    names = np.array(labels.SN_TYPES)[type_of]
    assert np.array_equal(allowed[label_code("IIb")], names == "IIb")
    assert np.array_equal(allowed[label_code("Ia")], np.char.startswith(names, "Ia") | (names == "Iax"))
    assert np.array_equal(allowed[label_code("IIb")] & allowed[label_code("Ib")], allowed[label_code("IIb")])
    ib_c = allowed[label_code("Ib/c")]
    assert ib_c.sum() == allowed[label_code("Ib")].sum() + allowed[label_code("Ic")].sum()
    assert np.array_equal(allowed[label_code("II")], np.isin(names, ["IIP", "IIL", "IIn", "II-pec"]))
    assert label_code("SLSN-I") is None
    assert np.array_equal(allowed[:labels.N_CLASSES], np.eye(labels.N_CLASSES, dtype=bool))


def test_partial_labels_cost_the_negative_log_of_their_summed_probability():
    torch = pytest.importorskip("torch")
    from astrodash_core.training.train import LOSS, hierarchical_loss

    loss = hierarchical_loss()
    torch.manual_seed(0)
    x = torch.randn(6, labels.N_CLASSES, dtype=torch.float32)
    y = torch.tensor([3, 40, label_code("IIb"), label_code("II"), label_code("Ib/c"), 200])
    p = torch.softmax(x.double(), 1).numpy()
    allowed = labels.allowed_classes()
    marginal = [-np.log(p[i][allowed[int(y[i])]].sum()) for i in (2, 3, 4)]
    full = float(loss(x[[0, 1, 5]], y[[0, 1, 5]])) * 3  # the full labels' loss, unchanged by partial ones
    weight = 1 + LOSS["type_weight"] + LOSS["broad_weight"]
    assert float(loss(x, y)) == pytest.approx((full + weight * sum(marginal)) / 6, rel=1e-5)


def test_only_the_training_part_is_read_and_weights_balance_objects():
    names = {row["name"] for row in read_manifest(SMALL)}
    items = load_real_training(SMALL, split={n: "train" for n in names}, log=lambda *_: None)  # unreadable left out
    assert items and all(it.code is not None for it in items)
    only_train = load_real_training(SMALL, split={it.object: ("test" if k == 0 else "train")
                                                  for k, it in enumerate(items)}, log=lambda *_: None)
    assert items[0].object not in {it.object for it in only_train}
    w = real_weights(items)
    assert w.sum() == pytest.approx(1.0) and np.all(w > 0)
    X, codes = real_examples(items, np.arange(len(items)), np.random.default_rng(0), variant="known-z",
                             z_error_sigma=0.0)
    assert X.shape[1] == 1024 and X.dtype == np.float32 and len(codes) == len(X)
    with pytest.raises(ValueError):
        real_examples(items, np.arange(1), np.random.default_rng(0), variant="redshift", z_error_sigma=0.0)


def _fake_items(counts):
    """RealSpectrum stand-ins: ``counts`` {broad: [spectra per object, ...]}."""
    from astrodash_core.training.real_data import RealSpectrum

    out = []
    for broad, per_object in counts.items():
        for k, n in enumerate(per_object):
            out += [RealSpectrum(None, 0, 0.1, f"{broad}{k}", broad)] * n
    return out


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_real_weights_balance_broad_types_by_their_power(power):
    items = _fake_items({"Ia": [1] * 30 + [3] * 10, "II": [2] * 10, "Ic": [1] * 4})
    w = real_weights(items, power)
    share = {b: sum(wi for wi, it in zip(w, items) if it.broad == b) for b in ("Ia", "II", "Ic")}
    n_objects = {"Ia": 40, "II": 10, "Ic": 4}
    expected = {b: n ** (1 - power) for b, n in n_objects.items()}  # a broad type's objects, each weighing the same
    total = sum(expected.values())
    assert share == pytest.approx({b: v / total for b, v in expected.items()})
    one_object = [wi for wi, it in zip(w, items) if it.object == "Ia30"]  # 3 spectra share an object's weight
    assert len(one_object) == 3 and sum(one_object) == pytest.approx(w[0])


def test_the_real_test_part_never_trains(tmp_path):
    from astrodash_core.training.run import run_training

    with pytest.raises(ValueError, match="real-test part never trains"):
        run_training("known-z", tmp_path / "m.npz", real=SMALL, real_parts=("train", "test"), epochs=1,
                     log=lambda *_: None)


def test_training_and_validation_parts_both_train_when_asked():
    names = sorted({row["name"] for row in read_manifest(SMALL)})
    split = {n: ("train" if k % 3 == 0 else "val" if k % 3 == 1 else "test") for k, n in enumerate(names)}
    both = load_real_training(SMALL, parts=("train", "val"), split=split, log=lambda *_: None)
    assert {it.object for it in both} <= {n for n in names if split[n] != "test"}
    assert {split[it.object] for it in both} == {"train", "val"}


def test_spectra_outside_the_label_space_are_trained_towards_flat():
    torch = pytest.importorskip("torch")
    from astrodash_core.training.train import hierarchical_loss

    assert label_code("SLSN-I", outside=True) == labels.OUTSIDE and label_code("Ia", outside=True) == label_code("Ia")
    assert not labels.allowed_classes()[labels.OUTSIDE].any()
    loss = hierarchical_loss()
    torch.manual_seed(1)
    x = torch.randn(3, labels.N_CLASSES)
    y = torch.tensor([5, labels.OUTSIDE, labels.OUTSIDE])
    logp = torch.log_softmax(x.double(), 1).numpy()
    flat = -logp[1].mean() - logp[2].mean()
    assert float(loss(x, y)) == pytest.approx((float(loss(x[:1], y[:1])) + flat) / 3, rel=1e-5)
    assert float(loss(torch.zeros(1, labels.N_CLASSES), y[1:2])) == pytest.approx(np.log(labels.N_CLASSES), rel=1e-5)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(30, 400), lo=st.floats(3000, 5000), span=st.floats(1500, 6000))
def test_a_real_example_variant_is_a_window_of_at_least_the_set_share_tilted_within_its_bound(seed, n, lo, span):
    from astrodash_core.spectrum import Spectrum
    from astrodash_core.training import real_data

    wave = np.linspace(lo, lo + span, n)
    flux = 1.0 + 0.3 * np.sin(wave / 300.0)
    out = real_data.augment_real(Spectrum(wave, flux), np.random.default_rng(seed))
    assert wave[0] <= out.wave[0] and out.wave[-1] <= wave[-1]
    kept = np.isin(wave, out.wave)
    assert np.array_equal(out.wave, wave[kept])                      # a contiguous window of the same points
    step = span / (n - 1)
    assert out.wave[-1] - out.wave[0] >= real_data.REAL_CROP_MIN_SPAN * span - 2 * step or kept.all()
    ratio = out.flux / flux[kept]                                    # tilt (and noise): the ratio is a power law
    a = real_data.REAL_TILT_ALPHA
    bound_lo = np.minimum((out.wave / 6000) ** a, (out.wave / 6000) ** -a)
    bound_hi = np.maximum((out.wave / 6000) ** a, (out.wave / 6000) ** -a)
    noise = 8 / real_data.REAL_NOISE_SNR[0] * np.mean(np.abs(out.flux)) / flux[kept]
    assert np.all(ratio >= bound_lo - noise) and np.all(ratio <= bound_hi + noise)


def test_real_examples_augmented_differ_draw_to_draw_but_keep_their_labels():
    names = {row["name"] for row in read_manifest(SMALL)}
    items = load_real_training(SMALL, split={n: "train" for n in names}, log=lambda *_: None)
    idx = np.zeros(6, dtype=int)
    X1, y1 = real_examples(items, idx, np.random.default_rng(1), variant="known-z", z_error_sigma=0.0, augment=True)
    X0, y0 = real_examples(items, idx, np.random.default_rng(1), variant="known-z", z_error_sigma=0.0)
    assert (y1 == items[0].code).all() and (y0 == items[0].code).all()
    assert np.ptp(X0, axis=0).max() < 1e-6                           # the same spectrum six times, unaugmented
    assert np.ptp(X1, axis=0).max() > 0.05                           # six different variants


@pytest.mark.parametrize("given, expected", [([], None), (["--real-type-power", "0.25"], 0.25)])
def test_train_command_leaves_the_real_type_power_to_the_training_default_unless_given(monkeypatch, given, expected):
    import inspect

    from astrodash_core import cli
    from astrodash_core.training import run
    from astrodash_core.training.real_data import REAL_TYPE_POWER

    default = inspect.signature(run.run_training).parameters["real_type_power"].default
    seen = {}
    monkeypatch.setattr(run, "run_training", lambda variant, out, **kw: seen.update(kw))
    args = cli.build_parser().parse_args(["train", "--variant", "known-z", "--out", "m.npz", *given])
    assert cli.cmd_train(args) == 0
    # not given: the run's own default applies, which is the one constant real_weights uses too
    assert seen.get("real_type_power", default) == (REAL_TYPE_POWER if expected is None else expected)
    assert ("real_type_power" in seen) == (expected is not None)
