# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Point-spread functions: analytic models, the SDSS KL-PSF, PSFs built from stars."""

from .models import *  # noqa: F401, F403
from .sdss import *  # noqa: F401, F403
from .measure import *  # noqa: F401, F403
from .stars import *  # noqa: F401, F403
