# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Processing many SDSS fields: serially, in local processes or on Dask; resumable."""

from .fields import *  # noqa: F401, F403
from .config import *  # noqa: F401, F403
from .tasks import *  # noqa: F401, F403
from .executors import *  # noqa: F401, F403
from .output import *  # noqa: F401, F403
from .limits import *  # noqa: F401, F403
from .run import *  # noqa: F401, F403
