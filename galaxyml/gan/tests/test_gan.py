# Licensed under a 3-clause BSD style license - see LICENSE.rst
import json

import keras
from keras import ops
import numpy as np
import pytest
from astropy import units as u

from galaxyml.datasets import make_galaxygan_pairs
from galaxyml.exceptions import (BandMismatchError, ImageTooSmallError, InvalidParameterError,
                                 ModelTypeError, ShapeMismatchError)
from galaxyml.distribute import MajorityVote, MeanAggregator
from galaxyml.gan import NETWORK_CONFIGS, GalaxyGAN, patchgan_discriminator, unet_generator
from galaxyml.io import MultiBandCutout


@pytest.fixture(scope="module")
def pairs(training_field):
    from galaxyml.datasets import galaxy_catalog

    _, images, _ = training_field
    catalog = galaxy_catalog(images, size=64, mag_range=(14, 20.5))
    return make_galaxygan_pairs(images, catalog=catalog, size=64,
                                grid=[(2.0 * u.arcsec, 2.0)], progress=False)


def identity_generator(channels):
    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def test_networks_follow_pix2pix():
    small = NETWORK_CONFIGS["small"]
    generator = unet_generator(3, 3, small["generator_filters"])
    names = [layer.name for layer in generator.layers]
    assert "down0_norm" not in names and "down5_norm" not in names  # first and innermost
    assert {"down1_norm", "down4_norm"} <= set(names)
    assert [n for n in names if n.endswith("dropout")] == ["up0_dropout", "up1_dropout",
                                                           "up2_dropout"]
    assert generator.layers[-1].activation.__name__ == "tanh"
    assert generator.count_params() * 4 < 10e6  # the shipped size limit
    x = np.zeros((1, 128, 192, 3), np.float32)
    assert generator(x).shape == (1, 128, 192, 3)
    discriminator = patchgan_discriminator(3, 3, small["discriminator_filters"])
    assert discriminator([x, x]).shape == (1, 16, 24, 1)
    paper = NETWORK_CONFIGS["paper"]
    assert paper["generator_filters"] == (64, 128, 256, 512, 512, 512, 512, 512)
    assert len(paper["discriminator_filters"]) == 4  # 70 x 70 receptive field


def test_adam_beta1_is_passed():
    gan = GalaxyGAN(seed=0).build_trainer()
    for optimizer in (gan.generator_optimizer, gan.discriminator_optimizer):
        assert optimizer.beta_1 == 0.5
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
    assert isinstance(gan.aggregator, MeanAggregator)


def test_resumed_run_reaches_the_same_weights(pairs, tmp_path):
    train = pairs.subset("train")

    def run(steps, directory):
        model = GalaxyGAN(seed=3)
        model.train(train, steps=steps, batch_size=2, checkpoint_dir=directory,
                    checkpoint_every=2, log_path=directory / "log.csv", progress=False)
        return model

    straight = run(4, tmp_path / "straight")
    run(2, tmp_path / "killed")              # a run stopped after its first checkpoint
    resumed = run(4, tmp_path / "killed")    # ... and started again
    for a, b in zip(straight.generator.get_weights(), resumed.generator.get_weights()):
        assert np.array_equal(a, b)
    log = (tmp_path / "killed" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) == 3


def test_training_under_mirrored_strategy(pairs, strategy):
    model = GalaxyGAN(seed=1)
    history = model.train(pairs.subset("train"), steps=4, batch_size=4, checkpoint_every=2,
                          strategy=strategy, progress=False)
    assert np.all(np.isfinite(history["l1"]))
    variable = model.generator.trainable_variables[0]
    replicas = strategy.experimental_local_results(variable.value)  # the MirroredVariable
    assert len(replicas) == 2 and np.array_equal(replicas[0].numpy(), replicas[1].numpy())
    assert model.card["training"]["strategy"] == "MirroredStrategy"


def test_recover_is_deterministic_and_keeps_the_wcs(pairs):
    model = GalaxyGAN(seed=0)
    condition, _ = pairs.linear_pair(0)
    cutout = MultiBandCutout(condition.data, ("g", "r", "i"), condition.wcs, "nmgy")
    first, second = model.recover(cutout), model.recover(cutout)
    assert np.array_equal(first.data, second.data)
    assert first.unit == u.nmgy and first.wcs.wcs.crval[0] == cutout.wcs.wcs.crval[0]
    sampled = model.recover(cutout, samples=4)
    assert sampled.uncertainty is not None and np.mean(sampled.uncertainty) > 0


