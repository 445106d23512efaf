# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Reading FITS images and SDSS frames, multi-band cutouts, and writing."""

from .fits import *  # noqa: F401, F403
from .sdss import *  # noqa: F401, F403
from .cutout import *  # noqa: F401, F403
from .writing import *  # noqa: F401, F403
