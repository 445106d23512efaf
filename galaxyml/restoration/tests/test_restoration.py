# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable
from scipy.signal import fftconvolve

from galaxyml.psf import GaussianPSF
from galaxyml.restoration import (blind_deconvolution, central_segment, flux_error, psnr,
                                  residual_rms, richardson_lucy, ssim, summarize_restoration,
                                  wiener)


def blurred_source(noise=0.0):
    image = np.zeros((64, 64))
    image[30:34, 30:34] = 1.0
    kernel = GaussianPSF(5.0).render()
    blurred = fftconvolve(image, kernel, mode="same")
    return image, blurred + np.random.default_rng(0).normal(0, noise, image.shape), kernel


@pytest.mark.parametrize("method", [richardson_lucy, blind_deconvolution, wiener])
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
    assert summary["gan_margin_psnr"][0] == pytest.approx(1.0)
    assert list(summary["gan_wins"]) == [True, False]


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
    assert len(runs) == 5 * len(test)
    assert set(runs["method"]) == {"GalaxyGAN", "degraded", "Richardson-Lucy", "Wiener",
                                   "blind"}
    summary = summarize_restoration(runs)
    assert len(summary) == 2 and "gan_wins" in summary.colnames
    # Deconvolution helps where the blur is strong and the noise modest.
    strong = summary[summary["sigma"] == 5.0][0]
    assert strong["psnr_Richardson-Lucy"] >= strong["psnr_degraded"] - 0.5
    assert set(examples) == {(1.4, 1.0), (2.5, 5.0)}
    assert len(plot_restoration_grid(summary).axes) == 4
