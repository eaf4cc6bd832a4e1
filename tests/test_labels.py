import numpy as np
import pytest

from astrodash_core import labels


def test_label_space_is_dashs():
    assert len(labels.SN_TYPES) == 17 and labels.N_AGE_BINS == 18 and labels.N_CLASSES == 306
    assert labels.AGE_LABELS[0] == "-20 to -18" and labels.AGE_LABELS[6] == "2 to 6"
    assert labels.AGE_LABELS[-1] == "46 to 50"
    assert labels.CLASS_LABELS[labels.class_index("Ia-norm", 4.0)] == "Ia-norm: 2 to 6"


@pytest.mark.parametrize("age,label", [(-20, "-20 to -18"), (-18.5, "-20 to -18"), (-18, "-18 to -14"),
                                       (0, "-2 to 2"), (1.99, "-2 to 2"), (2, "2 to 6"), (50, "46 to 50")])
def test_age_bins(age, label):
    assert labels.AGE_LABELS[labels.age_bin(age)] == label


def test_ages_outside_are_rejected():
    assert labels.age_bin(-20.5) == -1 and labels.age_bin(50.1) == -1 and labels.age_bin(np.nan) == -1
    assert labels.class_index("Ib-norm", 80) == -1


def test_age_bin_index_accepts_labels_and_days():
    assert labels.age_bin_index("2 to 6") == labels.age_bin_index(3) == labels.age_bin_index("3.5") == 6
    with pytest.raises(ValueError, match="outside"):
        labels.age_bin_index(99)
    with pytest.raises(ValueError, match="not one of"):
        labels.age_bin_index("1 to 5")


def test_type_mapping_is_deliberate():
    assert labels.canonical_type("Ia-02cx") == "Iax"
    assert labels.canonical_type("Ia-99aa") == "Ia-91T"
    assert labels.canonical_type("Gal") is None
    with pytest.raises(KeyError):
        labels.canonical_type("Ia-made-up")
    assert labels.subtypes_of("Ic") == ("Ic-norm", "Ic-broad", "Ic-pec")
    assert {labels.BROAD_TYPE[t] for t in labels.SN_TYPES} == set(labels.BROAD_TYPES)
