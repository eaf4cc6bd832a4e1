"""The redshift model: its label space, how its posterior becomes z and an error, and the estimate it
drives when no redshift is given."""
from pathlib import Path

import numpy as np
import pytest

from astrodash_core import labels
from astrodash_core.errors import ModelFileError
from astrodash_core.models import Model
from astrodash_core.nn import DASH1D, with_outputs
from astrodash_core.preprocess import PreprocessSettings
from astrodash_core.redshift import network_redshifts


def test_redshift_labels_are_the_bins():
    z = labels.redshift_bins(labels.REDSHIFT_LABELS)
    np.testing.assert_allclose(z, labels.REDSHIFT_BINS)
    assert z[0] == 0 and z[-1] == pytest.approx(labels.REDSHIFT_MAX)
    for bad in (["z=0.1", "z=0.3", "z=0.2"], ["z=0", "z=0.1", "z=0.3"], ["a", "b", "c"], ["z=0", "z=0.1"]):
        with pytest.raises(ValueError):
            labels.redshift_bins(bad)


@pytest.fixture
def sequential_ladder(monkeypatch):
    """The ladder one rung at a time, never reading cuts ahead (tests that follow its calls one by one)."""
    from astrodash_core import redshift

    monkeypatch.setattr(redshift, "SPECULATE_UP_TO", 0)


def _model(labels_, variant="redshift"):
    settings = PreprocessSettings()
    arch = with_outputs(DASH1D, len(labels_))
    rng = np.random.default_rng(0)
    weights = {}
    length, channels = settings.grid.nw, 1
    for i, layer in enumerate(arch):
        shape = (layer["out"], layer["in"], layer["k"]) if layer["type"] == "conv" else (layer["out"], layer["in"])
        weights[f"{i}.weight"] = rng.normal(0, 0.01, shape).astype(np.float32)
        weights[f"{i}.bias"] = np.zeros(layer["out"], np.float32)
    return Model(arch=arch, weights=weights, labels=list(labels_), grid=settings.grid.to_dict(),
                 preprocessing=settings.to_dict(), variant=variant)


def test_a_redshift_model_needs_redshift_labels():
    m = _model(labels.REDSHIFT_LABELS)
    assert m.predict(np.zeros((2, m.grid["nw"]), np.float32)).shape == (2, len(labels.REDSHIFT_BINS))
    with pytest.raises(ModelFileError, match="redshift model labels"):
        _model([f"class {i}" for i in range(len(labels.REDSHIFT_BINS))])
    with pytest.raises(ModelFileError, match="variant"):
        _model(labels.REDSHIFT_LABELS, variant="photometric")


class _Posterior:
    """A redshift model whose posterior is given: Gaussians of width ``width`` at ``centres``."""

    def __init__(self, centres, width, target=labels.REDSHIFT_TARGET_SIGMA):
        self.redshift_bins = labels.REDSHIFT_BINS
        self.provenance = {"loss": {"target_sigma": target}}
        p = np.exp(-0.5 * ((self.redshift_bins[None] - np.asarray(centres)[:, None]) / width) ** 2)
        self.p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, fluxes):
        return self.p


def test_posterior_peak_to_a_fraction_of_a_bin_and_error_from_its_excess_width():
    centres = np.array([0.0123, 0.1, 0.3377, 0.6012])
    errors = []
    for width in (0.011, 0.015, 0.03):
        z, err = network_redshifts(_Posterior(centres, width), None)
        assert np.all(np.abs(z - centres) < 0.25 * labels.REDSHIFT_STEP)
        # spread beyond the training target's width is the model's own uncertainty (the peak down to 1 % of
        # its height is a little narrower than the whole Gaussian, so the error is a little smaller)
        expected = np.hypot(np.sqrt(width ** 2 - labels.REDSHIFT_TARGET_SIGMA ** 2), labels.REDSHIFT_STEP / 2)
        assert np.all((err[1:] > 0.8 * expected) & (err[1:] <= expected * 1.01)), (width, err, expected)
        errors.append(err)
    assert np.all(np.diff(errors, axis=0) > 0)  # a wider posterior, a larger error


def test_a_second_peak_does_not_widen_the_error():
    one = _Posterior([0.3], 0.012)
    two = _Posterior([0.3], 0.012)
    two.p = two.p + 0.5 * _Posterior([0.6], 0.012).p
    (z1, e1), (z2, e2) = network_redshifts(one, None), network_redshifts(two, None)
    assert z1 == pytest.approx(z2) and e1 == pytest.approx(e2)


def test_peak_at_the_edge_of_the_range_stays_on_it():
    z, err = network_redshifts(_Posterior([0.0, labels.REDSHIFT_MAX], 0.004), None)
    np.testing.assert_allclose(z, [0.0, labels.REDSHIFT_MAX])
    assert np.all(err >= labels.REDSHIFT_STEP / 2)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sn1994D_p02.dat"


@pytest.mark.parametrize("z, method", [(-0.008, "templates"), (0.004, "templates"), (0.3, "network"),
                                       (0.62, "network")])