def test_tiles_blend_without_seams():
    """With an identity network, tiling, padding and blending return the input exactly."""
    model = GalaxyGAN(seed=0)
    model.generator = identity_generator(3)
    rng = np.random.default_rng(0)
    for shape in ((3, 300, 200), (3, 70, 50), (3, 128, 128)):
        image = rng.uniform(0.0, 3.0, shape)
        assert np.allclose(model.recover(image), image, rtol=1e-4, atol=1e-5)


def test_images_of_different_sizes_in_one_call():
    """Tiles of different shapes go through the network in batches of one shape each."""
    model = GalaxyGAN(seed=0)
    rng = np.random.default_rng(2)
    images = [rng.uniform(0.0, 2.0, shape) for shape in ((3, 64, 64), (3, 40, 72), (3, 150, 90))]
    together = model.recover(images, batch_size=4)
    for image, result in zip(images, together):
        assert result.shape == image.shape
        assert np.allclose(result, model.recover(image), atol=1e-6)
    batch = np.stack([images[0], images[0] * 2])
    assert model.recover(batch).shape == batch.shape


def test_nan_pixels_are_inpainted_and_stay_masked():
    model = GalaxyGAN(seed=0)
    model.generator = identity_generator(3)
    image = np.full((3, 64, 64), 0.5)
    image[1, 30:33, 30:33] = np.nan
    from astropy.wcs import WCS
    cutout = MultiBandCutout(image, ("g", "r", "i"), WCS(naxis=2), "nmgy")
    result = model.recover(cutout)
    assert np.all(np.isfinite(result.data))
    assert result.data[1, 31, 31] == pytest.approx(0.5, rel=1e-3)
    assert result.mask[1, 31, 31] and not result.mask[0, 31, 31]


def test_bad_input(tmp_path):
    model = GalaxyGAN(seed=0)
    from astropy.wcs import WCS
    with pytest.raises(BandMismatchError, match="trained on"):
        model.recover(MultiBandCutout(np.zeros((2, 64, 64)), ("g", "r"), WCS(naxis=2), "nmgy"))
    with pytest.raises(ImageTooSmallError):
        model.recover(np.zeros((3, 8, 64)))
    with pytest.raises(BandMismatchError):
        model.recover(np.zeros((2, 64, 64)))
    path = model.save(tmp_path / "model.keras")
    card = json.loads(path.with_suffix(".json").read_text())
    card["model_type"] = "PSFGAN"
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelTypeError, match="PSFGAN"):
        GalaxyGAN.load(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelTypeError, match="no model card"):
        GalaxyGAN.load(path)


def test_save_load_round_trip(tmp_path):
    model = GalaxyGAN(seed=5)
    model.card["training"] = {"steps": 0}
    path = model.save(tmp_path / "gan.keras")
    loaded = GalaxyGAN.load(path)
    image = np.random.default_rng(1).uniform(0, 1, (3, 64, 64))
    assert np.allclose(loaded.recover(image), model.recover(image), atol=1e-6)
    assert loaded.card["model_type"] == "GalaxyGAN" and loaded.bands == ("g", "r", "i")


def test_a_card_without_mode_or_flux_weight_is_the_papers(tmp_path):
    path = GalaxyGAN(seed=0).save(tmp_path / "old.keras")
    card = json.loads(path.with_suffix(".json").read_text())
    del card["mode"], card["flux_weight"]  # cards written before either existed
    path.with_suffix(".json").write_text(json.dumps(card))
    loaded = GalaxyGAN.load(path)
    assert loaded.mode == "paper" and loaded.flux_weight == 0


