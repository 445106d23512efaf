# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Degrading images (worse seeing, more noise) and injecting AGN point sources."""

from .core import *  # noqa: F401, F403
from .agn import *  # noqa: F401, F403
