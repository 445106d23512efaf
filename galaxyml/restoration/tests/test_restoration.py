# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable
from scipy.signal import fftconvolve

from galaxyml.exceptions import InvalidParameterError
from galaxyml.psf import GaussianPSF
from galaxyml.restoration import (DECONVOLUTION_METHODS, central_segment, compare_models,
                                  flux_error, flux_noise, galaxy_segments,
                                  power_law_calibration, psnr, residual_rms, richardson_lucy,
                                  richardson_lucy_discrepancy, segment_flux_bias, ssim,
                                  summarize_restoration)


def blurred_source(noise=0.0):
    image = np.zeros((64, 64))
    image[30:34, 30:34] = 1.0
    kernel = GaussianPSF(5.0).render()
    blurred = fftconvolve(image, kernel, mode="same")
    return image, blurred + np.random.default_rng(0).normal(0, noise, image.shape), kernel


@pytest.mark.parametrize("method", DECONVOLUTION_METHODS.values(), ids=DECONVOLUTION_METHODS)
def test_deconvolution_sharpens(method):
    truth, blurred, kernel = blurred_source(noise=1e-3)
    restored = method(blurred, kernel, 20)
    assert np.all(np.isfinite(restored))
    region = (slice(24, 40), slice(24, 40))  # the source; noise amplification is elsewhere
    assert np.abs(restored - truth)[region].sum() < np.abs(blurred - truth)[region].sum()


def test_richardson_lucy_handles_negative_sky():
    truth, blurred, kernel = blurred_source()
    restored = richardson_lucy(blurred - 0.1, kernel, 30) + 0.1
    assert restored.max() > blurred.max()


def test_metrics():
    truth, blurred, _ = blurred_source()
    scaled = truth * 0.5 + 0.25
    assert psnr(scaled, scaled) == np.inf
    assert ssim(scaled, scaled) == pytest.approx(1.0)
    assert psnr(scaled, scaled + 0.01) == pytest.approx(40.0)
    segment = central_segment(blurred + np.random.default_rng(1).normal(0, 0.01, (64, 64)))
    assert segment[32, 32] and not segment[0, 0]
    assert flux_error(blurred, blurred * 1.1, segment) == pytest.approx(0.1)
    assert residual_rms(blurred, blurred + 0.02, noise=0.01) == pytest.approx(2.0)
    square = np.zeros((64, 64), bool)
    square[:10, :10] = True
    image = np.where(square, 0.5, 0.0)  # 50 nmgy in 100 pixels of 0.1 nmgy noise: 2%
    assert flux_noise(image, square, noise=0.1) == pytest.approx(0.1 * 10 / 50)


def gaussian_galaxy(shape=(3, 64, 64), width=4.0, peak=1.0):
    y, x = np.indices(shape[1:]) - np.array(shape[1:])[:, None, None] // 2
    return np.broadcast_to(peak * np.exp(-(x ** 2 + y ** 2) / (2 * width ** 2)), shape).copy()


def test_segments_and_their_flux_bias():
    """A segment found on a noisy image takes its positive noise along the edge, so an
    exact, noise-free image comes out short there; grown by 2 pixels it does not."""
    clean = gaussian_galaxy()
    noise = np.random.default_rng(0).normal(0, 0.02, clean.shape)
    segment, grown = galaxy_segments(clean + noise)
    assert segment[32, 32] and grown.sum() > segment.sum() and not (segment & ~grown).any()
    off_centre = np.roll(clean, 24, axis=(1, 2)) + noise
    assert galaxy_segments(off_centre) == (None, None)
    bias = segment_flux_bias(clean, noise=0.05, draws=20, seed=1)
    assert len(bias["segment"]) == len(bias["grown"]) == 20
    assert np.mean(bias["segment"]) < -0.01
    assert abs(np.mean(bias["grown"])) < abs(np.mean(bias["segment"])) / 2
    # Without noise there is nothing to select: the measure is exact.
    assert np.allclose(segment_flux_bias(clean, noise=1e-9, draws=2)["segment"], 0, atol=1e-6)


def test_summary_picks_the_best_baseline():
    rows = []
    for method, score in (("GalaxyGAN", 30.0), ("Richardson-Lucy", 28.0), ("Wiener", 29.0),
                          ("degraded", 25.0)):
        rows.append((0, 1, 1.4, 1.0, method, score, score / 40, 0.1, 1.0))
        rows.append((1, 1, 2.5, 5.0, method, 60 - score, (60 - score) / 40, 0.1, 1.0))
    runs = QTable(rows=rows, names=["pair_id", "galaxy_id", "fwhm", "sigma", "method", "psnr",
                                    "ssim", "flux_error", "residual_rms"])
    runs["fwhm"].unit = u.arcsec
    summary = summarize_restoration(runs)
    assert list(summary["best_baseline_psnr"]) == ["Wiener", "Richardson-Lucy"]
    assert summary["margin_psnr_GalaxyGAN"][0] == pytest.approx(1.0)
    assert list(summary["wins_GalaxyGAN"]) == [True, False]


