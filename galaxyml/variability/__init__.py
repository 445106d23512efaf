# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""AGN variability: Eddington-ratio distributions, PSDs, light curves, structure functions."""

from .erdf import *  # noqa: F401, F403
from .psd import *  # noqa: F401, F403
from .simulate import *  # noqa: F401, F403
from .analysis import *  # noqa: F401, F403
from .plotting import *  # noqa: F401, F403
from .fitting import *  # noqa: F401, F403
