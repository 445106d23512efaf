# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Colour images for the merger classifier: files, uint8 arrays, or cutouts in nanomaggies."""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.visualization import make_lupton_rgb

from ..datasets.galaxyzoo import read_rgb_image
from ..exceptions import (BandMismatchError, ImageTooSmallError, InvalidInputTypeError,
                          InvalidShapeError)
from ..io.cutout import MultiBandCutout
from ..utils._images import inpaint

__all__ = ["RGB_BANDS", "lupton_rgb", "as_rgb"]

#: The bands shown as red, green and blue, as in SDSS's colour images.
RGB_BANDS = ("i", "r", "g")


def lupton_rgb(data, stretch=0.5, q=8.0):
    """An SDSS-like colour image of (g, r, i) planes in nanomaggies (Lupton et al. 2004).

    Parameters
    ----------
    data : array (3, ny, nx)
        g, r and i in nanomaggies.
    stretch, q : float
        The asinh stretch's linear range (nanomaggies) and softening, as
        `astropy.visualization.make_lupton_rgb` takes them.

    Returns
    -------
    rgb : (ny, nx, 3) uint8
    """
    g, r, i = (np.nan_to_num(np.asarray(plane, float)) for plane in data)
    return make_lupton_rgb(i, r, g, minimum=0.0, stretch=stretch, Q=q)


def as_rgb(image, bands=("g", "r", "i"), min_size=16):
    """One image as a (ny, nx, 3) float32 array in [0, 1], and whether pixels were in-painted.

    Parameters
    ----------
    image : path, uint8 array, float array, or `~galaxyml.io.MultiBandCutout`
        A JPEG/PNG file, a (ny, nx, 3) uint8 colour image, a (3, ny, nx)
        array of g, r, i in nanomaggies, or a cutout holding ``bands``.
    bands : sequence of str
        The model's bands (g, r, i).
    min_size : int
        Smallest side accepted.

    Returns
    -------
    rgb : `~numpy.ndarray`
    inpainted : bool
    """
    inpainted = False
    if isinstance(image, (str, Path)):
        rgb = read_rgb_image(image)
    elif isinstance(image, MultiBandCutout):
        missing = [band for band in bands if band not in image.bands]
        if missing:
            raise BandMismatchError(f"the cutout has bands {image.bands}; the model needs "
                                    f"{tuple(bands)}")
        data = np.stack([image[band].data for band in bands]) * image.unit.to(u.nanomaggy)
        rgb, inpainted = _nanomaggies_rgb(data, np.stack([image[b].mask for b in bands]))
    elif isinstance(image, np.ndarray):
        if image.dtype == np.uint8:
            if image.ndim != 3 or image.shape[-1] < 3:
                raise InvalidShapeError(f"a uint8 colour image must be (ny, nx, 3), not "
                                        f"{image.shape}")
            rgb = image[..., :3]
        else:
            if image.ndim != 3 or image.shape[0] != len(bands):
                raise BandMismatchError(f"an array in nanomaggies must be (n_bands="
                                        f"{len(bands)}, ny, nx) for bands {tuple(bands)}, "
                                        f"not {image.shape}")
            rgb, inpainted = _nanomaggies_rgb(np.asarray(image, float),
                                              ~np.isfinite(image))
    else:
        raise InvalidInputTypeError(f"cannot classify a {type(image).__name__}: pass an image "
                                    "file, a uint8 colour image, an array or cutout in "
                                    "nanomaggies")
    if min(rgb.shape[:2]) < min_size:
        raise ImageTooSmallError(f"the image is {rgb.shape[:2]} pixels; the model needs at "
                                 f"least {min_size} on a side")
    return np.asarray(rgb, np.float32) / 255.0, inpainted


def _nanomaggies_rgb(data, mask):
    mask = np.asarray(mask, bool) | ~np.isfinite(data)
    if mask.any():
        data = inpaint(data, mask)
    return lupton_rgb(data), bool(mask.any())