def test_pretrained_model_is_shipped():
    model = GalaxyGAN.pretrained()
    assert model.bands == ("g", "r", "i") and model.config == "small"
    training = model.card["training"]
    assert "scripts/train_galaxygan.py" in training["command"]
    assert training["field"] == "2583-2-136"
    assert model.mode == "refine" and (model.l1_weight, model.flux_weight) == (10000, 1000)
    assert model.l2_weight == 0  # a card written before the term existed: none
    assert model.stretch.clip_max > 4  # bright cores come back
    assert model.card["metrics"]["n_test_galaxies"] == 80  # all held-out ones with r < 20
    assert model.card["metrics"]["cells_won"] == 20
    # The check on every held-out galaxy the selection keeps (r < 21): more of them.
    check = model.card["metrics"]["all_held_out"]
    assert check["n_test_galaxies"] > model.card["metrics"]["n_test_galaxies"]
    assert "--mag-limit 21" in check["command"]
    assert check["segment_bias"]["galaxies"] == check["n_test_galaxies"]  # one run's figures
    # The flux checks the card counts agree with its own per-cell table.
    cells = model.card["metrics"]["cells"]
    name = model.card["metrics"]["name"]
    for measure, check in (("flux_error", "flux_ok"), ("flux_error_grown", "flux_grown_ok")):
        assert model.card["metrics"][f"cells_{check}"] == sum(
            cell[f"{measure}_{name}"] <= cell[f"{measure}_Richardson-Lucy"] for cell in cells)
        excess = check.replace("_ok", "_excess")
        for cell in cells:  # the paired excess is the difference of the two means
            assert cell[f"{excess}_{name}"] == pytest.approx(
                cell[f"{measure}_{name}"] - cell[f"{measure}_Richardson-Lucy"], abs=1e-9)
            assert cell[f"{excess}_se_{name}"] > 0
    assert model.card["metrics"]["cells_flux_within_noise"] == sum(
        cell[f"flux_error_grown_{name}"] <= cell["flux_noise"] for cell in cells)
    # The data's own flux noise grows with the noise factor, as it must.
    noise_by_sigma = {}
    for cell in cells:
        noise_by_sigma.setdefault(cell["sigma"], []).append(cell["flux_noise"])
    means = [np.mean(noise_by_sigma[sigma]) for sigma in sorted(noise_by_sigma)]
    assert np.all(np.diff(means) > 0)
    # The segment alone costs an exact restoration flux; the grown one much less.
    bias = model.card["metrics"]["segment_bias"]
    assert bias["segment_mean"] < 0 and abs(bias["grown_mean"]) < abs(bias["segment_mean"]) / 2
    scale, exponent = model.uncertainty_calibration
    assert scale > 0 and 0 < exponent < 1
    assert model.generator.count_params() * 4 < 10e6
    # The small network was shipped because it beat the paper network at equal wall time.
    comparison = model.card["network_comparison"]
    runs = comparison["runs"]
    assert abs(runs["small"]["training_minutes"] - runs["paper"]["training_minutes"]) < 1
    assert runs["small"]["steps"] > runs["paper"]["steps"]
    head_to_head = comparison["small_against_paper"]
    assert head_to_head["psnr_higher"] > head_to_head["cells"] / 2
    assert head_to_head["ssim_higher"] > head_to_head["cells"] / 2
    assert runs["small"]["mean_psnr"] - runs["paper"]["mean_psnr"] == pytest.approx(
        head_to_head["mean_psnr_difference"])