def test_shipped_models_estimate_the_redshift_of_a_real_spectrum(z, method):
    """SN 1994D (a rest-frame spectrum) moved to z: the network near the middle of its range, the templates
    near 0, where the estimate may be negative (a blueshifted nearby galaxy)."""
    import astrodash_core as ad

    s = ad.read_spectrum(EXAMPLE)
    moved = ad.Spectrum(s.wave * (1 + z), s.flux, name="moved")
    est = ad.estimate_redshift(moved)
    assert est.method == method and abs(est.redshift - z) < 0.02 and est.error > 0  # the target's 0.02
    if z < 0:
        assert est.redshift < 0
    r = ad.classify(moved)[0]
    assert r.redshift_source == "estimated" and r.redshift == pytest.approx(est.redshift)
    assert r.best_match.broad_type == "Ia"


def test_the_estimate_stays_inside_the_range_asked_for():
    """SN 1979C (featureless) near z = 0: its best template peak sits at the edge of -0.01 <= z."""
    import astrodash_core as ad

    for z_min, z_max in ((-0.01, 0.04), (0.1, 0.3)):
        est = ad.estimate_redshift(EXAMPLE.parent / "sn1979C_p07.dat", z_min=z_min, z_max=z_max)
        assert z_min <= est.redshift <= z_max
    assert ad.estimate_redshift(EXAMPLE.parent / "sn1979C_p07.dat").redshift >= -0.01


def test_posterior_alternatives_are_the_other_peaks_with_their_share_of_the_posterior():
    from astrodash_core.redshift import posterior_alternatives, posterior_peaks

    bins = labels.REDSHIFT_BINS
    p = _Posterior([0.3], 0.012).p[0] + 0.5 * _Posterior([0.6], 0.012).p[0] + 0.1 * _Posterior([0.1], 0.012).p[0]
    alt, est_mass, top_mass = posterior_peaks(p, bins, 0.3)
    assert len(alt) == 1 and alt[0][0] == pytest.approx(0.6)
    # masses are shares of the whole posterior: the bins within 3 of each peak, counted directly here
    share = [p[np.abs(bins - z) <= 0.0151].sum() / p.sum() for z in (0.3, 0.6)]
    assert est_mass == pytest.approx(share[0]) and top_mass == est_mass and alt[0][1] == pytest.approx(share[1])
    assert alt[0][1] / est_mass == pytest.approx(0.5, rel=0.02) and est_mass + alt[0][1] <= 1
    assert posterior_alternatives(p, bins, 0.3) == alt
    # a peak below the fraction (0.1 < 0.2 of the highest) is not an alternative; one peak, none
    assert posterior_alternatives(_Posterior([0.3], 0.012).p[0], bins, 0.3) == ()
    # a peak next to the estimate is the same redshift, not an alternative; when the estimate is not the
    # highest peak (the templates decided it), the highest peak is an alternative
    (z, w), = posterior_alternatives(p, bins, 0.59)
    assert z == pytest.approx(0.3) and w == pytest.approx(share[0])


def test_peak_masses_never_sum_above_one_even_when_windows_touch():
    """Peaks 0.025 apart: their ±3-bin windows overlap; each bin counts once."""
    from astrodash_core.redshift import posterior_peaks

    bins = labels.REDSHIFT_BINS
    p = np.zeros(bins.size)
    p[[40, 45, 50]] = [1.0, 0.9, 0.8]  # z = 0.2, 0.225, 0.25
    alt, est_mass, _ = posterior_peaks(p, bins, 0.2)
    assert [z for z, _ in alt] == pytest.approx([0.225, 0.25])
    assert est_mass + sum(m for _, m in alt) == pytest.approx(1.0)
    assert est_mass == pytest.approx(1 / 2.7) and alt[0][1] == pytest.approx(0.9 / 2.7)


def _fixed_posterior_model(p):
    """A real redshift model file whose posterior is ``p`` whatever the spectrum: zero weights, the last
    layer's bias log(p)."""
    m = _model(labels.REDSHIFT_LABELS)
    for name, w in m.weights.items():
        w[...] = 0
    m.weights[f"{len(m.arch) - 1}.bias"][...] = np.log(np.maximum(p, 1e-30))
    return Model(arch=m.arch, weights=m.weights, labels=m.labels, grid=m.grid, preprocessing=m.preprocessing,
                 variant="redshift", provenance={"loss": {"target_sigma": labels.REDSHIFT_TARGET_SIGMA}})


