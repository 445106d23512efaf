# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""FITS plumbing shared by the readers and writers: WCS, units, bad pixels."""

import warnings

import numpy as np
from astropy import units as u
from astropy.wcs import WCS, FITSFixedWarning

from ..exceptions import GalaxymlWarning, MissingWCSError, NonFinitePixelsWarning

__all__ = ["celestial_wcs", "parse_unit", "unit_to_bunit", "mask_non_finite"]

# Spellings of BUNIT found in survey files that astropy does not parse itself.
_UNIT_ALIASES = {"nanomaggies": u.nanomaggy, "nanomaggy": u.nanomaggy, "nmgy": u.nanomaggy}


def celestial_wcs(header, path="image"):
    """The two-dimensional celestial WCS of a header, or `MissingWCSError`."""
    with warnings.catch_warnings():
        # SDSS and many other headers use RADECSYS or lack MJD-OBS; astropy fixes both.
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception as exc:  # noqa: BLE001  (wcslib's errors on absurd keywords)
            message = " ".join(str(exc).split())[:200]
            raise MissingWCSError(f"{path}: the image's WCS is invalid ({type(exc).__name__}: "
                                  f"{message})") from None
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
