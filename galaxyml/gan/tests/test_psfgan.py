# Licensed under a 3-clause BSD style license - see LICENSE.rst
import json

import keras
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty

from galaxyml.datasets import make_psfgan_pairs
from galaxyml.degrade import add_point_source
from galaxyml.exceptions import (BandMismatchError, ImageTooSmallError, InvalidParameterError,
                                 InvalidPSFError, PositionOffImageError, PSFError,
                                 ShapeMismatchError)
from galaxyml.gan import PSFGAN, window_discriminator
from galaxyml.io import MultiBandCutout
from galaxyml.io.tests.test_fits import make_wcs
from galaxyml.io.sdss import nanomaggies_to_mag
from galaxyml.psf import GaussianPSF
from galaxyml.stretch import PSFGANStretch

from .test_gan import identity_generator

STRETCH = PSFGANStretch(clip_max=200.0)


@pytest.fixture(scope="module")
def pairs(training_field):
    field, images, _ = training_field
    return make_psfgan_pairs(images, field.files.psfield, size=64, n_per_galaxy=2, seed=1,
                             progress=False, mag_range=(14, 21))


def test_discriminator_sees_only_the_central_window():
    discriminator = window_discriminator(1, 1, (8, 16, 16, 16), image_size=64, window=16)
    rng = np.random.default_rng(0)
    condition, image = rng.normal(size=(2, 2, 64, 64, 1)).astype(np.float32)
    changed = image.copy()
    changed[:, :20] += 5.0  # outside the central 16 x 16 (rows 24 to 39)
    first = discriminator([condition, image])
    assert first.shape == (2, 1)
    assert np.allclose(first, discriminator([condition, changed]))
    changed[:, 30] += 5.0
    assert not np.allclose(first, discriminator([condition, changed]))


def test_reconstruction_weighs_the_window():
    model = PSFGAN(stretch=STRETCH, window=16, l1_weight=100.0, image_l1_fraction=0.05)
    target = np.zeros((1, 64, 64, 1), np.float32)
    outside, inside = target.copy(), target.copy()
    outside[:, :8] = 1.0                   # 512 pixels off the window
    inside[:, 30:32, 30:32] = 1.0          # 4 pixels in it
    assert float(model.reconstruction(target, outside)) == pytest.approx(100 * 0.05 * 512 / 4096)
    assert float(model.reconstruction(target, inside)) == pytest.approx(
        100 * (0.05 * 4 / 4096 + 4 / 256))


def test_papers_optimizer_and_card():
    model = PSFGAN(stretch=STRETCH)
    gan = model.build_trainer()
    for optimizer in (gan.generator_optimizer, gan.discriminator_optimizer):
        assert optimizer.beta_1 == 0.5
        assert float(optimizer.learning_rate) == pytest.approx(9e-5)
    card = model.model_card()
    assert card["model_type"] == "PSFGAN" and card["stretch"]["clip_max"] == 200.0
    assert (card["window"], card["image_size"], card["image_l1_fraction"]) == (32, 64, 0.05)


def test_training_resumes_exactly_and_adopts_the_stretch(pairs, tmp_path):
    train = pairs.subset("train")

    def run(steps, directory):
        model = PSFGAN(seed=4)
        model.train(train, steps=steps, batch_size=2, checkpoint_dir=directory,
                    checkpoint_every=2, validation=pairs.subset("test").select([0, 1]),
                    log_path=directory / "log.csv", progress=False)
        return model

    straight = run(4, tmp_path / "straight")
    run(2, tmp_path / "killed")
    resumed = run(4, tmp_path / "killed")
    for a, b in zip(straight.generator.get_weights(), resumed.generator.get_weights()):
        assert np.array_equal(a, b)
    assert resumed.stretch.to_dict() == pairs.stretch.to_dict()
    header = (tmp_path / "killed" / "log.csv").read_text().splitlines()[0]
    assert "val_l1" in header and "g_reconstruction" in header
    with pytest.raises(ShapeMismatchError, match="image_size"):
        PSFGAN(image_size=128).train(train, steps=1, checkpoint_every=1, progress=False)


