# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shared pytest configuration and fixtures."""

import os
from pathlib import Path

import pytest

try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES, TESTED_VERSIONS
except ImportError:  # the header plug-in is optional
    PYTEST_HEADER_MODULES, TESTED_VERSIONS = {}, {}

import matplotlib

matplotlib.use("Agg")
# Quiet TensorFlow's C++ start-up logging when the test header imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from galaxyml import __version__  # noqa: E402

# The versions of galaxyml's dependencies, printed at the top of every run.
PYTEST_HEADER_MODULES.clear()
PYTEST_HEADER_MODULES.update({
    "Numpy": "numpy",
    "Scipy": "scipy",
    "Astropy": "astropy",
    "photutils": "photutils",
    "reproject": "reproject",
    "scikit-image": "skimage",
    "Matplotlib": "matplotlib",
    "TensorFlow": "tensorflow",
    "Keras": "keras",
    "numba": "numba",
})
TESTED_VERSIONS["galaxyml"] = __version__

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sdss_field_dir():
    """Directory of the real SDSS field 2583-2-136 (`galaxyml.datasets.example_field`), or skip."""
    from galaxyml.datasets import example_field_dir

    path = example_field_dir()
    if path is None:
        pytest.skip("the real SDSS field 2583-2-136 is not available (looked in "
                    "../shared/data/sdss and $GALAXYML_SDSS_DIR)")
    return path


@pytest.fixture(scope="session")
def sdss_frames(sdss_field_dir):
    """The g, r, i frames of the real field, read once per session."""
    from galaxyml.io import read_sdss_frame

    return {band: read_sdss_frame(sdss_field_dir / f"frame-{band}-002583-2-0136.fits.bz2",
                                  psfield=sdss_field_dir / "psField-002583-2-0136.fits",
                                  fpm=sdss_field_dir / f"fpM-002583-{band}2-0136.fits")
            for band in "gri"}


@pytest.fixture(scope="session")
def simulated_field(tmp_path_factory):
    """A small simulated SDSS field in g, r, i, written once per session."""
    from galaxyml.datasets import simulate_sdss_field

    return simulate_sdss_field(tmp_path_factory.mktemp("simfield"), bands="gri",
                               shape=(256, 320), n_galaxies=12, n_stars=8, seed=42)


@pytest.fixture(scope="session")
def training_field(tmp_path_factory):
    """A simulated g, r, i field with 25 galaxies, its frames read and galaxies selected."""
    from galaxyml.datasets import galaxy_catalog, simulate_sdss_field

    field = simulate_sdss_field(tmp_path_factory.mktemp("trainfield"), bands="gri",
                                shape=(320, 384), n_galaxies=25, n_stars=12, seed=3)
    images = field.files.read("gri")
    catalog = galaxy_catalog(images, size=48, mag_range=(14, 20.5))
    return field, images, catalog


#: Logical CPU devices of the test session (replicas of the tf.distribute tests).
LOGICAL_CPUS = 8


def pytest_configure(config):
    """Split the CPU into 8 logical devices, so tf.distribute tests have replicas to use."""
    from galaxyml.distribute import split_cpu

    split_cpu(LOGICAL_CPUS)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test opened, so that pyplot's open-figure warning never fires."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
