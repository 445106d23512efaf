# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""FITS plumbing shared by the readers and writers: opening, WCS, units, bad pixels."""

import bz2
import contextlib
import gzip
import io
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.wcs import WCS, FITSFixedWarning

from ..exceptions import (FITSReadError, GalaxymlError, GalaxymlWarning, MissingFileError,
                          MissingWCSError, NonFinitePixelsWarning)

__all__ = ["open_fits", "celestial_wcs", "parse_unit", "unit_to_bunit", "mask_non_finite"]

# Spellings of BUNIT found in survey files that astropy does not parse itself.
_UNIT_ALIASES = {"nanomaggies": u.nanomaggy, "nanomaggy": u.nanomaggy, "nmgy": u.nanomaggy}


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
        raise MissingFileError(f"{path}: no such file")
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
