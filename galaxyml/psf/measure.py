# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Seeing measurements: the FWHM of a PSF or of point sources in an image."""

import numpy as np
from astropy import units as u
from astropy.nddata import NDData

from ..exceptions import InvalidShapeError, PositionOffImageError
from ..io.fits import wcs_pixel_scale
from ._fwhm import fit_fwhm_pixels
from .models import PSFModel

__all__ = ["measure_fwhm"]


def measure_fwhm(psf_or_image, positions=None, fit_shape=None, pixel_scale=None):
    """FWHM of a circular Gaussian fitted to a PSF or to point sources in an image.

    Parameters
    ----------
    psf_or_image : `~galaxyml.psf.PSFModel`, `~astropy.nddata.NDData` or 2-D array
        A PSF model (its default rendering is fitted), or a
        background-subtracted image.
    positions : array-like of shape (n, 2), optional
        (x, y) pixel positions of point sources in the image, each fitted
        separately.  Without them, the image holds one source, found by its
        centre of mass.
    fit_shape : int, optional
        Odd side of the fitted box in pixels.  By default about three
        times the FWHM, found by a first fit in a 7 x 7 box, so that the
        wings of a non-Gaussian PSF weigh the same whatever the seeing.
    pixel_scale : `~astropy.units.Quantity`, optional
        Angle per pixel; taken from the PSF model or the image's WCS when
        omitted.

    Returns
    -------
    fwhm : `~astropy.units.Quantity`
        In arcsec when the pixel scale is known, else in pixels; a scalar
        without ``positions``, else one value per position (NaN where a
        fit failed).
    """
    data, mask, scale = _data_mask_and_scale(psf_or_image, pixel_scale)
    xypos = None
    if positions is not None:
        xypos = np.atleast_2d(np.asarray(positions, dtype=float))
        _check_inside(xypos, data.shape)
    fwhm = fit_fwhm_pixels(data, xypos, fit_shape, mask) * u.pix
    if positions is None:
        fwhm = fwhm[0]
    return (fwhm * scale).to(u.arcsec) if scale is not None else fwhm


def _data_mask_and_scale(psf_or_image, pixel_scale):
    scale = None if pixel_scale is None else u.Quantity(pixel_scale, u.arcsec / u.pix)
    if isinstance(psf_or_image, PSFModel):
        data = psf_or_image.render()
        return data, None, scale if scale is not None else psf_or_image.pixel_scale
    if isinstance(psf_or_image, NDData):
        data = np.asarray(psf_or_image.data, dtype=float)
        mask = None if psf_or_image.mask is None else np.asarray(psf_or_image.mask, bool)
        wcs = psf_or_image.wcs
        if scale is None and wcs is not None and wcs.has_celestial:
            scale = wcs_pixel_scale(wcs)
        return data, mask, scale
    data = np.asarray(psf_or_image, dtype=float)
    if data.ndim != 2:
        raise InvalidShapeError(f"need a 2-D image or a PSF model, not an array of shape "
                                f"{data.shape}")
    return data, None, scale


def _check_inside(xypos, shape):
    ny, nx = shape
    outside = ((xypos[:, 0] < -0.5) | (xypos[:, 0] > nx - 0.5)
               | (xypos[:, 1] < -0.5) | (xypos[:, 1] > ny - 0.5))
    if outside.any():
        raise PositionOffImageError(f"{int(outside.sum())} of the positions lie outside the "
                                    f"image of shape {shape}, e.g. {xypos[outside][0]}")
