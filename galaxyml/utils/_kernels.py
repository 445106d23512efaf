# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Checks shared by everything that builds or applies convolution kernels."""

import numpy as np

from ..exceptions import EvenKernelSizeError

__all__ = ["check_odd"]


def check_odd(shape, name="kernel"):
    """Raise `EvenKernelSizeError` unless every side in ``shape`` is odd and positive."""
    for side in np.atleast_1d(shape):
        if int(side) != side or side < 1 or int(side) % 2 == 0:
            raise EvenKernelSizeError(f"the {name} size must be a positive odd number of "
                                      "pixels (so that it has a central pixel), not "
                                      f"{tuple(np.atleast_1d(shape))}")
