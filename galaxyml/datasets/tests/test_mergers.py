# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest

from galaxyml.datasets import galaxy_catalog, simulate_sdss_field
from galaxyml.datasets.mergers import make_merger_samples, merger_shortcut_features
from galaxyml.exceptions import InvalidParameterError

SIZE = 48


@pytest.fixture(scope="module")
def merger_samples(tmp_path_factory):
    field = simulate_sdss_field(tmp_path_factory.mktemp("field"), bands="gri",
                                shape=(700, 900), n_galaxies=90, seed=5)
    images = field.files.read("gri")
    images = {band: images[band] for band in "gri"}
    catalog = galaxy_catalog(images, size=SIZE, mag_range=(12, 22))
    return make_merger_samples(images, catalog=catalog, size=SIZE, n_per_class=40, seed=1)


def test_both_classes_on_both_sides(merger_samples):
    manifest = merger_samples.manifest
    for side in ("train", "test"):
        labels = manifest["is_merger"][manifest["split"] == side]
        assert (labels == 1).sum() == (labels == 0).sum() == 40
    mergers = manifest[manifest["is_merger"] == 1]
    assert np.all((mergers["separation"] >= 0.5) & (mergers["separation"] <= 3))
    assert np.all((mergers["flux_ratio"] >= 1) & (mergers["flux_ratio"] <= 4))
    # Both windows weighted to keep the noise: a**2 + b**2 = 1.
    assert np.allclose(manifest["a"] ** 2 + manifest["b"] ** 2, 1)
    # The companion comes from the primary's side of the split.
    image = merger_samples.linear_sample(0)[0]
    assert image.data.shape == (3, SIZE, SIZE) and image.wcs.has_celestial


def test_images_are_remade_identically(merger_samples):
    first = merger_samples.linear_sample(3)[0].data
    again = merger_samples.linear_sample(3)[0].data
    assert np.array_equal(first, again)


def test_no_shortcut_separates_the_classes(merger_samples):
    """Noise, sky level, total flux, peak and centring must not tell mergers from isolated
    galaxies: a logistic regression on them stays near chance (cross-validated AUC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = merger_shortcut_features(merger_samples)
    labels = np.asarray(merger_samples.manifest["is_merger"]) > 0.5
    names = ("noise", "p50", "total_flux", "peak", "centroid_offset")
    matrix = np.column_stack([np.asarray(features[n]) for n in names])
    noise_ratio = np.median(features["noise"][labels]) / np.median(features["noise"][~labels])
    assert noise_ratio == pytest.approx(1, abs=0.1)  # not sqrt(2)
    auc = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression()), matrix, labels,
                          cv=5, scoring="roc_auc").mean()
    assert auc < 0.65


def test_bad_ranges():
    with pytest.raises(InvalidParameterError, match="flux_ratio"):
        make_merger_samples({}, flux_ratio=(4, 1))
