# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
galaxyml: machine-learning methods for astronomical images.

The package is organised in subpackages, one per topic; import what you
need from them, for example ``from galaxyml.io import read_sdss_frame``.
"""

try:
    from ._version import version as __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "unknown"

__all__ = ["__version__"]