def test_majority_vote_training_resumes_exactly(pairs, strategy, tmp_path):
    """Per-replica momenta are checkpointed: a resumed run reaches the same weights."""
    train = pairs.subset("train")

    def run(steps, directory, aggregator="majority_vote"):
        model = GalaxyGAN(seed=2)
        model.train(train, steps=steps, batch_size=4, checkpoint_dir=directory,
                    checkpoint_every=2, strategy=strategy, aggregator=aggregator,
                    progress=False)
        return model

    vote = MajorityVote()
    straight = run(4, tmp_path / "straight", vote)
    # One 1-bit word per 32 parameters of each network, per step and replica.
    discriminator = patchgan_discriminator(3, 3, NETWORK_CONFIGS["small"]["discriminator_filters"])
    words = sum(-(-sum(int(np.prod(v.shape)) for v in network.trainable_variables) // 32)
                for network in (straight.generator, discriminator))
    assert vote.bytes_per_step() == 4 * words
    run(2, tmp_path / "killed")
    resumed = run(4, tmp_path / "killed")
    for a, b in zip(straight.generator.get_weights(), resumed.generator.get_weights()):
        assert np.array_equal(a, b)
    assert straight.card["training"]["aggregator"] == "MajorityVote"


@pytest.fixture(scope="module")
def refine_pairs(training_field):
    from galaxyml.datasets import galaxy_catalog

    _, images, _ = training_field
    catalog = galaxy_catalog(images, size=64, mag_range=(14, 20.5))
    return make_galaxygan_pairs(images, catalog=catalog, size=64,
                                grid=[(1.8 * u.arcsec, 1.5), (2.5 * u.arcsec, 5.0)],
                                stretch="data", max_shift=2.0, progress=False)


def test_refine_mode_starts_at_the_deconvolution(refine_pairs):
    from galaxyml.degrade.core import background_std, galaxygan_kernel
    from galaxyml.restoration import richardson_lucy_discrepancy

    model = GalaxyGAN(stretch=refine_pairs.stretch, mode="refine", seed=0)
    assert model.condition_channels == 10
    degraded, _ = refine_pairs.linear_pair(0)
    fwhm = refine_pairs.manifest["fwhm"][0]
    condition = model.refinement_condition(degraded.data, fwhm)
    assert condition.shape == (64, 64, 10) and condition.dtype == np.float32
    assert np.allclose(condition[..., -1], fwhm.to_value(u.arcsec) / 2.5)
    # The untrained network returns the deconvolution it refines: it starts there.
    noise = [background_std(plane) for plane in degraded.data]
    deconvolved, _ = richardson_lucy_discrepancy(degraded.data, galaxygan_kernel(fwhm), noise)
    recovered = model.recover(degraded.data, fwhm=fwhm)  # (a cutout's masked pixels are
    kept = deconvolved > model.stretch.clip_min  # in-painted) and the stretch clips below
    assert np.allclose(recovered[kept], deconvolved[kept], rtol=1e-4, atol=1e-5)  # clip_min
    assert model.recover(degraded, fwhm=fwhm).wcs.wcs.compare(degraded.wcs.wcs)
    per_image = model.recover([degraded.data, degraded.data], fwhm=[fwhm, 2 * fwhm])
    assert not np.allclose(per_image[0], per_image[1])  # each told its own blur


def test_refine_mode_needs_the_blur_and_checks_it(refine_pairs):
    model = GalaxyGAN(stretch=refine_pairs.stretch, mode="refine")
    degraded, _ = refine_pairs.linear_pair(0)
    with pytest.raises(InvalidParameterError, match="needs fwhm"):
        model.recover(degraded)
    with pytest.raises(InvalidParameterError, match="positive angle"):
        model.recover(degraded, fwhm=-1.0)
    with pytest.raises(ShapeMismatchError, match="1 values for 2 images"):
        model.recover([degraded, degraded], fwhm=[1.0])
    with pytest.raises(InvalidParameterError, match="mode must be one of"):
        GalaxyGAN(mode="tikhonov")
    # The paper's network takes no FWHM and needs none.
    paper = GalaxyGAN(stretch=refine_pairs.stretch)
    assert paper.recover(degraded.data, fwhm=2.0).shape == degraded.data.shape


def test_flux_term_is_the_relative_flux_error(refine_pairs):
    model = GalaxyGAN(stretch=refine_pairs.stretch, mode="refine", flux_weight=10.0)
    originals = [refine_pairs.linear_pair(k)[1].data for k in (0, 1)]
    in_nmgy = np.stack([np.moveaxis(image, 0, -1) for image in originals])

    def network_range(nanomaggies):
        return model._to_generator_range(model.stretch(nanomaggies, warn=False)).astype(np.float32)

    target = network_range(in_nmgy)
    assert float(model.flux_mismatch(target, target)) == pytest.approx(0.0, abs=1e-6)
    # A sky offset of 0.01 nmgy: a small change in stretched units, a flux error of
    # 0.01 times the stamp's pixel count in nanomaggies.
    offset = network_range(in_nmgy + 0.01)
    assert float(ops.mean(ops.abs(offset - target))) < 0.02
    expected = np.mean(0.01 * 64 * 64 / np.abs(model.stretch.inverse(
        model.stretch(in_nmgy, warn=False))).sum(axis=(1, 2)))
    assert float(model.flux_mismatch(target, offset)) == pytest.approx(expected, rel=0.02)
    # Flux moved from the galaxy's core to the stamp's corner counts, lost and found.
    cored, moved = in_nmgy.copy(), in_nmgy.copy()
    cored[:, 32:40, 32:40] += 1.0
    moved[:, 32:40, 32:40] += 0.5
    moved[:, :8, :8] += 0.5
    expected_moved = np.mean(2 * 0.5 * 64 / np.abs(model.stretch.inverse(
        model.stretch(cored, warn=False))).sum(axis=(1, 2)))
    assert float(model.flux_mismatch(network_range(cored), network_range(moved))) \
        == pytest.approx(expected_moved, rel=0.02)
    l1 = 100 * float(ops.mean(ops.abs(offset - target)))
    assert float(model.reconstruction(target, offset)) == pytest.approx(
        l1 + 10 * expected, rel=0.02)
    paper = GalaxyGAN(stretch=refine_pairs.stretch)
    assert float(paper.reconstruction(target, offset)) == pytest.approx(l1, rel=1e-4)
    with pytest.raises(InvalidParameterError, match="flux_weight"):
        GalaxyGAN(flux_weight=-1.0)
    # The squared-error term adds l2_weight times the mean squared error.
    squared = GalaxyGAN(stretch=refine_pairs.stretch, l2_weight=1000.0)
    mse = float(ops.mean(ops.square(offset - target)))
    assert mse > 0
    assert float(squared.reconstruction(target, offset)) == pytest.approx(
        l1 + 1000 * mse, rel=1e-4)
    with pytest.raises(InvalidParameterError, match="l2_weight"):
        GalaxyGAN(l2_weight=-1.0)


def test_refine_mode_trains_saves_and_loads(refine_pairs, tmp_path):
    model = GalaxyGAN(stretch=refine_pairs.stretch, mode="refine", flux_weight=5.0, seed=1)
    train = refine_pairs.subset("train")
    history = model.train(train, steps=4, batch_size=2, checkpoint_every=2, in_memory=True,
                          progress=False)
    assert np.all(np.isfinite(history["l1"]))
    assert model.card["training"]["mode"] == "refine" and model.card["training"]["steps"] == 4
    assert model.card["training"]["flux_weight"] == 5.0
    path = model.save(tmp_path / "refine.keras")
    loaded = GalaxyGAN.load(path)
    assert loaded.mode == "refine" and loaded.flux_weight == 5.0
    assert loaded.stretch.to_dict() == refine_pairs.stretch.to_dict()
    degraded, _ = refine_pairs.linear_pair(0)
    assert np.allclose(loaded.recover(degraded.data, fwhm=1.8),
                       model.recover(degraded.data, fwhm=1.8), atol=1e-6)


def test_uncertainty_calibration_and_coverage(refine_pairs):
    from galaxyml.restoration import uncertainty_coverage

    model = GalaxyGAN(stretch=refine_pairs.stretch, seed=3)
    assert model.uncertainty_calibration == (1.0, 1.0)
    pairs = refine_pairs.select([0, 1])
    wide = uncertainty_coverage(model, pairs, samples=3, scale=1e6)
    narrow = uncertainty_coverage(model, pairs, samples=3, scale=1e-6)
    assert wide["within_1sigma"] > 0.99 and narrow["within_2sigma"] < 0.05
    assert wide["n_pixels"] == 2 * 3 * 64 * 64 and narrow["scale_68"] > 1
    model.card["uncertainty"] = {"scale": 2.5, "exponent": 0.5}
    assert np.allclose(model.calibrated_uncertainty([4.0, 0.25]), [5.0, 1.25])


def test_fitted_uncertainty_calibration_covers_68_percent(refine_pairs):
    from galaxyml.restoration import fit_uncertainty_calibration, uncertainty_coverage

    model = GalaxyGAN(stretch=refine_pairs.stretch, seed=3)
    model.card["uncertainty"] = {"scale": 2.0, "exponent": 1.0}
    pairs = refine_pairs.select([0, 1])
    model.card["uncertainty"] = fit_uncertainty_calibration(model, pairs, samples=3)
    scale, exponent = model.uncertainty_calibration
    assert scale > 0 and exponent >= 0
    # On the pairs it was fitted on, the calibrated sigma holds 68.3% of the true pixels
    # (up to pixels of zero spread or residual, which the fit leaves out).
    assert abs(uncertainty_coverage(model, pairs, samples=3)["within_1sigma"] - 0.683) < 0.03
