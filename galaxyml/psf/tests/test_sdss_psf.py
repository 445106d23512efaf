# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits

from galaxyml.exceptions import NoStarsError, UnknownBandError
from galaxyml.psf import SDSSPSFBasis, empirical_psf, find_stars, measure_fwhm, sdss_psf

PSFIELD = "psField-002583-2-0136.fits"


def test_simulated_psfield_gives_the_simulated_psf(simulated_field):
    # simulate_sdss_field writes its Gaussian PSFs (typical SDSS widths) as one-component KL-PSFs.
    for band, fwhm in zip("gri", (1.35, 1.2, 1.15)):
        psf = sdss_psf(simulated_field.files.psfield, band, 100.0, 150.0)
        assert psf.array.shape == (51, 51)
        assert psf.array.sum() == pytest.approx(1.0)
        assert measure_fwhm(psf).to_value(u.arcsec) == pytest.approx(fwhm, rel=0.01)


def test_psfield_polynomial_follows_the_position(simulated_field):
    basis = SDSSPSFBasis(simulated_field.files.psfield, "r")
    # Two components whose weights vary with row and column in the documented way.
    c0, c1 = np.zeros((2, 2)), np.zeros((2, 2))
    c0[0, 0] = 1.0
    # weight of component 2 = 2 (0.001 row) - (0.001 col) + 0.5 (0.001)^2 row col
    c1[1, 0] = 2.0
    c1[0, 1] = -1.0
    c1[1, 1] = 0.5
    basis.coefficients = [c0, c1]
    assert basis.weights(500.0, 300.0) == pytest.approx([1.0, 1.0 - 0.3 + 0.5 * 0.15])


def test_psfield_without_the_band(simulated_field, tmp_path):
    with fits.open(simulated_field.files.psfield) as hdul:
        hdul[:3].writeto(tmp_path / "short.fits")
    with pytest.raises(UnknownBandError, match="no KL-PSF extension for band 'r'"):
        sdss_psf(tmp_path / "short.fits", "r", 10, 10)
    with pytest.raises(UnknownBandError, match="unknown SDSS band"):
        sdss_psf(simulated_field.files.psfield, "y", 10, 10)


def test_find_stars_on_simulated_field(simulated_field):
    image = simulated_field.files.read("r")["r"]
    stars = find_stars(image, isolation=8)
    truth = simulated_field.truth
    true_stars = truth[truth["kind"] == "star"]
    # Nearly every source on the stellar locus is a simulated star (a compact galaxy may join).
    on_star = [np.min(np.hypot(true_stars["x"] - x, true_stars["y"] - y)) < 1.0
               for x, y in zip(stars["x"], stars["y"])]
    assert np.mean(on_star) >= 0.75
    assert np.median(stars["fwhm"]).to_value(u.arcsec) == pytest.approx(1.2, rel=0.05)


def test_empirical_psf_needs_stars(simulated_field):
    image = simulated_field.files.read("r")["r"]
    with pytest.raises(NoStarsError):
        empirical_psf(image, stars=find_stars(image, isolation=8)[:2])


@pytest.mark.parametrize("band", "gri")
def test_kl_psf_width_matches_stars_on_real_frame(sdss_frames, sdss_field_dir, band):
    """The KL-PSF's Gaussian-fit FWHM agrees within 5% with stars of 16 < r < 18."""
    stars = find_stars(sdss_frames["r"], mag_range=(16, 18))
    assert len(stars) >= 10
    image = sdss_frames[band]
    sky = sdss_frames["r"].wcs.pixel_to_world(stars["x"], stars["y"])
    x, y = image.wcs.world_to_pixel(sky)
    star_fwhm = np.nanmedian(measure_fwhm(image, np.column_stack([x, y])))
    basis = SDSSPSFBasis(sdss_field_dir / PSFIELD, band)
    psf_fwhm = np.median(u.Quantity([measure_fwhm(basis.at(row, col))
                                     for row, col in zip(y, x)]))
    assert psf_fwhm.to_value(u.arcsec) == pytest.approx(star_fwhm.to_value(u.arcsec), rel=0.05)


def test_empirical_psf_on_real_frame(sdss_frames, sdss_field_dir):
    image = sdss_frames["r"]
    psf = empirical_psf(image, mag_range=(16, 18))
    assert psf.meta["n_stars"] >= 10
    kl = sdss_psf(sdss_field_dir / PSFIELD, "r", 744, 1024)
    assert measure_fwhm(psf).value == pytest.approx(measure_fwhm(kl).value, rel=0.05)