def test_classify_without_z_averages_over_the_posteriors_peaks():
    """p(class) = sum over z of p(class | z) p(z): the known-z model's probabilities at the estimate and at
    the other peak, weighted by their posterior mass."""
    import astrodash_core as ad
    from astrodash_core.classify import Classifier
    from astrodash_core.redshift import posterior_alternatives

    s = ad.read_spectrum(EXAMPLE)
    moved = ad.Spectrum(s.wave * 1.3, s.flux, name="moved")
    two = _Posterior([0.3], 0.012).p[0] + 0.5 * _Posterior([0.6], 0.012).p[0]
    clf = Classifier(redshift_model=_fixed_posterior_model(two / two.sum()))
    r = clf.classify(moved, probabilities=True, rlap=False)[0]
    assert r.redshift == pytest.approx(0.3, abs=0.003)
    (z_ref, w_ref), = posterior_alternatives(two / two.sum(), labels.REDSHIFT_BINS, r.redshift)
    w0 = r.redshift_mass
    (z_alt, w), = r.redshift_alternatives  # the model's float32 posterior against the float64 one here
    assert z_alt == pytest.approx(z_ref) and w == pytest.approx(w_ref, rel=1e-5)
    at = {z: clf.classify(moved, redshift=z, probabilities=True, rlap=False)[0].probabilities
          for z in (r.redshift, z_alt)}
    np.testing.assert_allclose(r.probabilities, (w0 * at[r.redshift] + w * at[z_alt]) / (w0 + w), atol=1e-6)
    assert w / w0 == pytest.approx(0.5, rel=0.03) and w0 + w <= 1
    assert r.to_dict()["redshift_alternatives"] == [{"redshift": z_alt, "weight": w}]
    assert r.to_dict()["redshift_mass"] == w0
    one = Classifier(redshift_model=_fixed_posterior_model(_Posterior([0.3], 0.012).p[0]))
    r1 = one.classify(moved, probabilities=True, rlap=False)[0]
    np.testing.assert_allclose(r1.probabilities, one.classify(moved, redshift=r1.redshift, probabilities=True,
                                                              rlap=False)[0].probabilities, atol=1e-6)
    assert r1.redshift_alternatives == () and "redshift_alternatives" not in r1.to_dict()


def test_the_agnostic_model_runs_only_for_the_rows_the_templates_decide(monkeypatch):
    """Given a function for the agnostic probabilities, estimate_observed asks it for the rows whose network
    estimate lies within EDGE of the ends of the range (the templates decide those), and its estimates are those
    of the eager call; classify runs the agnostic model on those spectra alone."""
    import astrodash_core as ad
    from astrodash_core.classify import Classifier
    from astrodash_core.redshift import EDGE, estimate_observed, trimmed_network_redshifts
    from astrodash_core.templates import default_bank

    s = ad.read_spectrum(EXAMPLE)
    spectra = [ad.Spectrum(s.wave * (1 + z), s.flux, name=str(z)) for z in (0.004, 0.3, 0.62, -0.008)]
    bank = default_bank()
    clf = Classifier()
    pre = ad.preprocess(spectra, redshift=0.0, settings=bank.settings)
    probs = clf.model_for("agnostic").predict(pre.flux)
    z_model = clf.redshift_model()
    network = trimmed_network_redshifts(z_model, spectra)
    bins = z_model.redshift_bins
    edge = np.flatnonzero((network[0] <= bins[0] + EDGE) | (network[0] >= bins[-1] - EDGE))
    assert edge.tolist() == [0, 3]
    asked: list[int] = []

    def lazy_probs(idx):
        asked.extend(np.asarray(idx).tolist())
        return probs[idx]

    lazy = estimate_observed(pre, lazy_probs, bank, z_model, match=False, network=network)
    eager = estimate_observed(pre, probs, bank, z_model, match=False, network=network)
    assert sorted(asked) == edge.tolist()
    assert [(e.redshift, e.error, e.method, e.template) for e in lazy] == \
        [(e.redshift, e.error, e.method, e.template) for e in eager]
    assert [e.method for e in lazy] == ["templates", "network", "network", "templates"]

    agnostic = clf.model_for("agnostic")
    seen: list[int] = []
    predict = agnostic.predict
    monkeypatch.setattr(agnostic, "predict", lambda x: (seen.append(len(x)), predict(x))[1])
    results = clf.classify(spectra, rlap=False)
    assert sum(seen) == 2 and [r.redshift for r in results] == pytest.approx([e.redshift for e in eager])


def _label_bank(classes):
    """A template bank whose rows have the given (subtype, age bin) classes (flux unused here)."""
    from astrodash_core.templates import TemplateBank

    label = np.array([labels.SN_TYPES.index(t) * labels.N_AGE_BINS + a for t, a in classes])
    m = label.size
    return TemplateBank(flux=np.zeros((m, 1024), np.float32), lo=np.zeros(m, int), hi=np.full(m, 1024),
                        label=label, age=np.zeros(m), names=[f"t{i}" for i in range(m)], settings=PreprocessSettings())


