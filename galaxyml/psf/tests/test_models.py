# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u

from galaxyml.exceptions import (EvenKernelSizeError, InvalidParameterError, InvalidPSFError,
                                 PositionOffImageError)
from galaxyml.psf import GaussianPSF, MoffatPSF, SampledPSF, measure_fwhm


def centroid(kernel):
    yy, xx = np.indices(kernel.shape)
    return (kernel * xx).sum() - kernel.shape[1] // 2, (kernel * yy).sum() - kernel.shape[0] // 2


@pytest.mark.parametrize("fwhm", [1.4 * u.arcsec, 3.5 * u.pix, 3.5])
def test_gaussian_units_and_measured_fwhm(fwhm):
    psf = GaussianPSF(fwhm)
    expected = u.Quantity(fwhm).value if u.Quantity(fwhm).unit != u.arcsec else 1.4 / 0.396
    assert psf.fwhm_pixels == pytest.approx(expected)
    kernel = psf.render()
    assert kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert measure_fwhm(psf).to_value(u.arcsec) == pytest.approx(psf.fwhm.value, rel=0.01)


@pytest.mark.parametrize("psf", [GaussianPSF(3.0), MoffatPSF(3.0, beta=3.0), MoffatPSF(4.0)])
def test_subpixel_offset_moves_the_centroid(psf):
    kernel = psf.render(41, offset=(0.3, -0.45))
    dx, dy = centroid(kernel)
    assert dx == pytest.approx(0.3, abs=0.01)
    assert dy == pytest.approx(-0.45, abs=0.01)
    assert kernel.sum() == pytest.approx(1.0)


def test_moffat_half_maximum_at_half_fwhm():
    psf = MoffatPSF(2.0 * u.arcsec, beta=2.5)
    radius = psf.fwhm_pixels / 2
    assert (1 + (radius / psf.alpha_pixels) ** 2) ** -psf.beta == pytest.approx(0.5)
    # The default size holds nearly all of the flux of the infinite profile.
    assert psf.default_size > 4 * psf.fwhm_pixels


def test_sampled_psf_shift_and_crop():
    array = GaussianPSF(4.0).render(31)
    psf = SampledPSF(array * 7.0)
    assert psf.array.sum() == pytest.approx(1.0)
    assert psf.render(15).shape == (15, 15)
    assert psf.render(51)[25, 25] == pytest.approx(array[15, 15])
    dx, dy = centroid(psf.render(31, offset=(-0.4, 0.25)))
    assert (dx, dy) == (pytest.approx(-0.4, abs=0.02), pytest.approx(0.25, abs=0.02))
    assert measure_fwhm(psf).value == pytest.approx(4.0 * 0.396, rel=0.01)


@pytest.mark.parametrize("array, error", [
    (np.zeros((5, 5)), InvalidPSFError),
    (-np.ones((5, 5)), InvalidPSFError),
    (np.full((5, 5), np.nan), InvalidPSFError),
    (np.ones((4, 5)), EvenKernelSizeError),
    (np.ones(5), InvalidPSFError),
])
def test_bad_psf_arrays(array, error):
    with pytest.raises(error):
        SampledPSF(array)


def test_bad_sizes_and_parameters():
    with pytest.raises(EvenKernelSizeError, match="odd"):
        GaussianPSF(2.0).render(10)
    with pytest.raises(InvalidPSFError, match="FWHM"):
        GaussianPSF(-1 * u.arcsec)
    with pytest.raises(InvalidPSFError, match="beta"):
        MoffatPSF(2.0, beta=1.0)


def test_measure_fwhm_positions():
    image = np.zeros((60, 80))
    for x, y in [(20.3, 30.6), (55.0, 20.2)]:
        stamp = GaussianPSF(3.2).render(21, offset=(x - round(x), y - round(y))) * 100
        image[round(y) - 10:round(y) + 11, round(x) - 10:round(x) + 11] += stamp
    fwhm = measure_fwhm(image, [(20.3, 30.6), (55.0, 20.2)])
    assert fwhm.unit == u.pix
    assert np.allclose(fwhm.value, 3.2, rtol=0.01)
    with pytest.raises(PositionOffImageError):
        measure_fwhm(image, [(100.0, 10.0)])


@pytest.mark.parametrize("factor", [0.5, 0.75, 1.25, 1.5])
def test_scaled_psfs_are_wider_or_narrower(factor):
    gaussian = GaussianPSF(2.7)
    assert gaussian.scaled(factor).fwhm_pixels == pytest.approx(2.7 * factor)
    assert MoffatPSF(3.0).scaled(factor).fwhm_pixels == pytest.approx(3.0 * factor)
    sampled = SampledPSF(gaussian.render(41), meta={"source": "test"})
    scaled = sampled.scaled(factor)
    assert scaled.array.sum() == pytest.approx(1.0)
    assert scaled.array.shape[0] % 2 == 1 and scaled.array.shape[0] >= 41
    assert scaled.meta["scaled_by"] == factor
    # The pixelated profile's width scales by the factor, to a few per cent.
    assert (measure_fwhm(scaled) / measure_fwhm(sampled)).value == pytest.approx(factor, rel=0.04)
    assert np.allclose(centroid(scaled.render()), 0.0, atol=1e-6)


def test_scale_factor_must_be_positive():
    with pytest.raises(InvalidParameterError):
        GaussianPSF(2.0).scaled(0.0)
    with pytest.raises(InvalidParameterError):
        SampledPSF(GaussianPSF(2.0).render(11)).scaled(np.nan)
