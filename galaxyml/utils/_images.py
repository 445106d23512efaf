# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Image plumbing shared by the networks and the decompositions."""

import numpy as np
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
    for band in range(filled.shape[0]):
        for _ in range(10):  # large holes fill from their edges inwards
            if not np.isnan(filled[band]).any():
                break
            filled[band] = interpolate_replace_nans(filled[band], kernel)
        filled[band] = np.where(np.isnan(filled[band]), 0.0, filled[band])
    return filled