def test_candidate_templates_are_the_best_classes_and_their_neighbouring_ages():
    from astrodash_core.redshift import candidate_rows

    bank = _label_bank([("Ia-norm", 5), ("Ia-norm", 5), ("Ia-norm", 5), ("Ia-norm", 6), ("Ia-norm", 8),
                        ("Ib-norm", 5), ("IIP", 0), ("IIP", 17), ("Ic-pec", 17), ("IIL", 0)])

    def probs(*classes):  # the classes, most probable first
        p = np.zeros(labels.N_CLASSES)
        for k, (t, a) in enumerate(classes):
            p[labels.SN_TYPES.index(t) * labels.N_AGE_BINS + a] = 1.0 / (k + 2)
        return p

    def rows(*args, **kw):
        return candidate_rows(bank, *args, **kw).tolist()

    assert rows(probs(("Ia-norm", 5)), top=1) == [0, 1, 2, 3]  # bins 4-6 of Ia-norm; bin 8 is too far
    assert rows(probs(("Ia-norm", 5)), top=1, age_spread=0) == [0, 1, 2]
    assert rows(probs(("Ia-norm", 5)), top=1, age_spread=3) == [0, 1, 2, 3, 4]
    assert rows(probs(("Ia-norm", 5)), top=1, per_class=2) == [0, 2, 3]  # spread over the class's templates
    assert rows(probs(("Ia-norm", 5)), top=1, per_class=None) == [0, 1, 2, 3]
    # the age bins end at each subtype's: IIP bin 0 does not reach Ic-pec bin 17, IIP bin 17 not IIL bin 0
    assert rows(probs(("IIP", 0), ("IIP", 17)), top=2) == [6, 7]
    assert rows(probs(("Ib-norm", 5), ("IIP", 0), ("Ia-norm", 8), ("Ia-norm", 1), ("IIL", 3), ("Ic-pec", 15)),
                top=5) == [4, 5, 6]  # the five most probable classes, not the sixth
    assert rows(probs(("Ib-norm", 5), ("Ia-norm", 8)), top=1) == [5]  # top 1: the best class only
    assert rows(probs(("Ib-norm", 5), ("Ia-norm", 8)), top=2) == [4, 5]
    # no template near the best classes: the best class's subtype at any age, else every template
    assert rows(probs(("Ia-norm", 14), ("Ib-norm", 12)), top=2) == [0, 1, 2, 3, 4]
    assert rows(probs(("Ic-broad", 9)), top=5) == list(range(10))
    assert rows(probs(("Ic-broad", 9)), top=5, per_class=1) == [0, 3, 4, 5, 6, 7, 8, 9]


def test_the_template_estimate_is_the_rlap_weighted_median_of_the_templates_near_the_best_rlap():
    """Templates with rlap >= 0.8 of the best (8 of 10 included) vote with their rlap; the error adds the best
    peak's width (FWHM / 2.355 bins, narrowed by 1 + r) and the spread of the votes in quadrature."""
    from astrodash_core.redshift import _from_peaks
    from astrodash_core.rlap import Peaks

    bank = _label_bank([("Ia-norm", 5), ("Ia-91T", 6), ("Ic-norm", 2), ("Ia-norm", 7), ("IIP", 9)])
    rows = np.array([4, 0, 1, 2, 3])
    rlap = np.array([7.9, 10.0, 8.0, 30.0 / 4, 9.0])
    z = np.array([0.30, 0.10, 0.12, 0.50, 0.11])
    width, r = np.array([1.0, 6.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 5.0, 2.0, 7.0])
    n = rows.size
    est = _from_peaks(Peaks(lag=np.zeros(n), height=np.zeros(n), r=r, lap=np.zeros(n), rlap=rlap, width=width,
                            redshift=z), rows, bank)
    # votes 0.10 (10), 0.11 (9), 0.12 (8): the weight passes half of 27 at 0.11
    assert est.redshift == 0.11 and est.rlap == 10.0
    assert (est.template, est.sn_type, est.age) == ("t0", "Ia-norm", "-2 to 2")
    peak = 1.11 * bank.grid.dwlog * 6.0 / 2.355 / (1 + 3.0)
    spread = np.sqrt((10 * 0.01 ** 2 + 9 * 0 + 8 * 0.01 ** 2) / 27)
    assert est.error == pytest.approx(np.hypot(peak, spread), rel=1e-12)
    # one template alone: no spread; a negative r does not widen the peak beyond its width
    one = _from_peaks(Peaks(lag=np.zeros(1), height=np.zeros(1), r=np.array([-0.5]), lap=np.zeros(1),
                            rlap=np.array([4.0]), width=np.array([5.0]), redshift=np.array([0.2])), rows[:1], bank)
    assert one.redshift == 0.2 and one.error == pytest.approx(1.2 * bank.grid.dwlog * 5.0 / 2.355, rel=1e-12)
    assert (one.template, one.sn_type, one.age, one.method) == ("t4", "IIP", "14 to 18", "templates")