def test_evaluation_on_simulated_pairs(training_field):
    from galaxyml.datasets import galaxy_catalog, make_galaxygan_pairs
    from galaxyml.gan import GalaxyGAN
    from galaxyml.restoration import (evaluate_restoration, plot_restoration_grid,
                                      tune_iterations)

    _, images, _ = training_field
    catalog = galaxy_catalog(images, size=64, mag_range=(14, 20.5))
    grid = [(1.4 * u.arcsec, 1.0), (2.5 * u.arcsec, 5.0)]
    pairs = make_galaxygan_pairs(images, catalog=catalog, size=64, grid=grid, progress=False)
    best = tune_iterations(pairs.subset("train"), candidates=(1, 5, 20), n_galaxies=2)
    assert set(best["Richardson-Lucy"]) == {(1.4, 1.0), (2.5, 5.0)}
    assert set(best["blind"].values()) <= {1, 5, 20}
    test = pairs.subset("test")
    runs, examples = evaluate_restoration(GalaxyGAN(seed=0), test, best, progress=False)
    assert len(runs) == 6 * len(test)
    assert set(runs["method"]) == {"GalaxyGAN", "degraded", "Richardson-Lucy", "Wiener",
                                   "blind", "RL-discrepancy"}
    # Blur moves flux out of the segment; the grown segment gets part of it back.
    degraded = runs[runs["method"] == "degraded"]
    assert (np.nanmean(np.abs(degraded["flux_error_grown"]))
            < np.nanmean(np.abs(degraded["flux_error"])))
    summary = summarize_restoration(runs)
    assert len(summary) == 2 and "wins_GalaxyGAN" in summary.colnames
    assert {"flux_ok_GalaxyGAN", "flux_grown_ok_GalaxyGAN", "flux_noise",
            "flux_within_noise_GalaxyGAN"} <= set(summary.colnames)
    # More noise, a less precise flux in the data themselves.
    assert summary["flux_noise"][1] > summary["flux_noise"][0] > 0
    # Deconvolution helps where the blur is strong and the noise modest.
    strong = summary[summary["sigma"] == 5.0][0]
    assert strong["psnr_Richardson-Lucy"] >= strong["psnr_degraded"] - 0.5
    assert set(examples) == {(1.4, 1.0), (2.5, 5.0)}
    assert len(plot_restoration_grid(summary).axes) == 4


def test_richardson_lucy_stopped_by_the_discrepancy_principle():
    truth, _, kernel = blurred_source()
    blurred = fftconvolve(truth, kernel, mode="same")
    rng = np.random.default_rng(1)
    stops = []
    for noise in (1e-3, 1e-2):
        noisy = np.stack([blurred + rng.normal(0, noise, blurred.shape) for _ in range(2)])
        restored, iterations = richardson_lucy_discrepancy(noisy - 0.05, kernel, noise)
        restored += 0.05  # a negative sky is handled
        assert restored.shape == noisy.shape and iterations.shape == (2,)
        region = (slice(24, 40), slice(24, 40))
        assert np.abs(restored[0] - truth)[region].sum() < np.abs(noisy[0] - truth)[region].sum()
        # It stopped where the residual reached the noise, which is what its name says.
        reblurred = fftconvolve(restored[0], kernel, mode="same")
        assert np.std((noisy[0] - reblurred)[8:-8, 8:-8]) == pytest.approx(noise, rel=0.3)
        stops.append(iterations.mean())
    assert stops[0] > stops[1]  # less noise, more iterations
    single, _ = richardson_lucy_discrepancy(blurred, kernel, 1e-3, max_iterations=3)
    assert single.shape == blurred.shape
    with pytest.raises(InvalidParameterError, match="noise must be positive"):
        richardson_lucy_discrepancy(blurred, kernel, 0.0)


