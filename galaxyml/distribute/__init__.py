# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Gradient aggregation on tf.distribute: float all-reduce and signSGD with majority vote."""

from .signs import *  # noqa: F401, F403
from .traffic import *  # noqa: F401, F403
from .optimizers import *  # noqa: F401, F403
from .byzantine import *  # noqa: F401, F403
from .aggregators import *  # noqa: F401, F403
from .model import *  # noqa: F401, F403
from .loop import *  # noqa: F401, F403
from .resumable import *  # noqa: F401, F403
from .cluster import *  # noqa: F401, F403
from .strategies import *  # noqa: F401, F403
from .plotting import *  # noqa: F401, F403