def test_posterior_peak_masses_by_hand_with_the_top_peak_last_or_an_alternative():
    """Masses counted by hand: each bin within PEAK_HALF_WIDTH (3) of a centre goes to the nearest one (ties to
    the first listed: the estimate, then the alternatives, then the top)."""
    from astrodash_core.redshift import posterior_peaks

    bins = np.round(np.arange(0, 0.1, 0.005), 3)  # 20 bins
    p = np.zeros(20)
    p[2], p[3] = 2.0, 1.0          # the estimate's peak at bin 2 (z 0.01)
    p[19], p[18] = 4.0, 1.0        # the highest peak at the last bin (z 0.095): a peak with no right neighbour
    alt, est_mass, top_mass = posterior_peaks(p, bins, 0.01)
    total = p.sum()
    assert alt == ((0.095, 5.0 / total),)           # the top peak is also the one alternative
    assert est_mass == 3.0 / total and top_mass == 5.0 / total
    # the highest bin two bins from the estimate: not an alternative (within 0.02), owned by the estimate's
    # peak where nearer; the top's own mass is what is nearer to it
    q = np.zeros(20)
    q[4], q[6], q[7], q[8], q[15] = 1.0, 3.0, 0.5, 0.5, 1.0
    alt, est_mass, top_mass = posterior_peaks(q, bins, 0.02)   # estimate at bin 4, top at bin 6, peak at 15 too
    total = q.sum()
    assert alt == ((0.075, 1.0 / total),)
    # centres: est 4, alternative 15, top 6: bin 5 is a tie (est), 6-9 the top's, 12-18 the alternative's
    assert est_mass == 1.0 / total and top_mass == 4.0 / total


def test_the_error_is_the_spread_of_the_peak_down_to_one_percent_of_its_height():
    from astrodash_core.redshift import posterior_redshifts

    bins = np.round(np.arange(0, 0.2, 0.005), 3)  # 40 bins
    p = np.zeros((1, 40))
    p[0, 20] = 1.0
    p[0, 19] = p[0, 21] = 0.5
    p[0, 18] = 0.01                 # exactly 1 % of the height: still the peak's
    p[0, 17] = 0.009                # below 1 %: where the peak ends on the left
    p[0, 16] = 0.3                  # another hump beyond it: not the peak's
    p[0, 22] = 0.004                # below 1 %: the peak ends on the right
    z, err = posterior_redshifts(p, bins, target_sigma=0.0)
    core = {18: 0.01, 19: 0.5, 20: 1.0, 21: 0.5}
    w = np.array(list(core.values())) / sum(core.values())
    zc = np.array([bins[k] for k in core])
    assert z[0] == pytest.approx(0.1)  # symmetric neighbours: no parabola shift
    var = float((w * (zc - z[0]) ** 2).sum())
    assert err[0] == pytest.approx(np.sqrt(var + 0.0025 ** 2), rel=1e-12)


def test_the_first_rung_reads_the_uncut_rows_it_is_given(sequential_ladder):
    """With ``uncut`` rows, the ladder's first rung sends those rows to the network (no preprocessing of its
    own); later rungs preprocess their cuts."""
    import astrodash_core as ad
    from astrodash_core.redshift import trimmed_network_redshifts

    s = ad.read_spectrum(EXAMPLE)
    spectra = [ad.Spectrum(s.wave * 1.25, s.flux, name="a"), ad.Spectrum(s.wave * 1.05, s.flux, name="b")]
    inner = _fixed_posterior_model(_Posterior([0.3], 0.012).p[0])  # every estimate 0.3: above the first cuts
    seen: list[np.ndarray] = []

    class Recording:
        preprocessing, provenance, redshift_bins = inner.preprocessing, inner.provenance, inner.redshift_bins

        def predict(self, rows):
            seen.append(np.array(rows))
            return inner.predict(rows)

    uncut = np.full((2, 1024), 0.125, dtype=np.float32)  # not what preprocessing would give: a marker
    z, _, _, cut = trimmed_network_redshifts(Recording(), spectra, uncut=uncut)
    assert np.array_equal(seen[0], uncut) and len(seen) > 1
    assert not any(np.all(rows == 0.125) for rows in seen[1:])
    assert z == pytest.approx([0.3, 0.3], abs=0.003) and list(cut) == [0.3, 0.3]


def test_the_templates_decide_within_edge_of_the_top_of_the_networks_range():
    import astrodash_core as ad
    from astrodash_core.redshift import EDGE, estimate_observed
    from astrodash_core.templates import default_bank

    s = ad.read_spectrum(EXAMPLE)
    bank = default_bank()
    pre = ad.preprocess([s, s, s], redshift=0.0, settings=bank.settings)
    z_model = _fixed_posterior_model(_Posterior([0.3], 0.012).p[0])
    top = float(z_model.redshift_bins[-1])
    z = np.array([top - EDGE - 0.003, top - EDGE + 0.001, 0.5])
    post = np.tile(_Posterior([0.3], 0.012).p[0], (3, 1))
    probs = np.full((3, labels.N_CLASSES), 1.0 / labels.N_CLASSES)
    out = estimate_observed(pre, probs, bank, z_model, match=False, network=(z, np.full(3, 0.01), post))
    assert [e.method for e in out] == ["network", "templates", "network"]
    assert out[0].redshift == z[0] and out[2].redshift == 0.5


