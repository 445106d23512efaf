# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, Cutout2D, StdDevUncertainty
from photutils.aperture import CircularAperture, aperture_photometry

from galaxyml.degrade import add_point_source, host_galaxy
from galaxyml.exceptions import DefaultNoiseModelWarning, NegativeFluxError, PositionOffImageError
from galaxyml.psf import GaussianPSF, sdss_psf

from .test_degrade import sky_wcs

META = {"gain": 4.6, "nmgy_per_count": 0.0055}


def galaxy_image(noise=0.0, meta=META, seed=0):
    yy, xx = np.mgrid[:80, :80]
    galaxy = 3.0 * np.exp(-np.hypot(xx - 40.2, yy - 39.7) / 4.0)  # exponential disk
    data = galaxy + np.random.default_rng(seed).normal(0, noise, galaxy.shape)
    return CCDData(data, unit="nmgy", wcs=sky_wcs(data.shape), meta=dict(meta),
                   uncertainty=StdDevUncertainty(np.full(data.shape, max(noise, 1e-3))))


def test_flux_and_subpixel_position_without_noise():
    image = galaxy_image()
    result, truth = add_point_source(image, GaussianPSF(3.0), flux=12.5 * u.nmgy,
                                     position=(30.3, 45.8), photon_noise=False)
    added = result.data - image.data
    assert added.sum() == pytest.approx(12.5, rel=1e-9)
    yy, xx = np.indices(added.shape)
    assert (added * xx).sum() / added.sum() == pytest.approx(30.3, abs=0.01)
    assert (added * yy).sum() / added.sum() == pytest.approx(45.8, abs=0.01)
    assert truth["ps_flux"][0] == 12.5 * u.nmgy
    assert truth["ps_mag"][0].value == pytest.approx(22.5 - 2.5 * np.log10(12.5))
    assert "sky_centroid" in truth.colnames
    assert np.array_equal(image.data, galaxy_image().data)  # the input is untouched


def test_contrast_to_host_at_its_centroid():
    image = galaxy_image(noise=0.01)
    x, y, host_flux = host_galaxy(image)
    assert (x, y) == (pytest.approx(40.2, abs=0.1), pytest.approx(39.7, abs=0.1))
    # Analytic total flux of the exponential disk: 2 pi h^2 I0; Kron recovers most of it.
    assert host_flux.value == pytest.approx(2 * np.pi * 16 * 3.0, rel=0.1)
    result, truth = add_point_source(image, GaussianPSF(3.0), contrast=2.0, seed=1)
    assert truth["contrast"][0] == pytest.approx(2.0)
    assert truth["ps_flux"][0].value == pytest.approx(2 * truth["host_flux"][0].value)
    assert (truth["x"][0], truth["y"][0]) == (pytest.approx(x), pytest.approx(y))
    explicit, truth = add_point_source(image, GaussianPSF(3.0), contrast=0.5,
                                       host_flux=100 * u.nmgy, seed=1)
    assert truth["ps_flux"][0] == 50 * u.nmgy


def test_photon_noise_follows_gain_and_calibration():
    image = galaxy_image()
    flux = 5000.0
    model, _ = add_point_source(image, GaussianPSF(4.0), flux=flux, position=(40, 40),
                                photon_noise=False)
    noisy, truth = add_point_source(image, GaussianPSF(4.0), flux=flux, position=(40, 40),
                                    seed=3)
    assert truth["photon_noise"][0]
    ps = model.data - image.data
    expected_sigma = np.sqrt(ps * META["nmgy_per_count"] / META["gain"])
    bright = ps > 1e-3  # the 17 x 17 pixels of the rendered PSF, bar its corners
    assert bright.sum() > 200
    pulls = (noisy.data - model.data)[bright] / expected_sigma[bright]
    assert np.std(pulls) == pytest.approx(1.0, abs=0.08)
    assert np.allclose(noisy.uncertainty.array[bright] ** 2,
                       image.uncertainty.array[bright] ** 2 + expected_sigma[bright] ** 2)
    with pytest.warns(DefaultNoiseModelWarning, match="without photon noise"):
        add_point_source(galaxy_image(meta={}), GaussianPSF(4.0), flux=10.0, position=(40, 40))


@pytest.mark.parametrize("kwargs, error", [
    ({"flux": -1.0, "position": (40, 40)}, NegativeFluxError),
    ({"flux": 0.0, "position": (40, 40)}, NegativeFluxError),
    ({"contrast": -0.5}, NegativeFluxError),
    ({"contrast": np.nan}, NegativeFluxError),
    ({"flux": 1.0, "position": (85.0, 40.0)}, PositionOffImageError),
    ({"flux": 1.0, "contrast": 1.0}, ValueError),
])
def test_bad_input(kwargs, error):
    with pytest.raises(error):
        add_point_source(galaxy_image(noise=0.01), GaussianPSF(3.0), photon_noise=False, **kwargs)


def test_injected_flux_recovered_on_real_sky(sdss_frames, sdss_field_dir):
    """On an empty patch of the real r frame, aperture photometry recovers the flux within 1%."""
    frame = sdss_frames["r"]
    patch = Cutout2D(frame.data, (1800, 200), 64, wcs=frame.wcs)
    image = CCDData(patch.data, unit=frame.unit, wcs=patch.wcs, meta=dict(frame.meta))
    psf = sdss_psf(sdss_field_dir / "psField-002583-2-0136.fits", "r", 200, 1800)
    position = (31.3, 32.7)
    aperture = CircularAperture(position, r=8 / 0.396)
    sky = aperture_photometry(image.data, aperture)["aperture_sum"][0]
    for seed in range(3):
        result, truth = add_point_source(image, psf, flux=20 * u.nmgy, position=position,
                                         seed=seed)
        measured = aperture_photometry(result.data, aperture)["aperture_sum"][0] - sky
        assert measured == pytest.approx(20.0, rel=0.01)
