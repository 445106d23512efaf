# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""SDSS facts shared by the readers, the PSF code and the simulator: bands, noise, sky."""

import numpy as np
from scipy.ndimage import map_coordinates

from ..exceptions import NoImageHDUError, UnknownBandError

__all__ = ["SDSS_BANDS", "band_index", "DEFAULT_GAIN", "DEFAULT_DARK_VARIANCE", "FRAME_OFFSET",
           "sky_counts"]

#: SDSS filters, in the order used by every multi-band SDSS file.
SDSS_BANDS = "ugriz"

# Typical gain (electrons per count) and dark variance (counts^2) per camera
# column (rows 1 to 6) and band (u, g, r, i, z), after the SDSS frame data
# model.  A few CCDs changed during the survey (u and i of camcol 2, i and z
# of camcol 4); camcol 2 holds the values this project verified against the
# psField of run 2583.  Pass a psField file for the exact values of a field.
DEFAULT_GAIN = {
    1: (1.62, 3.32, 4.71, 5.165, 4.745),
    2: (1.825, 3.855, 4.6, 5.195, 5.155),
    3: (1.59, 3.845, 4.72, 4.86, 4.885),
    4: (1.6, 3.995, 4.76, 4.885, 4.775),
    5: (1.47, 4.05, 4.725, 4.64, 3.48),
    6: (2.17, 4.035, 4.895, 4.76, 4.69),
}
DEFAULT_DARK_VARIANCE = {
    1: (9.61, 15.6025, 1.8225, 7.84, 0.81),
    2: (12.6025, 1.44, 1.0, 6.25, 1.0),
    3: (8.7025, 1.3225, 1.3225, 4.6225, 1.0),
    4: (12.6025, 1.96, 1.3225, 6.25, 9.61),
    5: (9.3025, 1.1025, 0.81, 7.84, 1.8225),
    6: (7.0225, 1.8225, 0.9025, 5.0625, 1.21),
}

# The camera's filter rows cross the sky in the order r, i, u, z, g, two frames
# apart, so a frame's FRAME keyword is the field number plus this offset.
FRAME_OFFSET = {"r": 0, "i": 2, "u": 4, "z": 6, "g": 8}


def band_index(band, where="SDSS"):
    """Position of ``band`` in `SDSS_BANDS`, or `UnknownBandError`."""
    band = str(band).strip()
    if len(band) != 1 or band not in SDSS_BANDS:
        raise UnknownBandError(f"{where}: unknown SDSS band {band!r}; "
                               f"the bands are {', '.join(SDSS_BANDS)}")
    return SDSS_BANDS.index(band)


def sky_counts(sky_table, shape):
    """Full-resolution sky in counts from the binned sky of frame HDU 2."""
    allsky = np.asarray(sky_table["ALLSKY"][0], dtype=np.float32)
    xinterp = np.asarray(sky_table["XINTERP"][0], dtype=np.float32)
    yinterp = np.asarray(sky_table["YINTERP"][0], dtype=np.float32)
    if allsky.ndim != 2 or (yinterp.size, xinterp.size) != shape:
        raise NoImageHDUError("the sky table does not match the image shape")
    # Interpolate separably: bilinear on the binned grid along rows, then columns.
    rows = map_coordinates(allsky, np.meshgrid(yinterp, np.arange(allsky.shape[1]),
                                               indexing="ij"), order=1, mode="nearest")
    return map_coordinates(rows, np.meshgrid(np.arange(shape[0]), xinterp, indexing="ij"),
                           order=1, mode="nearest")