def test_summary_of_several_models_and_the_flux_check():
    rows = []
    for method, score, flux in (("GalaxyGAN-refine", 31.0, 0.02), ("GalaxyGAN-paper", 29.0, 0.3),
                                ("Richardson-Lucy", 30.0, 0.1), ("degraded", 25.0, 0.2)):
        grown = 0.01 if method == "GalaxyGAN-paper" else 0.05
        rows.append((0, 1, 1.4, 1.0, method, score, score / 40, flux, grown, 1.0, 0.02))
        rows.append((1, 2, 1.4, 1.0, method, score, score / 40, -flux, -grown, 1.0, 0.04))
    runs = QTable(rows=rows, names=["pair_id", "galaxy_id", "fwhm", "sigma", "method", "psnr",
                                    "ssim", "flux_error", "flux_error_grown", "residual_rms",
                                    "flux_noise"])
    runs["fwhm"].unit = u.arcsec
    runs.meta["models"] = ["GalaxyGAN-refine", "GalaxyGAN-paper"]
    summary = summarize_restoration(runs)
    assert list(summary["best_baseline_psnr"]) == ["Richardson-Lucy"]
    assert summary["flux_error_GalaxyGAN-paper"][0] == pytest.approx(0.3)  # of |errors|
    assert list(summary["wins_GalaxyGAN-refine"]) == [True]
    assert list(summary["wins_GalaxyGAN-paper"]) == [False]
    assert list(summary["flux_ok_GalaxyGAN-refine"]) == [True]
    assert list(summary["flux_ok_GalaxyGAN-paper"]) == [False]
    assert summary["flux_error_grown_GalaxyGAN-paper"][0] == pytest.approx(0.01)
    assert list(summary["flux_grown_ok_GalaxyGAN-paper"]) == [True]
    # The excess over Richardson-Lucy, pair by pair, and its standard error.
    assert summary["flux_excess_GalaxyGAN-paper"][0] == pytest.approx(0.2)
    assert summary["flux_excess_se_GalaxyGAN-paper"][0] == pytest.approx(0.0)
    assert summary["flux_grown_excess_GalaxyGAN-paper"][0] == pytest.approx(-0.04)
    assert summary["margin_psnr_GalaxyGAN-paper"][0] == pytest.approx(-1.0)
    # The data's own flux noise: one column per cell, and which models' errors are within it.
    assert summary["flux_noise"][0] == pytest.approx(0.03)
    assert list(summary["flux_within_noise_GalaxyGAN-paper"]) == [True]  # 0.01
    assert list(summary["flux_within_noise_GalaxyGAN-refine"]) == [False]  # 0.05
    # One model against the other: better PSNR, SSIM and flux in the one cell.
    comparison = compare_models(summary, "GalaxyGAN-refine", "GalaxyGAN-paper")
    assert comparison["cells"] == 1 and comparison["mean_psnr_difference"] == pytest.approx(2.0)
    assert (comparison["psnr_higher"], comparison["ssim_higher"],
            comparison["flux_error_lower"]) == (1, 1, 1)
    reverse = compare_models(summary, "GalaxyGAN-paper", "GalaxyGAN-refine")
    assert (reverse["psnr_higher"], reverse["flux_error_lower"]) == (0, 0)
    with pytest.raises(InvalidParameterError, match="no model named 'GalaxyGAN'"):
        compare_models(summary, "GalaxyGAN", "GalaxyGAN-paper")


def test_power_law_calibration_recovers_the_law():
    rng = np.random.default_rng(1)
    spread = np.exp(rng.uniform(-4, 1, 200_000))
    residual = rng.normal(0, 3.0 * spread ** 0.5)
    scale, exponent = power_law_calibration(residual, spread)
    assert abs(exponent - 0.5) < 0.01 and abs(scale - 3.0) / 3.0 < 0.02
    # A spread that falls as the error grows carries no information: a constant sigma.
    assert power_law_calibration(residual, 1 / spread)[1] == 0.0
    with pytest.raises(InvalidParameterError, match="fewer than two pixels"):
        power_law_calibration(np.zeros(5), spread[:5])


def test_flux_excess_is_paired_by_pair():
    """The excess over Richardson-Lucy compares each pair with itself, whatever the row
    order, and skips pairs without a segment."""
    model_errors = {10: 0.05, 11: -0.20, 12: 0.01, 13: np.nan}
    rl_errors = {13: np.nan, 12: 0.04, 11: 0.10, 10: -0.02}  # another order
    rows = [(pair, pair, 1.4, 1.0, "GalaxyGAN", 30.0, 0.8, error, error, 1.0)
            for pair, error in model_errors.items()]
    rows += [(pair, pair, 1.4, 1.0, method, 28.0, 0.7, error, error, 1.0)
             for method in ("Richardson-Lucy", "degraded") for pair, error in rl_errors.items()]
    runs = QTable(rows=rows, names=["pair_id", "galaxy_id", "fwhm", "sigma", "method", "psnr",
                                    "ssim", "flux_error", "flux_error_grown", "residual_rms"])
    runs["fwhm"].unit = u.arcsec
    summary = summarize_restoration(runs)
    excess = np.array([0.05 - 0.02, 0.20 - 0.10, 0.01 - 0.04])
    assert summary["flux_excess_GalaxyGAN"][0] == pytest.approx(excess.mean())
    assert summary["flux_excess_se_GalaxyGAN"][0] == pytest.approx(excess.std(ddof=1) / np.sqrt(3))
    # The mean excess is the difference of the two mean errors, as the check uses.
    assert summary["flux_excess_GalaxyGAN"][0] == pytest.approx(
        summary["flux_error_GalaxyGAN"][0] - summary["flux_error_Richardson-Lucy"][0])
    assert summary["flux_grown_excess_GalaxyGAN"][0] == pytest.approx(excess.mean())
