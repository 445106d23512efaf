# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest

from galaxyml.datasets.colour import ColourImages
from galaxyml.degrade.tests.test_degrade import sky_wcs
from galaxyml.exceptions import (BandMismatchError, ImageTooSmallError, InvalidParameterError,
                                 MissingFileError, ModelTypeError, WeightsError)
from galaxyml.io import MultiBandCutout
from galaxyml.mergers import MergerClassifier, balanced, lupton_rgb

SIZE = 32


def blobs(n=24, seed=0):
    """Colour images of one blob (label 0) or two (label 1), as uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((SIZE, SIZE))
    images, labels = [], []
    for k in range(n):
        merger = k % 3 == 0
        image = np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 12)
        if merger:
            image = image + 0.8 * np.exp(-((xx - 22) ** 2 + (yy - 19) ** 2) / 8)
        rgb = np.clip(image[..., None] * [200, 180, 150] + rng.normal(10, 3, (SIZE, SIZE, 3)),
                      0, 255)
        images.append(rgb.astype(np.uint8))
        labels.append(float(merger))
    return np.stack(images), np.array(labels)


def test_fine_tune_resumes_exactly_and_predicts(tmp_path):
    images, labels = blobs()
    samples = balanced(ColourImages.from_arrays(images, labels, SIZE), ratio=1.0)
    kwargs = dict(frozen_steps=4, unfrozen_steps=4, batch_size=4, checkpoint_every=2,
                  progress=False)
    reference = MergerClassifier("small", input_size=SIZE)
    reference.fine_tune(samples, **kwargs)
    interrupted = MergerClassifier("small", input_size=SIZE)
    interrupted.fine_tune(samples, **dict(kwargs, unfrozen_steps=2),
                          checkpoint_dir=tmp_path / "ckpt")
    resumed = MergerClassifier("small", input_size=SIZE)
    resumed.fine_tune(samples, **kwargs, checkpoint_dir=tmp_path / "ckpt",
                      log_path=tmp_path / "log.csv")
    for a, b in zip(reference.network.get_weights(), resumed.network.get_weights()):
        assert np.allclose(a, b, atol=1e-6)
    table = resumed.predict(list(images[:3]))
    assert table.colnames[:2] == ["p_merger", "inpainted"] and len(table) == 3
    assert np.all((table["p_merger"] >= 0) & (table["p_merger"] <= 1))
    # Deterministic inference; files round trip.
    assert np.array_equal(resumed.predict(list(images[:3]))["p_merger"], table["p_merger"])
    path = resumed.save(tmp_path / "merger.keras")
    # The file holds the network, not Adam's slots (which would triple it).
    assert path.stat().st_size < 4 * resumed.network.count_params() * 1.2 + 100_000
    loaded = MergerClassifier.load(path)
    assert np.allclose(loaded.predict(list(images[:3]))["p_merger"], table["p_merger"])
    assert loaded.card["training"]["unfrozen_steps"] == 4


def test_cutouts_in_nanomaggies_keep_their_position():
    data = np.random.default_rng(0).normal(0, 0.01, (3, 40, 40)).astype(np.float32)
    data[:, 18:22, 18:22] += 1.0
    data[1, 0, 0] = np.nan
    cutout = MultiBandCutout(data, ("g", "r", "i"), sky_wcs((40, 40)), "nmgy")
    table = MergerClassifier("small", input_size=SIZE).predict([cutout, cutout])
    assert "sky_centroid" in table.colnames and table["inpainted"][0]
    assert lupton_rgb(np.nan_to_num(data)).dtype == np.uint8


def test_bad_input_raises_clear_errors(tmp_path):
    model = MergerClassifier("small", input_size=SIZE)
    wcs = sky_wcs((40, 40))
    with pytest.raises(BandMismatchError, match="needs"):
        model.predict(MultiBandCutout(np.zeros((2, 40, 40)), ("g", "r"), wcs, "nmgy"))
    with pytest.raises(ImageTooSmallError):
        model.predict(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InvalidParameterError, match="backbone"):
        MergerClassifier("resnet")
    with pytest.raises(InvalidParameterError, match="at least 71"):
        MergerClassifier("xception", input_size=SIZE)
    other = MergerClassifier("small", input_size=SIZE)
    path = tmp_path / "wrong.weights.h5"
    keras_model = MergerClassifier("mobilenet", input_size=SIZE).backbone_network
    keras_model.save_weights(path)
    with pytest.raises(WeightsError, match="do not fit"):
        MergerClassifier("small", weights=path, input_size=SIZE)
    with pytest.raises(MissingFileError):
        MergerClassifier("small", weights=tmp_path / "none.weights.h5", input_size=SIZE)
    other.save(tmp_path / "m.keras")
    (tmp_path / "m.json").write_text('{"model_type": "PSFGAN"}')
    with pytest.raises(ModelTypeError):
        MergerClassifier.load(tmp_path / "m.keras")


def test_imagenet_weights_offline_say_where_to_put_the_file(monkeypatch):
    import keras

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_network, raising=False)
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", no_network,
                        raising=False)
    with pytest.raises(MissingFileError, match="cache"):
        MergerClassifier("mobilenet", weights="imagenet", input_size=96)


def test_transfer_sources_load_their_weights(tmp_path):
    natural = MergerClassifier("small", weights="natural", input_size=SIZE).backbone_network
    scratch = MergerClassifier("small", weights=None, input_size=SIZE).backbone_network
    # The shipped backbone differs from a fresh one; a weights file round-trips exactly.
    assert not np.allclose(natural.get_weights()[0], scratch.get_weights()[0])
    path = tmp_path / "backbone.weights.h5"
    natural.save_weights(path)
    loaded = MergerClassifier("small", weights=path, input_size=SIZE, seed=5).backbone_network
    for a, b in zip(natural.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)


def test_shipped_model_has_its_card_and_scores_images():
    model = MergerClassifier.pretrained()
    card = model.card
    assert card["transfer_source"] == "natural" and card["backbone"] == "small"
    assert card["training"]["command"].startswith("python scripts/evaluate_mergers.py")
    assert 0.5 < card["metrics"]["auc"] <= 1 and 0 < card["decision_threshold"] < 1
    images, _ = blobs(n=3)
    table = model.predict(list(images))
    assert len(table) == 3 and np.all((table["p_merger"] >= 0) & (table["p_merger"] <= 1))