def test_majority_vote_under_a_mirrored_strategy(pairs, strategy):
    model = PSFGAN(seed=2)
    history = model.train(pairs.subset("train"), steps=2, batch_size=4, checkpoint_every=2,
                          strategy=strategy, aggregator="majority_vote", progress=False)
    assert np.all(np.isfinite(history["l1"]))
    assert model.card["training"]["aggregator"] == "MajorityVote"


def agn_ccd(contrast=3.0, shape=(64, 64)):
    """An exponential disk with a point source of ``contrast`` times its flux at the centre."""
    yy, xx = np.indices(shape)
    disk = 0.8 * np.exp(-np.hypot(xx - 31.5, yy - 31.5) / 3.0)
    rng = np.random.default_rng(3)
    # SDSS r-band sky noise, with its gain and calibration for the source's photon noise.
    image = CCDData(disk + rng.normal(0, 0.006, shape), unit="nmgy",
                    uncertainty=StdDevUncertainty(np.full(shape, 0.006)),
                    meta={"band": "r", "gain": 4.7, "nmgy_per_count": 0.005})
    with_ps, truth = add_point_source(image, GaussianPSF(2.7), contrast=contrast, seed=4)
    return with_ps, truth


def test_outputs_keep_type_wcs_and_uncertainty(pairs):
    model = PSFGAN(stretch=pairs.stretch, seed=0)
    condition, _ = pairs.linear_pair(0)          # a one-band cutout of the simulated field
    host, table = model.remove_point_source(condition)
    assert isinstance(host, MultiBandCutout) and host.bands == ("r",)
    assert host.wcs.wcs.crval[0] == condition.wcs.wcs.crval[0] and host.unit == u.nmgy
    assert np.allclose(host.uncertainty, condition.uncertainty)
    again, _ = model.remove_point_source(condition)
    assert np.array_equal(again.data, host.data)  # deterministic by default
    sampled, _ = model.remove_point_source(condition, samples=3)
    assert np.all(sampled.uncertainty >= condition.uncertainty - 1e-7)
    for name in ("ps_detected", "ps_snr", "ps_flux", "ps_flux_err", "ps_mag", "ps_mag_err",
                 "ps_flux_upper", "host_flux", "host_flux_err", "host_mag", "host_mag_err",
                 "host_core_flux", "x", "y", "sky_centroid", "flags"):
        assert name in table.colnames
    ccd = condition["r"]
    host_ccd, _ = model.remove_point_source(ccd)
    assert isinstance(host_ccd, CCDData) and np.allclose(host_ccd.data, host.data[0])
    batch = np.stack([condition.data[0], condition.data[0]])
    hosts, batch_table = model.remove_point_source(batch, psf=GaussianPSF(2.7))
    assert hosts.shape == batch.shape and len(batch_table) == 2
    assert "sky_centroid" not in batch_table.colnames


def test_larger_images_are_cut_around_the_source():
    """With an identity network nothing is detected and the host is the input, bit for bit."""
    model = PSFGAN(stretch=STRETCH)
    model.generator = identity_generator(1)
    image, _ = agn_ccd(shape=(100, 90))
    host, table = model.remove_point_source(image, psf=GaussianPSF(2.7), position=(45.0, 50.0))
    assert np.array_equal(host.data, image.data.astype(np.float32))
    # Nothing is left for the point source, and the box fits: no edge flag.
    assert not table["ps_detected"][0] and not table["flags"][0] & 2
    assert abs(table["ps_flux"][0]) < table["ps_flux_err"][0]
    assert np.isnan(table["ps_mag"][0]) and table["ps_flux_upper"][0] > 0
    _, edge = model.remove_point_source(image, psf=GaussianPSF(2.7), position=(80.0, 50.0))
    assert edge["flags"][0] & 2


def emptying_generator(channels):
    """A network that returns blank sky: it takes everything it may away."""
    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, keras.layers.Lambda(lambda x: 0.0 * x[..., :1] - 1.0)(inputs))


