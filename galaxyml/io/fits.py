# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Reading two-dimensional FITS images with a celestial WCS."""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs.utils import proj_plane_pixel_scales

from ..exceptions import MissingWCSError, NoImageHDUError
from ..utils._fits import celestial_wcs, mask_non_finite, parse_unit
from ._limits import Conf, conf
from ._open import open_fits

__all__ = ["conf", "Conf", "read_image", "wcs_pixel_scale"]


_IMAGE_HDU_TYPES = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)


def _find_image_hdu(hdul, hdu, path):
    """Index of the requested HDU, or of the first two-dimensional image HDU."""
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if isinstance(candidate, _IMAGE_HDU_TYPES) and candidate.header.get("NAXIS") == 2:
                return index
        raise NoImageHDUError(f"{path}: no HDU holds a two-dimensional image")
    try:
        index = hdul.index_of(hdu)
    except (KeyError, IndexError) as exc:
        raise NoImageHDUError(f"{path}: there is no HDU {hdu!r}") from exc
    candidate = hdul[index]
    if not isinstance(candidate, _IMAGE_HDU_TYPES) or candidate.header.get("NAXIS") != 2:
        raise NoImageHDUError(f"{path}: HDU {hdu!r} is not a two-dimensional image")
    return index


def _plane(hdul, hdu, shape, path, what):
    data = hdul[_find_image_hdu(hdul, hdu, path)].data
    if data.shape != shape:
        raise NoImageHDUError(f"{path}: the {what} HDU {hdu!r} has shape {data.shape}, "
                              f"the image {shape}")
    return data


def read_image(path, hdu=None, unit=None, uncertainty_hdu=None, mask_hdu=None):
    """Read a two-dimensional FITS image with a celestial WCS.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        FITS file, uncompressed, gzip or bzip2 compressed, or with
        tile-compressed HDUs.
    hdu : int or str, optional
        The image HDU (index or EXTNAME).  By default the first HDU that
        holds a two-dimensional image.
    unit : `~astropy.units.Unit` or str, optional
        Unit of the data.  By default taken from the BUNIT keyword, and
        dimensionless where there is none.
    uncertainty_hdu, mask_hdu : int or str, optional
        HDUs holding the one-sigma uncertainty (same unit as the data) and
        a mask (non-zero for bad pixels) of the same shape.

    Returns
    -------
    image : `~astropy.nddata.CCDData`
        The image as float (integer images become float32), with its WCS,
        header (as ``meta``), unit, uncertainty and mask.  NaN and infinite
        pixels are masked.

    Raises
    ------
    FITSReadError
        The file is truncated, corrupt, or not FITS.
    NoImageHDUError
        No two-dimensional image HDU was found, or ``hdu`` is not one.
    MissingWCSError
        The image has no celestial WCS.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        image_hdu = hdul[_find_image_hdu(hdul, hdu, path)]
        header = image_hdu.header.copy()
        data = image_hdu.data
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        uncertainty = mask = None
        if uncertainty_hdu is not None:
            uncertainty = StdDevUncertainty(
                _plane(hdul, uncertainty_hdu, data.shape, path, "uncertainty").astype(data.dtype))
        if mask_hdu is not None:
            mask = _plane(hdul, mask_hdu, data.shape, path, "mask") != 0
    wcs = celestial_wcs(header, path)
    if unit is None:
        unit = parse_unit(header.get("BUNIT"), path) or u.dimensionless_unscaled
    mask = mask_non_finite(data, mask, path)
    header["FILENAME"] = (str(path), "file this image was read from")
    return CCDData(data, unit=unit, wcs=wcs, meta=header, uncertainty=uncertainty, mask=mask)


def wcs_pixel_scale(wcs, default=None):
    """Mean angular size of a pixel of a celestial WCS, in ``arcsec / pix``.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS` or None
        The WCS.
    default : `~astropy.units.Quantity`, optional
        Returned when ``wcs`` is None or not celestial; otherwise that raises
        `~galaxyml.exceptions.MissingWCSError`.
    """
    if wcs is None or not wcs.has_celestial:
        if default is not None:
            return default
        raise MissingWCSError("the image has no celestial WCS, so its pixel scale is unknown")
    scale = np.mean(proj_plane_pixel_scales(wcs.celestial)) * u.deg
    return scale.to(u.arcsec) / u.pix