def test_estimate_messages_name_the_counts():
    import astrodash_core as ad
    from astrodash_core.redshift import estimate_from_rows, estimate_many
    from astrodash_core.templates import default_bank

    s = ad.read_spectrum(EXAMPLE)
    bank = default_bank()
    pre = ad.preprocess([s, s], redshift=0.0, settings=bank.settings)
    with pytest.raises(ValueError, match=r"^estimate_from_rows takes one preprocessed spectrum, got 2$"):
        estimate_from_rows(pre, bank, np.arange(3))
    with pytest.raises(ValueError, match=r"^got 1 template row sets for 2 spectra$"):
        estimate_many(pre, [np.arange(3)], bank)
    one = estimate_from_rows(pre.take(np.array([0])), bank, np.arange(5))
    assert one.mass is None and one.top_mass is None and one.alternatives == ()  # no posterior behind it


# ---- from the full mutation run's survivors: the posterior's peak, error and peaks against loops written here --

def _reference_posterior(p, bins, target_sigma):
    """posterior_redshifts' definition, bin by bin: the argmax refined by the parabola through it and its two
    neighbours (only when it has both), the error from the peak's hump down to 1 % of its height."""
    step = bins[1] - bins[0]
    zs, errs = [], []
    for row in p:
        k = int(np.argmax(row))
        shift = 0.0
        if 0 < k < len(row) - 1:
            a, b, c = row[k - 1], row[k], row[k + 1]
            if a - 2 * b + c < 0:
                shift = 0.5 * (a - c) / (a - 2 * b + c)
        z = bins[k] + shift * step
        lo = k
        while lo > 0 and row[lo - 1] >= 0.01 * row[k]:
            lo -= 1
        hi = k
        while hi < len(row) - 1 and row[hi + 1] >= 0.01 * row[k]:
            hi += 1
        core = row[lo:hi + 1] / row[lo:hi + 1].sum()
        var = float((core * (bins[lo:hi + 1] - z) ** 2).sum())
        zs.append(z)
        errs.append(np.sqrt(max(var - target_sigma ** 2, 0.0) + (step / 2) ** 2))
    return np.array(zs), np.array(errs)


