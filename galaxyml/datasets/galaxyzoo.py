# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Labelled merger catalogues (Galaxy Zoo, Darg et al. 2010) and Galaxy Zoo colour images."""

import io
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table

from ..exceptions import GalaxymlError, InvalidInputTypeError, InvalidParameterError, \
    InvalidShapeError, MissingColumnError, MissingFileError

__all__ = ["GALAXYZOO1_CLASSES", "read_merger_catalog",
           "read_galaxyzoo_images", "read_rgb_image", "stratified_split"]

#: Classes of the Galaxy Zoo 1 subset's ``class`` column.
GALAXYZOO1_CLASSES = {0: "elliptical", 1: "clockwise spiral", 2: "anticlockwise spiral",
                      3: "edge-on", 4: "don't know", 5: "merger"}
_GZ1_MERGER = 5

# Column names, lower case, under which each catalogue gives what is needed.
_ALIASES = {
    "objid": ("objid", "dr7objid", "specobjid", "sdss"),
    "ra": ("ra", "raj2000", "_ra"),
    "dec": ("dec", "dej2000", "_de", "decj2000"),
    "p_merger": ("p_mg", "fm", "f_m", "p_merger", "weighted_merger_fraction"),
}


def _column(table, name, path):
    lower = {column.lower(): column for column in table.colnames}
    for alias in _ALIASES[name]:
        if alias in lower:
            return table[lower[alias]]
    raise MissingColumnError(f"{path}: no {name} column (looked for {_ALIASES[name]}; the "
                             f"catalogue has {table.colnames})")


