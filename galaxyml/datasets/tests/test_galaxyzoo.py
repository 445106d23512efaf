# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy.table import Table

from galaxyml.datasets.colour import ColourImages, resize_rgb
from galaxyml.datasets.galaxyzoo import (read_galaxyzoo_images,
                                         read_merger_catalog, read_rgb_image, stratified_split)
from galaxyml.exceptions import InvalidParameterError, MissingColumnError, MissingFileError


def test_galaxy_zoo_release_table(tmp_path):
    """The Galaxy Zoo 1 release's columns: OBJID, sexagesimal RA/DEC, P_MG."""
    path = tmp_path / "gz1.csv"
    Table({"OBJID": [587727178986356823, 587727225690194001],
           "RA": ["00:00:00.41", "00:00:00.74"], "DEC": ["-10:22:25.7", "-09:13:20.2"],
           "P_MG": [0.75, 0.05]}).write(path, format="ascii.csv")
    catalog = read_merger_catalog(path)
    assert list(catalog["is_merger"]) == [True, False]
    assert catalog["coord"][0].ra.deg == pytest.approx(0.41 / 240, abs=1e-6)
    assert catalog["objid"].dtype == np.int64


def test_darg_catalogue_in_fits(tmp_path):
    path = tmp_path / "darg.fits"
    Table({"objid": [1, 2, 3], "RA": [10.0, 20.0, 30.0], "DEC": [1.0, 2.0, 3.0],
           "fm": [0.9, 0.45, 0.2]}).write(path)
    catalog = read_merger_catalog(path, threshold=0.4)
    assert list(catalog["is_merger"]) == [True, True, False]
    assert catalog["coord"].dec.deg[2] == 3.0


def test_missing_column_and_file(tmp_path):
    path = tmp_path / "bad.csv"
    Table({"ra": [1.0], "dec": [2.0]}).write(path, format="ascii.csv")
    with pytest.raises(MissingColumnError, match="p_merger"):
        read_merger_catalog(path)
    with pytest.raises(MissingFileError):
        read_merger_catalog(tmp_path / "nothing.csv")
    with pytest.raises(InvalidParameterError):
        read_merger_catalog(path, threshold=2)


def galaxyzoo_directory(tmp_path, n=12, mergers=3):
    """A Galaxy Zoo 1-like directory: labels.csv and small JPEGs."""
    from skimage.io import imsave

    (tmp_path / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    classes = [5] * mergers + [0] * (n - mergers)
    for k, label in enumerate(classes):
        image = rng.integers(0, 40, (40, 40, 3)).astype(np.uint8)
        image[15:25, 15:25] = 200 if label == 5 else 120
        imsave(tmp_path / "images" / f"{1000 + k}.jpeg", image, check_contrast=False)
    Table({"objid": 1000 + np.arange(n + 1), "class": classes + [1]}).write(
        tmp_path / "labels.csv", format="ascii.csv")
    return tmp_path


def test_galaxyzoo_images_and_colour_samples(tmp_path):
    directory = galaxyzoo_directory(tmp_path)
    table = read_galaxyzoo_images(directory)
    assert len(table) == 12 and table.meta["missing_images"] == 1
    assert table["is_merger"].sum() == 3 and table["class_name"][0] == "merger"
    image = read_rgb_image(table["path"][0])
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    samples = ColourImages.from_files(table["path"], table["is_merger"], 32,
                                      split=stratified_split(table["is_merger"], (0.5, 0.5),
                                                             ("train", "test")))
    x, y = samples.sample(0)
    assert x.shape == (32, 32, 3) and 0 <= x.min() and x.max() <= 1 and y == 1.0
    memory = samples.in_memory(progress=False)
    assert np.allclose(memory.sample(3)[0], samples.sample(3)[0], atol=1 / 255)
    batch = next(iter(memory.training_dataset(4, seed=1)))
    assert batch[0].shape == (4, 32, 32, 3)


def test_stratified_split_keeps_the_class_fractions():
    labels = np.array([1] * 20 + [0] * 980)
    split = stratified_split(labels, seed=3)
    for side, fraction in (("train", 0.6), ("validation", 0.2), ("test", 0.2)):
        assert labels[split == side].sum() == round(20 * fraction)
        assert (split == side).sum() == pytest.approx(1000 * fraction, abs=2)
    assert np.array_equal(split, stratified_split(labels, seed=3))
    with pytest.raises(InvalidParameterError):
        stratified_split(labels, (0.5, 0.6, 0.1))


def test_resize_rgb():
    image = np.zeros((40, 40, 3), np.float32)
    image[10:30, 10:30] = 1
    small = resize_rgb(image, 20)
    assert small.shape == (20, 20, 3) and small.mean() == pytest.approx(image.mean(), abs=0.02)
