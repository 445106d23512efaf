# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The Gaussian FWHM fit that the PSF models and the seeing measurements share."""

import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from photutils.psf import fit_fwhm

__all__ = ["fit_fwhm_pixels"]

_FIRST_FIT_SHAPE = 7


def fit_fwhm_pixels(data, xypos=None, fit_shape=None, mask=None):
    """FWHM in pixels of circular Gaussians fitted at ``xypos`` (or to the one source).

    Without ``fit_shape`` the box is about three times the FWHM, found by a
    first fit in a 7 x 7 box, so that the wings of a non-Gaussian PSF weigh
    the same whatever the seeing.  Failed fits are NaN.
    """
    if fit_shape is None:
        first = _fit(data, xypos, _FIRST_FIT_SHAPE, mask)
        typical = np.nanmedian(first) if np.any(np.isfinite(first)) else _FIRST_FIT_SHAPE / 2
        fit_shape = max(_FIRST_FIT_SHAPE, 2 * int(np.ceil(1.5 * typical)) + 1)
        if xypos is None:
            fit_shape = min(fit_shape, 2 * (min(data.shape) // 2) - 1)
    return _fit(data, xypos, fit_shape, mask)


def _fit(data, xypos, fit_shape, mask):
    if xypos is not None and len(xypos) == 0:
        return np.zeros(0)  # photutils 3.0 raises IndexError on no positions
    try:
        fwhm = _fit_all(data, xypos, fit_shape, mask)
    except Exception:  # noqa: BLE001  (a fitter's own bug costs one measurement, not all)
        fwhm = np.array([_fit_one(data, position, fit_shape, mask) for position in xypos]) \
            if xypos is not None and len(xypos) > 1 else np.array([np.nan])
    # A fit that ran away (to a width comparable to the box or beyond) is not a measurement.
    fwhm[~(fwhm < 2 * fit_shape)] = np.nan
    return fwhm


def _fit_all(data, xypos, fit_shape, mask):
    with warnings.catch_warnings():
        # A source near an edge or a poor fit is reported as NaN below, not as a warning.
        warnings.simplefilter("ignore", AstropyUserWarning)
        return np.abs(np.asarray(fit_fwhm(data, xypos=xypos, fit_shape=fit_shape, mask=mask),
                                 dtype=float))


def _fit_one(data, position, fit_shape, mask):
    """One source's FWHM, NaN where the fitter fails on it."""
    try:
        return float(_fit_all(data, np.atleast_2d(position), fit_shape, mask)[0])
    except Exception:  # noqa: BLE001
        return np.nan
