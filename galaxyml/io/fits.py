# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Reading two-dimensional FITS images with a celestial WCS."""

import bz2
import contextlib
import gzip
import io
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales
from astropy.io.fits.verify import VerifyWarning
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS, FITSFixedWarning

from ..exceptions import (FITSReadError, GalaxymlError, GalaxymlWarning, MissingWCSError,
                          NoImageHDUError, NonFinitePixelsWarning)

__all__ = ["read_image", "wcs_pixel_scale"]

# Spellings of BUNIT found in survey files that astropy does not parse itself.
_UNIT_ALIASES = {"nanomaggies": u.nanomaggy, "nanomaggy": u.nanomaggy, "nmgy": u.nanomaggy}

_IMAGE_HDU_TYPES = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)


@contextlib.contextmanager
def open_fits(path):
    """Open a FITS file read-only, turning every reading failure into `FITSReadError`.

    Whole-file gzip and bzip2 compression is undone in memory in one pass
    (astropy would decompress again for every backward seek between HDUs);
    tile-compressed HDUs are handled by `astropy.io.fits`.  Data are read into
    memory (no memory map), so that a truncated file fails here, with the
    file named, rather than later.  Errors raised by galaxyml itself inside
    the block pass through unchanged.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        # The stream is ours to close: astropy leaves it open when opening fails.
        with _stream(path) as stream, warnings.catch_warnings():
            # astropy only warns about a truncated file; losing data must be an error.
            warnings.filterwarnings("error", message=".*truncated.*", category=VerifyWarning)
            warnings.filterwarnings("error", message=".*[Tt]runcated.*", category=UserWarning)
            with fits.open(stream, memmap=False, lazy_load_hdus=False) as hdul:
                yield hdul
    except GalaxymlError:
        raise
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError,
            VerifyWarning, UserWarning) as exc:
        raise FITSReadError(f"{path}: cannot be read as FITS, the file is truncated or "
                            f"corrupt ({type(exc).__name__}: {exc})") from exc


def _stream(path):
    """A binary stream of the FITS content: the file, or its decompressed bytes."""
    with open(path, "rb") as stream:
        magic = stream.read(3)
    if magic == b"BZh":
        return io.BytesIO(bz2.decompress(path.read_bytes()))
    if magic[:2] == b"\x1f\x8b":
        return io.BytesIO(gzip.decompress(path.read_bytes()))
    return open(path, "rb")


def celestial_wcs(header, path="image"):
    """The two-dimensional celestial WCS of a header, or `MissingWCSError`."""
    with warnings.catch_warnings():
        # SDSS and many other headers use RADECSYS or lack MJD-OBS; astropy fixes both.
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    if not wcs.has_celestial or wcs.celestial.naxis != 2:
        raise MissingWCSError(f"{path}: the image has no celestial WCS "
                              "(CTYPE1/CTYPE2 with a sky projection are missing)")
    return wcs.celestial


def parse_unit(bunit, path="image"):
    """Parse a BUNIT string; unknown units give a warning and dimensionless."""
    if bunit is None or not str(bunit).strip():
        return None
    text = str(bunit).strip()
    if text.lower() in _UNIT_ALIASES:
        return _UNIT_ALIASES[text.lower()]
    try:
        return u.Unit(text)
    except ValueError:
        warnings.warn(f"{path}: BUNIT '{text}' is not a unit astropy understands; "
                      "the image is treated as dimensionless", GalaxymlWarning)
        return u.dimensionless_unscaled


def unit_to_bunit(unit):
    """A BUNIT string for ``unit`` that `parse_unit` reads back.

    Nanomaggies are written ``'nanomaggy'`` as in SDSS files; units outside
    the FITS standard fall back to astropy's generic format.
    """
    unit = u.Unit(unit)
    if unit == u.nanomaggy:
        return "nanomaggy"
    try:
        return unit.to_string("fits")
    except ValueError:
        return unit.to_string()


def mask_non_finite(data, mask=None, path="image"):
    """Mask NaN and infinite pixels, warning with their number.

    Returns the boolean mask (True for bad pixels) combined with ``mask``.
    """
    bad = ~np.isfinite(data)
    nbad = int(bad.sum())
    if nbad:
        warnings.warn(f"{path}: {nbad} NaN or infinite pixels are masked",
                      NonFinitePixelsWarning)
    return bad if mask is None else (np.asarray(mask, dtype=bool) | bad)


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
