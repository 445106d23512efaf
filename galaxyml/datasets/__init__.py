# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Where sample data come from: SDSS files, simulated fields, training sets."""

from .sdss import *  # noqa: F401, F403
from .simulate import *  # noqa: F401, F403
from ..sources import *  # noqa: F401, F403
from .selection import *  # noqa: F401, F403
from .samples import *  # noqa: F401, F403
from .pairs import *  # noqa: F401, F403
from .galaxyzoo import *  # noqa: F401, F403
from .colour import *  # noqa: F401, F403
from .mergers import *  # noqa: F401, F403
