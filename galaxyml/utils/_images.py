# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Image plumbing shared by the networks and the decompositions."""

import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans
from astropy.coordinates import SkyCoord

from ..exceptions import MissingWCSError, PositionOffImageError

__all__ = ["inpaint", "pixel_position"]


def pixel_position(position, shape, wcs=None):
    """(x, y) in pixels of a pixel or sky position, checked to lie on an image of ``shape``.

    Raises
    ------
    MissingWCSError
        A sky position on an image without a WCS.
    PositionOffImageError
        A position off the image (or not finite).
    """
    if isinstance(position, SkyCoord):
        if wcs is None:
            raise MissingWCSError("a sky position needs an image with a WCS")
        position = wcs.world_to_pixel(position)
    x, y = (float(v) for v in position)
    ny, nx = shape
    if not (np.isfinite(x) and np.isfinite(y) and -0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
        raise PositionOffImageError(f"the point-source position ({x:.2f}, {y:.2f}) lies "
                                    f"outside the image of shape {tuple(shape)}")
    return x, y


def inpaint(data, mask):
    """Replace masked pixels by a Gaussian-weighted mean of their neighbours, band by band."""
    if not mask.any():
        return data
    filled = np.where(mask, np.nan, data)
    kernel = Gaussian2DKernel(2.0)
    margin = kernel.shape[0] // 2 + 1
    for band in range(filled.shape[0]):
        if not mask[band].any():
            continue
        # Only the masked pixels' neighbourhood takes part: the same values, far faster
        # for a few bad pixels in a large image.
        rows, cols = np.flatnonzero(mask[band].any(axis=1)), np.flatnonzero(mask[band].any(axis=0))
        box = (slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
               slice(max(cols[0] - margin, 0), cols[-1] + margin + 1))
        part = filled[band][box]
        for _ in range(10):  # large holes fill from their edges inwards
            if not np.isnan(part).any():
                break
            with warnings.catch_warnings():  # what is left is filled on the next pass
                warnings.simplefilter("ignore", AstropyUserWarning)
                part = interpolate_replace_nans(part, kernel)
        filled[band][box] = np.where(np.isnan(part), 0.0, part)
    return filled
