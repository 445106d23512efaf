# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The SDSS KL-PSF: the PSF of a frame at any position, from its psField file."""

import numpy as np
from astropy import units as u
from astropy.stats import sigma_clipped_stats

from ..exceptions import FITSReadError, UnknownBandError
from ..io.sdss import SDSS_PIXEL_SCALE, _psfield_row
from ..io._open import open_fits
from ..utils._sdss import band_index
from .models import SampledPSF

__all__ = ["SDSSPSFBasis", "sdss_psf", "psfield_fwhm"]

_COLUMNS = ("nrow_b", "ncol_b", "c", "RNROW", "RNCOL", "RROWS")
# Positions enter the coefficient polynomial in units of 1000 pixels.
_POSITION_SCALE = 0.001


class SDSSPSFBasis:
    """The Karhunen-Loeve PSF decomposition of one band of an SDSS field.

    PHOTO models the PSF's variation across a frame as a sum of
    eigen-images whose weights are polynomials in the position:
    a_k = sum_ij (0.001 row)^i (0.001 col)^j C_k[i, j] and
    PSF = sum_k a_k RROWS_k.

    Parameters
    ----------
    psfield : str or path
        A psField file (plain or compressed).
    band : str
        One of ``ugriz``.

    Raises
    ------
    UnknownBandError
        If ``band`` is not an SDSS band or the psField has no KL-PSF for it.
    """

    def __init__(self, psfield, band):
        index = band_index(band, "the psField")
        name = str(psfield)
        with open_fits(psfield) as hdul:
            if len(hdul) <= index + 1:
                raise UnknownBandError(f"the psField {name} has no KL-PSF extension for band "
                                       f"{band!r} (HDU {index + 1}; it has {len(hdul)} HDUs)")
            table = hdul[index + 1].data
            columns = [] if table is None else table.columns.names
            missing = [c for c in _COLUMNS if c not in columns]
            if missing:
                raise FITSReadError(f"HDU {index + 1} of the psField {name} is not a KL-PSF "
                                    f"table: it lacks the columns {missing}")
            nrow, ncol = int(table["RNROW"][0]), int(table["RNCOL"][0])
            self.eigen_images = np.array([np.asarray(r, float).reshape(nrow, ncol)
                                          for r in table["RROWS"]])
            self.coefficients = [np.asarray(c, float)[:nr, :nc] for c, nr, nc
                                 in zip(table["c"], table["nrow_b"], table["ncol_b"])]
        self.band = band
        self.filename = name

    def __repr__(self):
        return (f"<SDSSPSFBasis band={self.band} components={len(self.eigen_images)} "
                f"shape={self.eigen_images.shape[1:]}>")

    def weights(self, row, col):
        """The eigen-image weights a_k at (``row``, ``col``), 0-based frame pixels."""
        weights = []
        for c in self.coefficients:
            row_powers = (_POSITION_SCALE * row) ** np.arange(c.shape[0])
            col_powers = (_POSITION_SCALE * col) ** np.arange(c.shape[1])
            weights.append(row_powers @ c @ col_powers)
        return np.array(weights)

    def at(self, row, col):
        """The PSF at (``row``, ``col``) as a background-free, unit-sum `SampledPSF`.

        Parameters
        ----------
        row, col : float
            0-based pixel position on the frame: ``row`` is y, ``col`` is x.
        """
        image = np.tensordot(self.weights(row, col), self.eigen_images, axes=1)
        # The eigen-images may leave a constant pedestal; the frame's sky is already
        # subtracted, so take the PSF's outer ring as its zero level.
        ring = np.r_[image[0], image[-1], image[1:-1, 0], image[1:-1, -1]]
        image = image - sigma_clipped_stats(ring)[1]
        return SampledPSF(image, pixel_scale=SDSS_PIXEL_SCALE,
                          meta={"source": "SDSS KL-PSF", "psfield": self.filename,
                                "band": self.band, "row": float(row), "col": float(col)})


def sdss_psf(psfield, band, row, col):
    """The SDSS PSF of one band at a position on the frame, from a psField file.

    Parameters
    ----------
    psfield : str or path
        The field's psField file.
    band : str
        One of ``ugriz``.
    row, col : float
        0-based pixel position on the frame (``row`` is y, ``col`` is x).

    Returns
    -------
    psf : `~galaxyml.psf.SampledPSF`
        51 x 51 pixels, unit sum, background-free.

    Notes
    -----
    To reconstruct the PSF at many positions, read the decomposition once
    with `SDSSPSFBasis` and call its ``at`` method.
    """
    return SDSSPSFBasis(psfield, band).at(row, col)


def psfield_fwhm(psfield, band):
    """The PSF's FWHM that SDSS measured for one band of a field (``psf_width`` of its psField).

    Parameters
    ----------
    psfield : str or path
        The field's psField file.
    band : str
        One of ``ugriz``.

    Returns
    -------
    fwhm : `~astropy.units.Quantity`
        In arcsec.

    Raises
    ------
    NoImageHDUError
        The file has no HDU 6 with a ``psf_width`` column (not a psField).
    """
    index = band_index(band, "the psField")
    width = float(_psfield_row(psfield, ("psf_width",))["psf_width"][index])
    if not width > 0:
        raise FITSReadError(f"{psfield}: the psf_width of band {band} is {width}, not a FWHM")
    return width * u.arcsec
