# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Helpers shared by galaxyml's subpackages.

The modules here are private (``_fits``, ``_sdss``, ``_kernels``): they are
galaxyml's own plumbing, imported across subpackages, and not part of the
public API, as in photutils' ``utils/_*.py``.
"""

__all__ = []
