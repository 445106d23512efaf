# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Merger detection (Ackermann et al. 2018): a CNN fine-tuned from a pretrained backbone."""

from .backbones import *  # noqa: F401, F403
from .images import *  # noqa: F401, F403
from .classifier import *  # noqa: F401, F403
from .natural import *  # noqa: F401, F403
from .evaluation import *  # noqa: F401, F403