def test_posterior_redshifts_against_a_bin_by_bin_reference_at_the_edges_and_next_to_them():
    from astrodash_core.redshift import posterior_redshifts

    bins = 0.3 + 0.01 * np.arange(12)  # not starting at 0: the step is a difference, not the second bin
    rng = np.random.default_rng(18)
    rows = []
    for k in (0, 1, 5, 10, 11):  # the ends, next to them (the parabola needs both neighbours), the middle
        row = rng.uniform(0.0, 0.02, 12)
        row[k] = 1.0
        if k > 0:
            row[k - 1] = 0.7
        if k < 11:
            row[k + 1] = 0.4  # asymmetric: the parabola moves the peak
        rows.append(row)
    hump = np.full(12, 0.05)  # a hump reaching the first bin: nothing below 1 % on the left
    hump[3] = 1.0
    rows.append(hump)
    p = np.array(rows)
    for target in (0.0, 0.004):
        z, err = posterior_redshifts(p, bins, target)
        z_ref, err_ref = _reference_posterior(p, bins, target)
        np.testing.assert_allclose(z, z_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(err, err_ref, rtol=1e-12)


def test_posterior_peaks_of_an_empty_posterior_and_of_peaks_at_the_ends_or_on_the_thresholds():
    from astrodash_core.redshift import (ALTERNATIVE_FRACTION, ALTERNATIVE_SEPARATION, MAX_ALTERNATIVES,
                                         posterior_peaks)

    bins = 0.01 * np.arange(40)
    assert posterior_peaks(np.zeros(40), bins, 0.1) == ((), 0.0, 0.0)
    # a second peak in the first bin is an alternative; one exactly ALTERNATIVE_FRACTION of the top counts
    p = np.zeros(40)
    p[20], p[0], p[30] = 5.0, 2.0, 5.0 * ALTERNATIVE_FRACTION
    alternatives, mass, top = posterior_peaks(p, bins, bins[20])
    assert [z for z, _ in alternatives] == [bins[0], bins[30]]
    assert mass == top == pytest.approx(5.0 / 8.0) and alternatives[0][1] == pytest.approx(2.0 / 8.0)
    # a peak exactly ALTERNATIVE_SEPARATION from the estimate is not an alternative, a flat-topped one is
    p = np.zeros(40)
    p[0] = 1.0
    p[2] = 0.9                                       # bins[2] - bins[0] == ALTERNATIVE_SEPARATION exactly
    p[10] = p[11] = 0.5                              # a plateau: its first bin stands for it
    assert bins[2] - bins[0] == ALTERNATIVE_SEPARATION
    alternatives, _, _ = posterior_peaks(p, bins, 0.0)
    assert [z for z, _ in alternatives] == [bins[10]]
    # at most MAX_ALTERNATIVES, the highest ones
    p = np.zeros(40)
    p[[5, 12, 19, 26, 33]] = [1.0, 0.5, 0.9, 0.8, 0.7]
    alternatives, _, _ = posterior_peaks(p, bins, bins[5])
    assert [z for z, _ in alternatives] == [bins[19], bins[26]][:MAX_ALTERNATIVES] and MAX_ALTERNATIVES == 2


def test_the_models_training_target_width_comes_out_of_the_error():
    """network_redshifts and the ladder take the width the model was trained towards from its provenance."""
    import astrodash_core as ad
    from astrodash_core.redshift import posterior_redshifts, trimmed_network_redshifts

    for target in (0.0, 0.009):
        model = _Posterior([0.3], 0.012, target=target)
        z, err = network_redshifts(model, None)
        assert err == pytest.approx(posterior_redshifts(model.p.astype(np.float64), model.redshift_bins,
                                                        target)[1], rel=1e-12)
    s = ad.read_spectrum(EXAMPLE)
    p = _Posterior([0.3], 0.012).p[0]
    errors = []
    for target in (0.0, 0.009):
        inner = _fixed_posterior_model(p)
        inner.provenance = {"loss": {"target_sigma": target}}
        _, err, post, _ = trimmed_network_redshifts(inner, [s], ladder=(0.0,))
        assert err[0] == pytest.approx(posterior_redshifts(post, inner.redshift_bins, target)[1][0], rel=1e-12)
        errors.append(err[0])
    assert errors[0] > errors[1]


def test_an_estimate_from_the_network_is_matched_to_templates_unless_told_not_to():
    import astrodash_core as ad
    from astrodash_core.redshift import estimate_observed
    from astrodash_core.templates import default_bank

    s = ad.read_spectrum(EXAMPLE)
    bank = default_bank()
    pre = ad.preprocess([s], redshift=0.0, settings=bank.settings)
    z_model = _fixed_posterior_model(_Posterior([0.3], 0.012).p[0])
    probs = np.full((1, labels.N_CLASSES), 1.0 / labels.N_CLASSES)
    matched = estimate_observed(pre, probs, bank, z_model)[0]  # reads the network itself, matches by default
    assert matched.method == "network" and matched.redshift == pytest.approx(0.3, abs=0.003)
    assert matched.template in bank.names and matched.rlap >= 0 and matched.sn_type in labels.SN_TYPES
    bare = estimate_observed(pre, probs, bank, z_model, match=False)[0]
    assert bare.to_dict() == {"redshift": bare.redshift, "redshift_error": bare.error, "rlap": pytest.approx(np.nan,
                              nan_ok=True), "template": "", "type": "", "age": "", "method": "network"}
    assert matched.to_dict()["template"] == matched.template and matched.to_dict()["type"] == matched.sn_type
    assert matched.to_dict()["age"] == matched.age and matched.to_dict()["rlap"] == matched.rlap


def test_template_row_sets_may_hold_one_template_but_not_none():
    import astrodash_core as ad
    from astrodash_core.redshift import estimate_many
    from astrodash_core.templates import default_bank

    bank = default_bank()
    s = ad.read_spectrum(EXAMPLE)
    pre = ad.preprocess([s, s], redshift=0.0, settings=bank.settings)
    one = estimate_many(pre, [np.array([3]), np.array([3, 4])], bank)
    assert one[0].template == bank.names[3]
    with pytest.raises(ValueError, match="^no templates to correlate with$"):
        estimate_many(pre, [np.array([3]), np.array([], dtype=np.int64)], bank)


def test_the_templates_search_a_window_reaching_past_each_end_of_the_networks_range():
    """Within EDGE of an end (inclusive) the templates decide, searching [Z_MIN, bins[0] + 2 EDGE] at the bottom and
    [bins[-1] - 2 EDGE, Z_MAX] at the top: SN 1994D at z = 0.05 with the network saying 0 is looked for up to 0.04
    only (the window's end), and at z = 0.9 with the network saying 1.0, no lower than 0.96."""
    import astrodash_core as ad
    from astrodash_core.redshift import EDGE, Z_MAX, estimate_observed
    from astrodash_core.templates import default_bank

    s = ad.read_spectrum(EXAMPLE)
    bank = default_bank()
    z_model = _fixed_posterior_model(_Posterior([0.3], 0.012).p[0])
    bins = z_model.redshift_bins
    probs = np.zeros((1, labels.N_CLASSES))
    probs[0, labels.class_index("Ia-norm", 2.0)] = 1.0  # SN 1994D's class: its templates find its redshift

    def estimate(z_true, z_network):
        pre = ad.preprocess([ad.Spectrum(s.wave * (1 + z_true), s.flux)], redshift=0.0, settings=bank.settings)
        return estimate_observed(pre, probs, bank, z_model, match=False,
                                 network=(np.array([z_network]), np.full(1, 0.01), _Posterior([0.3], 0.012).p))[0]

    low, high = estimate(0.05, 0.0), estimate(0.9, bins[-1])
    assert low.method == high.method == "templates"
    assert low.redshift == pytest.approx(bins[0] + 2 * EDGE, abs=1e-12)  # where it would be found, 0.0545, is outside
    assert high.redshift == pytest.approx(bins[-1] - 2 * EDGE, abs=1e-12) and bins[-1] <= Z_MAX
    # the ends are inclusive, and no wider than EDGE
    assert estimate(0.0, bins[0] + EDGE).method == estimate(0.9, bins[-1] - EDGE).method == "templates"
    assert estimate(0.0, bins[0] + EDGE + 0.002).method == "network"


class _Scripted:
    """A redshift model (the shipped one's settings and bins) answering call after call with posteriors centred
    on the redshifts of ``answers`` (the last repeated), and recording how many rows each call read."""

    def __init__(self, answers):
        inner = _fixed_posterior_model(_Posterior([0.3], 0.012).p[0])
        self.preprocessing, self.provenance, self.redshift_bins = inner.preprocessing, inner.provenance, \
            inner.redshift_bins
        self.answers, self.calls = list(answers), []

    def predict(self, rows):
        z = self.answers[min(len(self.calls), len(self.answers) - 1)]
        self.calls.append(len(rows))
        return np.tile(_Posterior([z], 0.012).p[0], (len(rows), 1))


def test_the_ladder_reads_a_spectrum_again_only_when_a_cut_changes_it(sequential_ladder):
    """Answers never consistent with a cut: every rung is tried, and a spectrum is read at a rung only when
    its cut W0 (1 + z_k) moves its start, counted here from the wavelengths."""
    import astrodash_core as ad
    from astrodash_core.redshift import TRIM_LADDER, trimmed_network_redshifts

    s = ad.read_spectrum(EXAMPLE)
    spectra = [ad.Spectrum(s.wave * (1 + z), s.flux) for z in (0.0, 0.3, 0.45)]
    model = _Scripted([0.95])
    z, _, _, cut = trimmed_network_redshifts(model, spectra)
    w0 = PreprocessSettings.from_dict(model.preprocessing).grid.w0
    first = np.array([max(sp.wave[0], w0) for sp in spectra])
    starts = [np.maximum(first, w0 * (1 + zk)) for zk in TRIM_LADDER]
    expected = [len(spectra)] + [int(np.sum(b > a)) for a, b in zip(starts, starts[1:])]
    assert model.calls == [n for n in expected if n]
    assert list(cut) == [0.0, 0.0, 0.0] and z == pytest.approx([0.95] * 3, abs=0.003)  # the uncut estimates


def test_a_spectrum_consistent_with_no_cut_keeps_the_uncut_estimate_not_a_later_one(sequential_ladder):
    import astrodash_core as ad
    from astrodash_core.redshift import trimmed_network_redshifts

    s = ad.read_spectrum(EXAMPLE)
    model = _Scripted([0.9, 0.95])  # the uncut read says 0.9, every cut 0.95: above each rung
    z, _, post, cut = trimmed_network_redshifts(model, [ad.Spectrum(s.wave, s.flux)])
    assert len(model.calls) > 2 and cut[0] == 0.0
    assert z[0] == pytest.approx(0.9, abs=0.003)
    assert post[0] == pytest.approx(_Posterior([0.9], 0.012).p[0].astype(np.float64), abs=1e-7)


def test_reading_cuts_ahead_gives_the_ladders_answers(monkeypatch):
    """Few spectra undecided: their next cuts are read ahead, in fewer and larger forward passes, and the ladder
    takes the same cut and the same estimate as one rung at a time (real spectra alone and three together;
    the forward pass's last bits depend on how many rows it reads)."""
    from astrodash_core import redshift
    from astrodash_core.models import default_model
    from astrodash_core.reading import read_spectrum

    from conftest import shared_data

    model = default_model("redshift")
    files = sorted(shared_data("real", what="real spectra").glob("*.dat"))[5::97]
    spectra = [read_spectrum(f) for f in files]
    calls = []

    class Counting:
        preprocessing, provenance, redshift_bins = model.preprocessing, model.provenance, model.redshift_bins

        def predict(self, rows):
            calls.append(len(rows))
            return model.predict(rows)

    groups = [[s] for s in spectra] + [spectra[:3]]
    got, got_calls = [], []
    for group in groups:
        calls.clear()
        got.append(redshift.trimmed_network_redshifts(Counting(), group))
        got_calls.append(list(calls))
    monkeypatch.setattr(redshift, "SPECULATE_UP_TO", 0)
    sequential_calls = []
    for group, (z, err, post, cut), ahead_calls in zip(groups, got, got_calls):
        calls.clear()
        z0, err0, post0, cut0 = redshift.trimmed_network_redshifts(Counting(), group)
        sequential_calls.append(len(calls))
        assert list(cut) == list(cut0)
        np.testing.assert_allclose(z, z0, rtol=0, atol=1e-6)
        np.testing.assert_allclose(err, err0, rtol=0, atol=1e-6)
        np.testing.assert_allclose(post, post0, rtol=0, atol=1e-5)
        assert len(ahead_calls) <= len(calls) and sum(ahead_calls) >= sum(calls)
        assert max(ahead_calls) <= redshift.SPECULATE_CUTS * len(group)
    assert sum(map(len, got_calls)) < sum(sequential_calls)  # fewer forward passes in all
    assert len({float(c) for _, _, _, cuts in got for c in cuts}) >= 3  # the files end on several rungs
