# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import mad_std, sigma_clipped_stats
from astropy.wcs import WCS
from photutils.segmentation import detect_sources
from photutils.utils import circular_footprint

from galaxyml.degrade import (background_std, convolve_image, degrade, degrade_like_galaxygan,
                              matching_kernel, noise_to_add, sky_noise)
from galaxyml.io import read_sdss_frame
from galaxyml.exceptions import DeconvolutionError, InvalidParameterError, NoiseTargetWarning
from galaxyml.io import MultiBandCutout
from galaxyml.psf import GaussianPSF, MoffatPSF, SampledPSF, find_stars, measure_fwhm, sdss_psf

SCALE = 0.396


def sky_wcs(shape):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    return wcs


def star_field(fwhm_pix, noise, shape=(200, 200), seed=0, positions=((50, 60), (140, 130))):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, noise, shape)
    for x, y in positions:
        data[y - 20:y + 21, x - 20:x + 21] += 50 * GaussianPSF(fwhm_pix).render(41)
    uncertainty = StdDevUncertainty(np.full(shape, noise))
    return CCDData(data, unit="nmgy", wcs=sky_wcs(shape), uncertainty=uncertainty,
                   meta={"band": "r"}), np.array(positions, float)


def test_gaussian_matching_reaches_the_target_seeing():
    image, positions = star_field(3.0, 0.001)
    degraded, info = degrade(image, target_fwhm=2.5 * u.arcsec, psf=GaussianPSF(3.0), seed=1)
    measured = measure_fwhm(degraded, positions)
    assert np.allclose(measured.to_value(u.arcsec), 2.5, rtol=0.01)
    assert info["target_fwhm"].to_value(u.pix) == pytest.approx(2.5 / SCALE, rel=1e-3)
    assert degraded.wcs.wcs.crval[0] == image.wcs.wcs.crval[0]
    assert degraded.meta["band"] == "r" and degraded.meta["degraded"]
    # Convolution keeps the flux of each star.
    for x, y in positions.astype(int):
        before = image.data[y - 30:y + 31, x - 30:x + 31].sum()
        after = degraded.data[y - 30:y + 31, x - 30:x + 31].sum()
        assert after == pytest.approx(before, rel=0.01)


def test_matching_kernel_between_non_gaussian_psfs():
    source, target = MoffatPSF(3.0, beta=3.5), GaussianPSF(7.0)
    kernel = matching_kernel(source, target, size=51)
    matched, _ = convolve_image(source.render(51), kernel)
    assert measure_fwhm(matched).value == pytest.approx(7.0, rel=0.02)
    assert kernel.sum() == pytest.approx(1.0)


def test_sharper_target_is_deconvolution():
    image, _ = star_field(3.0, 0.01)
    with pytest.raises(DeconvolutionError, match="sharper"):
        degrade(image, target_fwhm=2.0 * u.pix, psf=GaussianPSF(3.0))
    with pytest.raises(DeconvolutionError):
        matching_kernel(SampledPSF(GaussianPSF(4.0).render(31)), GaussianPSF(3.0))


def test_noise_factor_and_uncertainty():
    image, _ = star_field(3.0, 0.05, shape=(300, 300), positions=())
    degraded, info = degrade(image, noise_factor=3.0, seed=2)
    original = sky_noise(image.data)
    assert info["original_noise"].to_value(u.nmgy) == original
    assert original == pytest.approx(0.05, rel=0.02)  # pure noise: nearly all is sky
    assert background_std(degraded.data) == pytest.approx(3 * original, rel=0.01)
    assert info["final_noise"].to_value(u.nmgy) == pytest.approx(3 * original, rel=0.002)
    # The propagated uncertainty describes the pixels' actual scatter.
    assert np.median(degraded.uncertainty.array) == pytest.approx(np.std(degraded.data), rel=0.03)
    blurred, _ = degrade(image, target_fwhm=6.0 * u.pix, psf=GaussianPSF(2.0), seed=2)
    # Blurred white noise: the propagated per-pixel sigma matches the measured one.
    assert np.median(blurred.uncertainty.array) == pytest.approx(np.std(blurred.data), rel=0.05)
    with pytest.raises(InvalidParameterError, match="at least 1"):
        degrade(image, noise_factor=0.5)


def test_seed_reproducible_and_input_untouched():
    image, _ = star_field(3.0, 0.05)
    copy = image.data.copy()
    a, _ = degrade(image, target_fwhm=2 * u.arcsec, psf=GaussianPSF(3.0), noise_factor=2, seed=5)
    b, _ = degrade(image, target_fwhm=2 * u.arcsec, psf=GaussianPSF(3.0), noise_factor=2, seed=5)
    c, _ = degrade(image, target_fwhm=2 * u.arcsec, psf=GaussianPSF(3.0), noise_factor=2, seed=6)
    assert np.array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert np.array_equal(image.data, copy)


def test_nan_pixels_grow_the_mask():
    image, _ = star_field(3.0, 0.05)
    image.data[100, 100] = np.nan
    degraded, _ = degrade(image, target_fwhm=2 * u.arcsec, psf=GaussianPSF(3.0), seed=1)
    assert np.isnan(degraded.data[100, 100])
    assert degraded.mask[100, 103] and degraded.mask[97, 100]
    assert not degraded.mask[100, 120]
    assert np.isfinite(degraded.data[100, 103])


def cutout_of_noise(bands="gri", shape=(96, 96), noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, noise, (len(bands),) + shape).astype(np.float32)
    return MultiBandCutout(data, tuple(bands), sky_wcs(shape), "nmgy",
                           uncertainty=np.full(data.shape, noise, np.float32))


