import numpy as np
import pytest

from synthxray.classes import largest_remainder, match_class_names, proportional_counts, stratified_indices


def test_match_exact_then_ignoring_case():
    assert match_class_names(["NORMAL", "PNEUMONIA"], ["pneumonia", " normal "]) == [1, 0]
    assert match_class_names(["a", "A"], ["A"]) == [1]  # exact wins over the folded pair


def test_match_errors_name_both_sides():
    with pytest.raises(ValueError, match=r"no real class named \['covid'\]"):
        match_class_names(["normal", "pneumonia"], ["normal", "covid"])
    with pytest.raises(ValueError, match="several real classes"):
        match_class_names(["a", "A"], ["  a "])


def test_largest_remainder_sums_exactly():
    assert largest_remainder(7, [1, 1, 1]) == [3, 2, 2]
    assert largest_remainder(10, [1, 3]) == [3, 7]
    assert largest_remainder(0, [1, 2]) == [0, 0]
    assert proportional_counts({"normal": 234, "pneumonia": 390}, 100) == {"normal": 38, "pneumonia": 62}
    with pytest.raises(ValueError):
        largest_remainder(-1, [1])


def test_stratified_indices_keeps_proportions():
    labels = np.array([0] * 30 + [1] * 70)
    idx = stratified_indices(labels, 10, seed=0)
    assert len(idx) == 10 and (labels[idx] == 0).sum() == 3
    assert (idx == stratified_indices(labels, 10, seed=0)).all()
    assert len(stratified_indices(labels, 500, seed=0)) == 100
