# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Image-to-image GANs (GalaxyGAN, PSFGAN) on one model layer, trainable under tf.distribute."""

from .networks import *  # noqa: F401, F403
from .conditional_gan import *  # noqa: F401, F403
from .base import *  # noqa: F401, F403
from .galaxygan import *  # noqa: F401, F403
from .psfgan import *  # noqa: F401, F403