def test_host_changes_only_in_the_window_and_never_a_neighbour():
    """Whatever the network returns, the host is the input outside the central window and
    over other sources, bit for bit; a masked pixel in the window sets flag 4."""
    model = PSFGAN(stretch=STRETCH)
    model.generator = emptying_generator(1)
    image, _ = agn_ccd(contrast=10.0)
    yy, xx = np.indices(image.shape)
    neighbour = 3.0 * np.exp(-np.hypot(xx - 31.5, yy - 42.5) ** 2 / 4.0)  # 11 pixels away
    image.data += neighbour
    image.mask = np.zeros(image.shape, bool)
    image.mask[:, 34] = True  # a bad column 3 pixels from the source
    host, table = model.remove_point_source(image, psf=GaussianPSF(2.7))
    assert table["ps_detected"][0] and table["flags"][0] & 4
    changed = host.data != image.data.astype(np.float32)
    # The window is centred on the source's centroid, within a pixel of (31.5, 31.5).
    assert not changed[(np.abs(xx - 31.5) >= 17) | (np.abs(yy - 31.5) >= 17)].any()
    assert changed[30:34, 30:33].all()  # the point source is gone
    assert np.array_equal(host.data[41:45, 30:34], image.data[41:45, 30:34].astype(np.float32))


def test_bright_pixels_in_the_window_are_kept_and_flagged():
    """Pixels brighter than the stretch's maximum cannot be represented: kept, flag 8."""
    model = PSFGAN(stretch=STRETCH)
    model.generator = emptying_generator(1)
    image, _ = agn_ccd()
    image.data[5, 5] = image.data[33, 33] = 5 * STRETCH.clip_max
    host, table = model.remove_point_source(image, psf=GaussianPSF(2.7), position=(31.6, 31.2))
    assert host.data[5, 5] == pytest.approx(5 * STRETCH.clip_max)
    assert host.data[33, 33] == pytest.approx(5 * STRETCH.clip_max)
    assert table["flags"][0] & 8


def test_mostly_masked_images_get_a_flag_not_a_number():
    model = PSFGAN(stretch=STRETCH)
    image, _ = agn_ccd()
    image.mask = np.zeros(image.shape, bool)
    image.mask[10:50, 10:50] = True
    host, table = model.remove_point_source(image, psf=GaussianPSF(2.7), position=(31.5, 31.5))
    assert table["flags"][0] & 256 and table["flags"][0] & 128
    assert not table["ps_detected"][0] and np.isnan(table["host_flux"][0])


def test_bad_input_raises_clear_errors():
    model = PSFGAN(stretch=STRETCH)
    image, _ = agn_ccd()
    psf = GaussianPSF(2.7)
    with pytest.raises(ImageTooSmallError, match="central window"):
        model.remove_point_source(image.data[:20, :20], psf=psf)
    with pytest.raises(PositionOffImageError):
        model.remove_point_source(image, psf=psf, position=(80.0, 3.0))
    wcs_image = CCDData(image.data, unit="nmgy", wcs=make_wcs(image.shape),
                        meta={"band": "r"})
    with pytest.raises(PSFError, match="arcsec per pixel"):
        model.remove_point_source(wcs_image, psf=GaussianPSF(2.7, pixel_scale=0.2 * u.arcsec))
    with pytest.raises(InvalidPSFError):
        model.remove_point_source(image, psf=np.zeros((7, 7)))
    g_band = CCDData(image.data, unit="nmgy", meta={"band": "g"})
    with pytest.raises(BandMismatchError, match="trained on"):
        model.remove_point_source(g_band, psf=psf)
    cutout = MultiBandCutout(np.stack([image.data] * 2), ("g", "r"), image.wcs, "nmgy")
    with pytest.raises(BandMismatchError, match="band="):
        model.remove_point_source(cutout, psf=psf)


def test_save_load_round_trip(tmp_path):
    model = PSFGAN(stretch=STRETCH, window=16, seed=3)
    path = model.save(tmp_path / "psfgan.keras")
    loaded = PSFGAN.load(path)
    assert (loaded.window, loaded.image_size) == (16, 64)
    assert loaded.stretch.to_dict() == STRETCH.to_dict()
    image, _ = agn_ccd()
    first, _ = model.remove_point_source(image, psf=GaussianPSF(2.7))
    second, _ = loaded.remove_point_source(image, psf=GaussianPSF(2.7))
    assert np.allclose(first.data, second.data, atol=1e-5)


