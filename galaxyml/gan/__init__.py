# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN: conditional GANs that recover galaxy images, trainable under tf.distribute."""

from .networks import *  # noqa: F401, F403
from .trainer import *  # noqa: F401, F403
from .training import *  # noqa: F401, F403
from .model import *  # noqa: F401, F403