def read_merger_catalog(path, threshold=0.6, format=None):
    """A labelled merger catalogue: positions, merger vote fractions and classes.

    Reads the Galaxy Zoo 1 data release tables (``OBJID``, ``RA``, ``DEC``,
    ``P_MG``: the fraction of votes for "merger") and the Darg et al.
    (2010) catalogue (``objid``, ``RA``, ``DEC``, ``fm``: the weighted
    merger fraction), as FITS, VOTable, ECSV or CSV, sexagesimal or
    decimal positions.

    Parameters
    ----------
    path : str or path
        The catalogue file.
    threshold : float
        Vote fraction above which an object is a merger; the Darg et al.
        sample is ``fm`` > 0.4, Galaxy Zoo's "clean" merger 0.6.
    format : str, optional
        The astropy table format when the extension does not say.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        ``objid`` (where present), ``coord`` (`~astropy.coordinates.SkyCoord`),
        ``p_merger``, ``is_merger``.

    Raises
    ------
    MissingFileError
        The file does not exist.
    MissingColumnError
        A position or vote-fraction column is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such catalogue")
    if not 0 <= threshold <= 1:
        raise InvalidParameterError(f"threshold must be a fraction in [0, 1], not {threshold}")
    if format is None and path.suffix.lower() == ".csv":
        format = "ascii.csv"
    table = Table.read(path, format=format)
    catalog = QTable()
    lower = {column.lower() for column in table.colnames}
    if any(alias in lower for alias in _ALIASES["objid"]):
        catalog["objid"] = np.asarray(_column(table, "objid", path), np.int64)
    ra, dec = _column(table, "ra", path), _column(table, "dec", path)
    catalog["coord"] = _coordinates(ra, dec)
    catalog["p_merger"] = np.asarray(_column(table, "p_merger", path), float)
    catalog["is_merger"] = catalog["p_merger"] > threshold
    catalog.meta.update(source=str(path), merger_threshold=threshold)
    return catalog


def _coordinates(ra, dec):
    if ra.dtype.kind in "US":  # sexagesimal strings
        return SkyCoord(np.asarray(ra, str), np.asarray(dec, str), unit=(u.hourangle, u.deg))
    ra_unit = ra.unit or u.deg
    dec_unit = dec.unit or u.deg
    return SkyCoord(np.asarray(ra, float) * ra_unit, np.asarray(dec, float) * dec_unit)


# The most a file holds per pixel of its image (16-bit RGBA, uncompressed).
_BYTES_PER_PIXEL = 8


def read_rgb_image(path):
    """A colour image file (JPEG, PNG, ...) as a (ny, nx, 3) uint8 array.

    The size is checked before the pixels are decoded (at most
    ``galaxyml.io.conf.max_image_pixels``).  Grey, palette, CMYK and
    alpha images are converted to RGB (alpha is dropped); 16-bit images
    keep their 8 most significant bits.

    Raises
    ------
    MissingFileError
        No such file, or not a readable image (truncated, corrupt).
    InvalidShapeError
        More pixels than allowed, or a file larger than such an image.
    InvalidInputTypeError
        A pixel format that is not a colour or grey image (floating point).
    """
    from PIL import Image, UnidentifiedImageError

    from ..io import conf

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such image")
    # Decoded from memory: a corrupt chunk length then cannot make PIL allocate its value.
    largest_file = _BYTES_PER_PIXEL * conf.max_image_pixels
    if path.stat().st_size > largest_file:
        raise InvalidShapeError(f"{path}: the file holds more than {largest_file} bytes, more "
                                f"than an image of galaxyml.io.conf.max_image_pixels can")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            image = Image.open(io.BytesIO(path.read_bytes()))
        with image:
            width, height = image.size
            if width * height > conf.max_image_pixels:
                raise InvalidShapeError(
                    f"{path}: the image is {width} x {height} pixels, more than the "
                    f"{conf.max_image_pixels} that galaxyml.io.conf.max_image_pixels allows")
            return _rgb_array(image, path)
    except GalaxymlError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidShapeError(f"{path}: {exc}") from None
    except MemoryError:
        raise InvalidShapeError(f"{path}: decoding the image ran out of memory") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MissingFileError(f"{path}: not a readable image ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]})") from None


def _rgb_array(image, path):
    """A decoded PIL image as (ny, nx, 3) uint8: 16-bit scaled, not wrapped, to 8 bits."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(image).astype(np.int64)
        # A 16-bit image (PNG's 'I' mode holds 16-bit values too) keeps its high byte.
        grey = np.clip(grey >> 8, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
    if image.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr",
                          "LAB", "HSV"):
        raise InvalidInputTypeError(f"{path}: images of pixel mode {image.mode!r} are not "
                                    f"colour or grey images galaxyml can classify")
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def read_galaxyzoo_images(directory):
    """The Galaxy Zoo 1 subset: one row per image, its file, class and merger label.

    Parameters
    ----------
    directory : str or path
        Holding ``labels.csv`` (``objid,class``) and ``images/<objid>.jpeg``,
        as ``../shared/data/galaxyzoo1`` does.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``objid``, ``class``, ``class_name``, ``is_merger`` (class 5) and
        ``path`` of each image; rows without an image file are dropped and
        counted in ``meta['missing_images']``.
    """
    directory = Path(directory)
    labels = directory / "labels.csv"
    if not labels.is_file():
        raise MissingFileError(f"{labels}: no labels; is {directory} the Galaxy Zoo 1 subset?")
    table = QTable(Table.read(labels, format="ascii.csv"))
    for name in ("objid", "class"):
        if name not in table.colnames:
            raise MissingColumnError(f"{labels}: no {name} column (it has {table.colnames})")
    paths = [_image_path(directory / "images", objid) for objid in table["objid"]]
    present = np.array([p is not None for p in paths])
    table = table[present]
    table["class_name"] = [GALAXYZOO1_CLASSES.get(int(c), "unknown") for c in table["class"]]
    table["is_merger"] = np.asarray(table["class"]) == _GZ1_MERGER
    table["path"] = [str(p) for p in np.array(paths, dtype=object)[present]]
    table.meta.update(source=str(directory), missing_images=int((~present).sum()))
    return table


def _image_path(images, objid):
    for suffix in (".jpeg", ".jpg", ".png"):
        path = images / f"{objid}{suffix}"
        if path.is_file():
            return path
    return None


def stratified_split(labels, fractions=(0.6, 0.2, 0.2), names=("train", "validation", "test"),
                     seed=0):
    """Assign each object to a side of a split, the same fraction of each class on each side.

    Parameters
    ----------
    labels : array-like
        One class per object (for example ``is_merger``).  Objects that
        appear several times must be grouped by the caller (one row per
        ``objid``).
    fractions : sequence of float
        Fraction of each class on each side, summing to 1.
    names : sequence of str
        The sides.
    seed : int
        Seed of the assignment.

    Returns
    -------
    split : `~numpy.ndarray` of str
    """
    fractions = np.asarray(fractions, float)
    if len(fractions) != len(names) or not np.isclose(fractions.sum(), 1) or (fractions < 0).any():
        raise InvalidParameterError(f"fractions {tuple(fractions)} must be one per side "
                                    f"{tuple(names)} and sum to 1")
    labels = np.asarray(labels)
    split = np.empty(len(labels), dtype=f"U{max(len(n) for n in names)}")
    rng = np.random.default_rng(seed)
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        edges = np.round(np.cumsum(fractions) * len(members)).astype(int)
        for name, chunk in zip(names, np.split(members, edges[:-1])):
            split[chunk] = name
    return split
