# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Low-precision arrays: unbiased stochastic quantization and dense bit packing."""

from .packing import *  # noqa: F401, F403
from .quantize import *  # noqa: F401, F403
