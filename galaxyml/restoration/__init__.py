# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Classical deconvolution baselines and the metrics that compare restorations."""

from .baselines import *  # noqa: F401, F403
from .metrics import *  # noqa: F401, F403
from .evaluation import *  # noqa: F401, F403
