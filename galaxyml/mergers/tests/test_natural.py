# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest

from galaxyml.exceptions import InvalidParameterError
from galaxyml.mergers import (NATURAL_PHOTOGRAPHS, best_threshold, classification_scores,
                              natural_crops, natural_photographs)


def test_photographs_ship_with_the_packages_and_are_not_astronomical():
    photographs = natural_photographs()
    assert tuple(photographs) == NATURAL_PHOTOGRAPHS
    assert not {"hubble_deep_field", "moon"} & set(photographs)
    assert all(p.ndim == 3 and p.shape[-1] == 3 and p.dtype == np.uint8
               for p in photographs.values())


def test_crops_are_reproducible_and_labelled():
    crops, labels = natural_crops(12, size=24, seed=3)
    again, again_labels = natural_crops(12, size=24, seed=3)
    assert crops.shape == (12, 24, 24, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops, again) and np.array_equal(labels, again_labels)
    assert labels.max() < len(NATURAL_PHOTOGRAPHS)
    with pytest.raises(InvalidParameterError):
        natural_crops(2, scale=(0.5, 2.0))


def test_scores_at_a_threshold_chosen_on_validation():
    labels = np.array([0] * 95 + [1] * 5, bool)
    scores = np.where(labels, 0.9, 0.1)
    scores[0] = 0.95  # one confident false positive
    threshold = best_threshold(labels, scores)
    result = classification_scores(labels, scores, threshold)
    assert result["base_rate"] == 0.05 and result["n_mergers"] == 5
    assert result["error"] <= result["base_rate"]
    assert 0.9 < result["auc"] < 1 and result["recall"] == 1.0
    with pytest.raises(InvalidParameterError, match="both classes"):
        classification_scores(np.zeros(4, bool), np.zeros(4), 0.5)
