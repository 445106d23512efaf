# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The error contract of galaxyml.exceptions: every deliberate error is a GalaxymlError."""

import ast
import inspect

import pytest

import galaxyml.exceptions as exceptions
from galaxyml.conftest import REPO_ROOT
from galaxyml.exceptions import GalaxymlError, GalaxymlWarning

ERRORS = [cls for cls in vars(exceptions).values()
          if isinstance(cls, type) and issubclass(cls, GalaxymlError) and cls is not GalaxymlError]


def _raised_names(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = call.attr if isinstance(call, ast.Attribute) else getattr(call, "id", None)
            yield node.lineno, name


def test_every_raise_in_galaxyml_is_a_galaxyml_error():
    ours = {cls.__name__ for cls in ERRORS} | {"GalaxymlError"}
    # Abstract methods say so; re-raising a caught exception keeps its type.
    allowed = ours | {"NotImplementedError", "exc", None}
    offenders = [f"{path.relative_to(REPO_ROOT)}:{line}: raise {name}"
                 for path in sorted((REPO_ROOT / "galaxyml").rglob("*.py"))
                 if "tests" not in path.parts
                 for line, name in _raised_names(path) if name not in allowed]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_each_error_is_also_a_builtin(cls):
    builtins = [base for base in inspect.getmro(cls)
                if base.__module__ == "builtins" and base not in (Exception, BaseException, object)]
    assert builtins, f"{cls.__name__} derives from no built-in exception kind"
    assert cls.__doc__ and cls.__name__ in exceptions.__all__


def test_every_warning_is_an_astropy_user_warning():
    from astropy.utils.exceptions import AstropyUserWarning

    warnings = [cls for cls in vars(exceptions).values()
                if isinstance(cls, type) and issubclass(cls, Warning)
                and cls.__module__ == exceptions.__name__]
    assert warnings and all(issubclass(cls, (GalaxymlWarning, AstropyUserWarning))
                            for cls in warnings)


def test_the_errors_named_in_the_contract():
    import numpy as np
    from astropy import units as u
    from astropy.nddata import CCDData

    from galaxyml.degrade import degrade
    from galaxyml.io import read_image
    from galaxyml.variability import LogNormalERDF, PowerLawPSD, emmanoulopoulos

    image = CCDData(np.zeros((8, 8)), unit="nmgy")
    with pytest.raises(exceptions.InvalidParameterError):
        degrade(image, noise_factor=0.5)
    with pytest.raises(ValueError):  # and the built-in kind
        emmanoulopoulos(PowerLawPSD(), LogNormalERDF(), n_points=0, dt=1 * u.day)
    with pytest.raises(exceptions.MissingFileError, match="no such file"):
        read_image(REPO_ROOT / "no-such-file.fits")
    assert issubclass(exceptions.MissingFileError, FileNotFoundError)
