# Licensed under a 3-clause BSD style license - see LICENSE.rst
import pytest

from galaxyml.exceptions import GalaxymlError, MissingDependencyError
from galaxyml.utils._optional import optional_import


def test_optional_import_returns_the_module():
    assert optional_import("json", "Tests", "test").dumps([1]) == "[1]"


def test_missing_optional_dependency_names_the_package_and_extra():
    with pytest.raises(MissingDependencyError,
                       match=r"ROC AUC need no_such_package: pip install no_such_package "
                             r"\(or 'galaxyml\[mergers\]'\)"):
        optional_import("no_such_package.metrics", "ROC AUC", "mergers")
    assert issubclass(MissingDependencyError, (GalaxymlError, ImportError))