def test_multiband_independent_noise_per_band():
    cutout = cutout_of_noise()
    degraded, info = degrade(cutout, target_fwhm={"g": 2.0 * u.arcsec, "r": 2.0 * u.arcsec,
                                                  "i": 2.5 * u.arcsec},
                             psf={"g": GaussianPSF(3.0), "r": GaussianPSF(2.8),
                                  "i": GaussianPSF(2.6)}, noise_factor=5, seed=3)
    assert set(info) == set("gri")
    assert info["i"]["target_fwhm"].value == pytest.approx(2.5 / SCALE, rel=1e-3)
    added = (degraded.data - cutout.data).reshape(3, -1)
    correlation = np.corrcoef(added)
    assert np.all(np.abs(correlation[np.triu_indices(3, 1)]) < 0.05)
    assert isinstance(degraded, MultiBandCutout) and degraded.bands == cutout.bands


def test_galaxygan_recipe():
    cutout = cutout_of_noise(shape=(128, 128), noise=0.004)
    degraded, info = degrade_like_galaxygan(cutout, fwhm=2.5, sigma=5.0, seed=1)
    kernel = info["g"]["kernel"]
    # Not truncated at 5 x 5: the kernel holds +-2 FWHM of a 2.5 arcsec Gaussian.
    assert kernel.shape[0] > 5 * 2.5 / SCALE / 2
    assert measure_fwhm(SampledPSF(kernel)).value == pytest.approx(2.5, rel=0.02)
    for k, band in enumerate("gri"):
        faint = degraded.data[k][np.abs(degraded.data[k]) < 0.1]
        original = cutout.data[k][np.abs(cutout.data[k]) < 0.1]
        assert np.std(faint) == pytest.approx(5 * np.std(original), rel=0.03)
    added = (degraded.data - cutout.data).reshape(3, -1)
    assert np.all(np.abs(np.corrcoef(added)[np.triu_indices(3, 1)]) < 0.05)
    with pytest.raises(ValueError, match="sigma"):
        degrade_like_galaxygan(cutout, fwhm=1.4, sigma=0.5)


def test_noisier_image_warns():
    with pytest.warns(NoiseTargetWarning, match="already exceeds"):
        assert noise_to_add(2.0, 1.0) == 0.0
    assert noise_to_add(3.0, 5.0) == pytest.approx(4.0)


def test_real_frame_degraded_to_2p5_arcsec(sdss_frames, sdss_field_dir):
    """Stars of 16 < r < 18 on the degraded r frame have a median FWHM within 5% of 2.5"."""
    image = sdss_frames["r"]
    stars = find_stars(image, mag_range=(16, 18))
    psf = sdss_psf(sdss_field_dir / "psField-002583-2-0136.fits", "r", 744, 1024)
    degraded, info = degrade(image, target_fwhm=2.5 * u.arcsec, psf=psf, seed=0)
    positions = np.column_stack([stars["x"], stars["y"]])
    fwhm = np.nanmedian(measure_fwhm(degraded, positions))
    assert fwhm.to_value(u.arcsec) == pytest.approx(2.5, rel=0.05)
    assert info["final_noise"].value == pytest.approx(info["original_noise"].value, rel=0.002)


def _blank_sky(image):
    """Blank sky chosen independently of galaxyml: 1.5-sigma sources dilated by 15 pixels."""
    data = np.asarray(image.data)
    bad = np.asarray(image.mask, bool) | ~np.isfinite(data)
    segments = detect_sources(np.where(bad, 0, data), 1.5 * mad_std(data[~bad]), 5, mask=bad)
    return ~(segments.make_source_mask(footprint=circular_footprint(15)) | bad)


def _clipped_std(values):
    return sigma_clipped_stats(values, sigma=3.0, maxiters=10)[2]


@pytest.mark.parametrize("band", "ugriz")
def test_real_frame_noise_factor_in_blank_sky(sdss_field_dir, band):
    """Blank-sky noise ends within 5% of noise_factor x the original, in every band.

    A global clipped scatter of this crowded field lets faint sources in
    (0.040 instead of 0.030 nmgy in r), which made factor 5 come out 5.56.
    """
    frame = read_sdss_frame(sdss_field_dir / f"frame-{band}-002583-2-0136.fits.bz2",
                            psfield=sdss_field_dir / "psField-002583-2-0136.fits",
                            fpm=sdss_field_dir / f"fpM-002583-{band}2-0136.fits")
    image = frame[300:1100, 600:1400]  # 800 x 800 pixels away from M2
    sky = _blank_sky(image)
    original = _clipped_std(image.data[sky])
    for factor in (1, 2, 5, 10):
        degraded, info = degrade(image, noise_factor=factor, seed=factor)
        final = _clipped_std(degraded.data[sky & ~degraded.mask])
        assert final / original == pytest.approx(factor, rel=0.05), factor
    if band == "r":
        assert info["original_noise"].to_value(u.nmgy) == pytest.approx(0.030, rel=0.05)


def test_real_frame_blur_and_noise_in_blank_sky(sdss_frames, sdss_field_dir):
    """The 2.5 arcsec degradation of the whole r frame with noise_factor 1 and 5."""
    image = sdss_frames["r"]
    psf = sdss_psf(sdss_field_dir / "psField-002583-2-0136.fits", "r", 744, 1024)
    sky = _blank_sky(image)
    original = _clipped_std(image.data[sky])
    for factor in (1, 5):
        degraded, _ = degrade(image, target_fwhm=2.5 * u.arcsec, psf=psf, noise_factor=factor,
                              seed=0)
        final = _clipped_std(degraded.data[sky & ~degraded.mask])
        assert final / original == pytest.approx(factor, rel=0.05), factor
