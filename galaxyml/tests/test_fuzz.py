# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Fuzzing the readers: broken and hostile inputs end in a GalaxymlError, in bounded time and
memory.

Hypothesis draws damaged versions of valid inputs of each kind (FITS images,
SDSS frames, field tables, batch configurations, colour images; see
`galaxyml.tests.hostile`); files crafted to cost time or memory are read
too.  ``benchmarks/fuzz_readers.py`` runs many more inputs in subprocesses.
"""

import time
import tracemalloc
import warnings

import pytest

from galaxyml.exceptions import GalaxymlError
from galaxyml.tests import hostile

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies  # noqa: E402

# Per input: what a valid seed costs many times over, far below what the bombs would.
SECONDS = 10.0
PEAK_BYTES = 300 << 20


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return hostile.seed_files(tmp_path_factory.mktemp("seeds"))


def read_within_bounds(kind, path, seeds):
    """Read ``path``; the outcome ('ok' or the GalaxymlError's name), checked to be bounded."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what a reader warns of is not the question here
            hostile.read(kind, path, seeds)
        outcome = "ok"
    except GalaxymlError as exc:
        outcome = type(exc).__name__
        assert str(path.name) in str(exc) or kind in ("config",), str(exc)
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert seconds < SECONDS, f"{path.name}: {seconds:.1f} s"
    assert peak < PEAK_BYTES, f"{path.name}: {peak / 2 ** 20:.0f} MiB"
    return outcome


@pytest.mark.parametrize("kind", hostile.KINDS)
def test_damaged_inputs(kind, seeds, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"damaged-{kind}")
    outcomes = {}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(strategies.integers(min_value=0, max_value=2 ** 63))
    def read_damaged(number):
        rng = hostile.new_rng(number)
        path = hostile.random_input(kind, seeds, rng, directory, number)
        outcome = read_within_bounds(kind, path, seeds)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    read_damaged()
    assert sum(outcomes.values()) >= 60
    assert set(outcomes) - {"ok"}, outcomes  # the damage is seen, not only shrugged off


def test_crafted_inputs(seeds, tmp_path):
    crafted = hostile.crafted_files(tmp_path)
    outcomes = {path.name: read_within_bounds(kind, path, seeds)
                for kind, paths in crafted.items() for path in paths}
    assert outcomes == {
        "bomb.fits.bz2": "FITSReadError", "bomb.fits.gz": "FITSReadError",
        "absurd-NAXIS2.fits": "FITSReadError", "absurd-NAXIS.fits": "FITSReadError",
        "absurd-TFIELDS.fits": "FITSReadError", "absurd-NAXIS1.fits": "FITSReadError",
        "bomb.yaml": "InvalidParameterError", "huge.png": "InvalidShapeError",
        "absurd-chunk.png": "ok",
        "cmyk.jpg": "ok", "grey16.png": "ok", "fields.png": "InvalidParameterError",
        "huge-numbers.csv": "InvalidParameterError"}


def test_images_in_other_pixel_formats_read_as_seen(tmp_path):
    import numpy as np
    from PIL import Image

    from galaxyml.datasets.galaxyzoo import read_rgb_image

    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    Image.fromarray(red).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    cmyk = read_rgb_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (32, 32, 3) and abs(int(cmyk[..., 0].mean()) - 200) < 8
    assert cmyk[..., 1].mean() < 10 and cmyk[..., 2].mean() < 10
    grey16 = np.full((32, 32), 40000, np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    assert np.all(read_rgb_image(tmp_path / "grey16.png") == 40000 >> 8)  # not 40000 % 256
    rgba = np.dstack([red, np.full((32, 32), 10, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert np.array_equal(read_rgb_image(tmp_path / "rgba.png"), red)


def test_image_files_are_size_checked_before_they_are_read(tmp_path):
    import numpy as np
    from PIL import Image

    from galaxyml.datasets.galaxyzoo import read_rgb_image
    from galaxyml.exceptions import InvalidShapeError
    from galaxyml.io import conf

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    assert read_rgb_image(tmp_path / "noise.png").shape == (64, 64, 3)
    with conf.set_temp("max_image_pixels", 100):
        with pytest.raises(InvalidShapeError, match="noise.png: the file holds more than 800"):
            read_rgb_image(tmp_path / "noise.png")
