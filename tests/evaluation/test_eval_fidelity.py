"""Label fidelity with a supplied classifier (the experiments protocol) and with a CNN trained on the spot."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from tinydata import xray_like

from synthxray.evaluation import label_fidelity


class OpacityClassifier:
    """Knows that class 'pneumonia' images are brighter inside the lungs. Columns in class_names order."""

    class_names = ["pneumonia", "normal"]  # deliberately not the data's order: matched by name

    def predict_proba(self, images):
        scores = []
        for im in images:
            a = np.asarray(im.convert("L").resize((32, 32)), dtype=np.float32)
            lungs = max(a[12:20, 7:12].mean(), a[12:20, 20:25].mean())
            scores.append(lungs - a.mean())  # the brighter lung core vs the whole image
        p = 1 / (1 + np.exp(-(np.array(scores) + 25) / 5))
        return np.stack([p, 1 - p], axis=1)


def test_supplied_classifier_scores_correct_and_flipped_labels():
    syn = xray_like(40, seed=20)
    good = label_fidelity(syn, classifier=OpacityClassifier())
    assert good["synthetic"]["accuracy"] > 0.9
    assert set(good["synthetic"]["per_class"]) == {"pneumonia", "normal"}
    flipped = datasets.Dataset.from_dict({"image": syn["image"], "label": [1 - v for v in syn["label"]]}, features=syn.features)
    assert label_fidelity(flipped, classifier=OpacityClassifier())["synthetic"]["accuracy"] < 0.1


def test_mismatched_class_names_are_an_error():
    syn = xray_like(8, seed=21, names=("healthy", "sick"))
    with pytest.raises(ValueError, match="do not match"):
        label_fidelity(syn, classifier=OpacityClassifier())


def test_cnn_trained_on_the_spot():
    rep = label_fidelity(xray_like(24, seed=23), train=xray_like(120, seed=22), epochs=4, image_size=32, min_steps=60)
    assert "SimpleCNN" in rep["classifier"]
    assert rep["real_validation"]["accuracy"] > 0.8
    assert rep["synthetic"]["accuracy"] > 0.8
    assert len(rep["synthetic"]["confusion_matrix"]) == 2
