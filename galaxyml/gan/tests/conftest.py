# Licensed under a 3-clause BSD style license - see LICENSE.rst
import pytest

from galaxyml.distribute.tests.helpers import mirrored


@pytest.fixture(scope="session")
def strategy():
    """One MirroredStrategy for the GAN tests: TF keys collectives per strategy object, so
    several that run collectives in one process clash."""
    return mirrored(2, collective=True)
