# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Radio interferometric imaging by compressive sensing, in float and on few-bit data."""

from .array import *  # noqa: F401, F403
from .measurement import *  # noqa: F401, F403
from .sky import *  # noqa: F401, F403
from .solvers import *  # noqa: F401, F403
from .clean import *  # noqa: F401, F403
from .evaluation import *  # noqa: F401, F403
from .visibilities import *  # noqa: F401, F403
from .imaging import *  # noqa: F401, F403
