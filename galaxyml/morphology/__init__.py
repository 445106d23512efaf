# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Galaxy morphology: point source + host decompositions and the parametric fit."""

from ._config import *  # noqa: F401, F403
from .pointsource import *  # noqa: F401, F403
from .decomposition import *  # noqa: F401, F403
from .parametric import *  # noqa: F401, F403
from .evaluation import *  # noqa: F401, F403
from .nonparametric import *  # noqa: F401, F403