def test_shipped_model_removes_a_point_source():
    """The shipped model on a simulated AGN of contrast 3 (a PSF wider than any it was
    trained on): kept as a point source (threshold 0), its errors cover the truth within
    3 sigma; dropout draws add their spread to the uncertainty where the source was."""
    model = PSFGAN.pretrained()
    card = model.card
    assert "scripts/train_psfgan.py" in card["training"]["command"]
    assert card["training"]["field"] == "2583-2-136" and card["stretch"]["name"] == "psfgan"
    assert card["mode"] == "refine" and card["error_model"]["ps_core"] > 0
    image, truth = agn_ccd(contrast=3.0)
    host, table = model.remove_point_source(image, psf=GaussianPSF(2.7), threshold=0)
    ps_error = table["ps_mag"][0].value - truth["ps_mag"][0].value
    host_error = table["host_mag"][0].value - nanomaggies_to_mag(truth["host_flux"]).value[0]
    assert abs(ps_error) < 3 * table["ps_mag_err"][0].value
    assert abs(host_error) < 3 * table["host_mag_err"][0].value
    sampled, _ = model.remove_point_source(image, psf=GaussianPSF(2.7), samples=5, threshold=0)
    centre = (slice(26, 38), slice(26, 38))
    assert np.all(sampled.uncertainty.array[centre] > image.uncertainty.array[centre])
    json.dumps(card)  # the card is plain JSON


def test_negative_sky_is_inside_the_generators_range():
    """Sky pixels below zero must be reachable by the tanh output (PSFGAN's stretch maps
    them below 0 before the network's rescaling)."""
    model = PSFGAN(stretch=STRETCH)
    sky = np.linspace(-0.1, 0.05, 16).reshape(1, 4, 4)
    network = model._network_input(sky)
    assert network.min() == pytest.approx(-1.0) and -1 < network[0, 2, 0] < network.max() < 0
    assert np.allclose(model._from_network(network)[..., 0], sky[0])


def test_residual_generator_leaves_untouched_pixels_alone():
    """The residual generator returns the input minus what its last layer learns."""
    model = PSFGAN(stretch=STRETCH, mode="residual")
    output = model.generator.get_layer("output_conv")
    output.set_weights([np.zeros_like(w) for w in output.get_weights()])
    image, _ = agn_ccd()
    host, _ = model.remove_point_source(image, psf=GaussianPSF(2.7))
    assert np.allclose(host.data, image.data, rtol=1e-5, atol=1e-6)
    assert model.model_card()["mode"] == "residual"
    paper = PSFGAN(stretch=STRETCH, mode="paper")
    assert paper.generator.get_layer("output").activation.__name__ == "tanh"
    with pytest.raises(InvalidParameterError, match="mode"):
        PSFGAN(mode="deblend")


def test_untrained_refine_network_is_psf_photometry():
    """The refine network starts as PSF photometry: it takes the fitted PSF away."""
    model = PSFGAN(stretch=STRETCH, mode="refine")
    image, truth = agn_ccd(contrast=3.0)
    host, table = model.remove_point_source(image, psf=GaussianPSF(2.7))
    assert table["ps_detected"][0]
    centre = (slice(28, 36), slice(28, 36))
    assert host.data[centre].sum() < 0.5 * image.data[centre].sum()
    point = truth["ps_flux"][0].value
    assert table["ps_flux"][0].value == pytest.approx(point, rel=0.3)


def test_cards_written_before_the_modes_load(tmp_path):
    path = PSFGAN(stretch=STRETCH, mode="paper").save(tmp_path / "old.keras")
    card = json.loads(path.with_suffix(".json").read_text())
    del card["mode"]
    card["residual"] = False
    path.with_suffix(".json").write_text(json.dumps(card))
    assert PSFGAN.load(path).mode == "paper"


def test_refine_training_pairs_carry_the_psf(pairs):
    model = PSFGAN(stretch=pairs.stretch, mode="refine")
    condition, target = model.network_samples(pairs.subset("train")).sample(0)
    assert condition.shape == (64, 64, 3) and target.shape == (64, 64, 1)
    low, high = pairs.stretch.network_range
    assert condition[..., 2].max() == pytest.approx(high)  # the PSF's peak
    assert condition[..., 1].sum() < condition[..., 0].sum()  # the PSF taken away
