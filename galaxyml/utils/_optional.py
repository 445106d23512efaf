# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Optional dependencies, imported when a function needs them, with an error that says how."""

import importlib

from ..exceptions import MissingDependencyError

__all__ = ["optional_import"]

# Import names whose package on PyPI is named otherwise.
_PACKAGES = {"sklearn": "scikit-learn", "yaml": "pyyaml", "dask_jobqueue": "dask-jobqueue"}


def optional_import(module, purpose, extra):
    """Import ``module``, or raise `MissingDependencyError` naming the galaxyml extra.

    Parameters
    ----------
    module : str
        For example ``'statmorph'`` or ``'sklearn.metrics'``.
    purpose : str
        What needs it, for the message (``'CAS and Gini-M20'``).
    extra : str
        The ``pyproject.toml`` extra that installs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        package = _PACKAGES.get(top, top)
        raise MissingDependencyError(
            f"{purpose} need {package}: pip install {package} (or 'galaxyml[{extra}]')"
        ) from exc
