# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reproducible training samples: a manifest, images made on demand, a stream for training.

A `SampleSet` is a manifest (one row per sample, each with its own seed)
and a way to make each sample's images from its row.  It turns them into
what a network eats: stretched float32 images (and labels from the
manifest's columns), as a `tf.data.Dataset` for evaluation or as an
endless, step-indexed stream for training that a resumed run re-enters
exactly, with the same dihedral augmentation; and it writes the images to
FITS files with the manifest last, so an interrupted write resumes.
`~galaxyml.datasets.TrainingPairs` (the GANs' (condition, target) pairs)
and `LabelledImages` ((image, label) data, for classifiers) build on it.
"""

import contextlib
import copy
import functools
import json
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable
from astropy.utils.console import ProgressBar
from astropy.wcs import WCS

from ..exceptions import (FITSReadError, InvalidShapeError, MissingFileError,
                          OutputExistsError, ShapeMismatchError)
from ..io.writing import atomic_output, provenance_header, write_fits
from ..stretch import GalaxyGANStretch, stretch_from_dict
from ..io._open import open_fits
from ..utils._fits import unit_to_bunit

__all__ = ["SampleSet", "LabelledImages", "Stamp", "seeded_manifest", "dihedral_transform"]

_MANIFEST = "manifest.ecsv"


class Stamp:
    """The least an image of a sample needs: ``data`` (n_bands, ny, nx) in nanomaggies, ``wcs``.

    `~galaxyml.io.MultiBandCutout` has both too.
    """

    def __init__(self, data, wcs):
        self.data = data
        self.wcs = wcs


def seeded_manifest(rows, names, seed, id_column="sample_id"):
    """A manifest: the rows, an id column first and a ``seed`` column of one seed per row.

    Each sample's seed comes from ``seed`` and its row number only, so any
    sample is made identically in any order.  ``ra`` and ``dec`` columns
    get degrees.

    Parameters
    ----------
    rows : list of tuple
        One tuple per sample.
    names : sequence of str
        Column names of the tuples.
    seed : int
        Seed of the whole set.
    id_column : str
        Name of the id column (the row numbers).

    Returns
    -------
    manifest : `~astropy.table.QTable`
    """
    manifest = QTable(rows=rows, names=names) if rows else QTable(names=names)
    manifest.add_column(np.arange(len(manifest)), name=id_column, index=0)
    manifest["seed"] = [int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
                        for k in range(len(manifest))]
    for name in ("ra", "dec"):
        if name in manifest.colnames:
            manifest[name].unit = u.deg
    return manifest


def dihedral_transform(images, seed):
    """Apply one of the 8 flips and 90-degree rotations, the same to every image.

    Parameters
    ----------
    images : sequence of `tf.Tensor`
        (ny, nx, channels) images of one size (their channels may differ);
        square for rotations to keep it.
    seed : `tf.Tensor`
        Two int64 values for `tf.random.stateless_uniform`, so that the
        transform is reproducible.

    Returns
    -------
    transformed : tuple of `tf.Tensor`
    """
    import tensorflow as tf

    choice = tf.random.stateless_uniform([], seed=tf.cast(seed, tf.int64), maxval=8,
                                         dtype=tf.int32)

    def transform(image):
        image = tf.cond(choice >= 4, lambda: tf.reverse(image, axis=[1]), lambda: image)
        return tf.image.rot90(image, k=choice % 4)

    return tuple(transform(image) for image in images)


@functools.lru_cache(maxsize=8)
def _permutation(seed, data_pass, n):
    return np.random.default_rng([seed, data_pass]).permutation(n)


class SampleSet:
    """Samples described by a manifest, their images made on demand.

    Parameters
    ----------
    manifest : `~astropy.table.QTable`
        One row per sample, with the id column (`id_column`), ``seed``
        and, for `subset`, ``split``; ``meta`` holds ``kind``, ``bands``,
        ``stretch`` (a `~galaxyml.stretch.ImageStretch` as a dict) and,
        for labelled samples, ``labels`` (the names of the label columns).
    make : callable
        ``make(row) -> tuple`` of images, one per role (`roles`), each with
        ``data`` of shape (n_bands, ny, nx) in nanomaggies and a ``wcs``
        (`Stamp`, `~galaxyml.io.MultiBandCutout`).
    """

    #: Names of the images of a sample, in order (FITS extensions ``<role>_<band>``).
    roles = ("IMAGE",)
    #: The manifest's id column.
    id_column = "sample_id"
    #: Prefix of the FITS file names written by `write`.
    file_prefix = "sample"

    def __init__(self, manifest, make):
        self.manifest = manifest
        self._make = make

    @property
    def kind(self):
        """What the samples are for, for example ``'galaxygan'``."""
        return self.manifest.meta["kind"]

    @property
    def bands(self):
        """Bands, in the order of the channels."""
        return tuple(self.manifest.meta["bands"])

    @property
    def stretch(self):
        """The `~galaxyml.stretch.ImageStretch` applied for the networks."""
        return stretch_from_dict(self.manifest.meta["stretch"])

    @property
    def labels(self):
        """Names of the manifest columns that are the network's targets (none for image pairs)."""
        return tuple(self.manifest.meta.get("labels", ()))

    def __len__(self):
        return len(self.manifest)

    def __repr__(self):
        sides = ({str(side): int((self.manifest["split"] == side).sum())
                  for side in np.unique(self.manifest["split"])}
                 if "split" in self.manifest.colnames else len(self))
        return (f"<{type(self).__name__} kind={self.kind} bands={''.join(self.bands)} "
                f"samples={sides}>")

    def subset(self, split):
        """The samples of one side (``'train'`` or ``'test'``) of the split."""
        return self.select(self.manifest["split"] == split)

    def select(self, rows):
        """The samples of some manifest rows (a boolean mask or indices)."""
        return type(self)(self.manifest[rows], self._make)

    def linear_sample(self, index):
        """Sample ``index`` (a row number) as images in nanomaggies with their WCS."""
        return tuple(self._make(self.manifest[index]))

    def sample(self, index):
        """Sample ``index`` for a network: stretched float32 images (ny, nx, n_bands), labels.

        Labels come last, as one float32 value, or a vector for several
        label columns.
        """
        stretch = self.stretch
        arrays = [np.moveaxis(stretch(image.data, warn=False), 0, -1).astype(np.float32)
                  for image in self.linear_sample(index)]
        if self.labels:
            row = self.manifest[index]
            values = np.array([float(row[name]) for name in self.labels], np.float32)
            arrays.append(values[0] if len(values) == 1 else values)
        return tuple(arrays)

    def __iter__(self):
        for index in range(len(self)):
            yield self.sample(index)

    def in_memory(self, workers=2, progress=True):
        """These samples made once, now, and kept in memory, as the network sees them.

        Worth it when making a sample costs more than the network's step
        on it (a degradation and a deconvolution per pair, for example) and
        the set fits in memory: ``len(self)`` times the bytes of `sample`.

        Parameters
        ----------
        workers : int
            Threads that make samples (NumPy's and SciPy's FFTs release
            the GIL).
        progress : bool
            Show a progress bar.

        Returns
        -------
        samples : `SampleSet`
            Same manifest; `sample` returns the stored arrays.
        """
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, int(workers))) as pool:
            made = pool.map(self.sample, range(len(self)))
            arrays = []
            with ProgressBar(len(self)) if progress else contextlib.nullcontext() as bar:
                for array in made:
                    arrays.append(array)
                    if bar is not None:
                        bar.update()
        ids = self.manifest[self.id_column]
        return _SamplesInMemory(self, dict(zip((int(k) for k in ids), arrays)))

    def to_dataset(self, batch_size=None, shuffle=False, augment=False, seed=0):
        """The samples as a `tf.data.Dataset` of network-ready tensors.

        Samples are made (or read) on the fly, so a set of any size streams
        in constant memory.

        Parameters
        ----------
        batch_size : int, optional
            Batch the elements.
        shuffle : bool
            Visit the samples in a random order, a new one every epoch
            (reproducible for a given ``seed``).
        augment : bool
            Apply a random flip and 90-degree rotation to each sample (the
            same to all its images), see `dihedral_transform`.
        seed : int
            Seed of the order and of the augmentation.

        Returns
        -------
        dataset : `tf.data.Dataset`
            Elements as `sample` gives them, as tensors.
        """
        import tensorflow as tf

        indices = tf.data.Dataset.range(len(self))
        if shuffle:
            indices = indices.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return self._tensor_dataset(indices, int, augment, seed, batch_size,
                                    drop_remainder=False)

    def training_dataset(self, batch_size, seed=0, start_step=0, augment=True):
        """An endless, reproducible stream of batches for training, from any step on.

        Sample k of the stream is row ``permutation(seed, k // n)[k % n]``:
        every pass over the n samples has its own seeded order and each
        sample its own seeded flip and rotation, so that a run resumed at
        ``start_step`` sees exactly the batches the uninterrupted run would
        have seen.

        Parameters
        ----------
        batch_size : int
            Samples per batch.
        seed : int
            Seed of the orders and the augmentation.
        start_step : int
            Batches already consumed.
        augment : bool
            Random flips and 90-degree rotations.

        Returns
        -------
        dataset : `tf.data.Dataset`
            Batches of the elements `sample` gives.
        """
        import tensorflow as tf

        n = len(self)

        def index_of(sample):
            data_pass, position = divmod(int(sample), n)
            return int(_permutation(seed, data_pass, n)[position])

        samples = tf.data.Dataset.range(start_step * batch_size, 2 ** 62)
        return self._tensor_dataset(samples, index_of, augment, seed, batch_size,
                                    drop_remainder=True)

    def _tensor_dataset(self, samples, index_of, augment, seed, batch_size, drop_remainder):
        """Map a dataset of sample numbers to network-ready tensors."""
        import tensorflow as tf

        first = self.sample(0)
        n_images = len(self.roles)

        def load_tensors(number):
            arrays = tf.numpy_function(lambda k: self.sample(index_of(k)), [number],
                                       [tf.float32] * len(first))
            for array, example in zip(arrays, first):
                array.set_shape(np.shape(example))
            return number, tuple(arrays)

        def finish(number, arrays):
            images, labels = arrays[:n_images], arrays[n_images:]
            if augment:
                images = dihedral_transform(images, tf.stack([tf.cast(seed, tf.int64), number]))
            return tuple(images) + tuple(labels)

        dataset = samples.map(load_tensors).map(finish)
        if batch_size:
            dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.prefetch(2)

    def write(self, directory, overwrite=False, progress=True):
        """Write every sample's images to a FITS file and the manifest to ``manifest.ecsv``.

        Each file is written atomically and the manifest last, so an
        interrupted run can be resumed: samples whose files exist are kept.

        Parameters
        ----------
        directory : str or path
            Created if needed.
        overwrite : bool
            Rewrite sample files that exist and replace the manifest.
        progress : bool
            Show a progress bar.

        Returns
        -------
        manifest_path : `~pathlib.Path`
        """
        directory = Path(directory)
        manifest_path = directory / _MANIFEST
        if manifest_path.exists() and not overwrite:
            raise OutputExistsError(f"{manifest_path}: a data set is already written there "
                                    "(pass overwrite=True to replace it)")
        directory.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest.copy()
        manifest["file"] = [f"{self.file_prefix}-{int(i):07d}.fits"
                            for i in manifest[self.id_column]]
        indices = range(len(manifest))
        for index in (ProgressBar(indices) if progress else indices):
            path = directory / manifest["file"][index]
            if path.exists() and not overwrite and _readable(path):
                continue  # written by an earlier, interrupted run
            hdul = self._hdulist(manifest[index], self.linear_sample(index))
            write_fits(hdul, path, overwrite=True)
        with atomic_output(manifest_path, overwrite=overwrite) as temporary:
            _manifest_for_writing(manifest).write(temporary, format="ascii.ecsv")
        return manifest_path

    def _hdulist(self, row, images):
        header = provenance_header(f"{self.kind}_sample")
        header["SAMPLEID"] = (int(row[self.id_column]), "row of the sample in the manifest")
        if "galaxy_id" in row.colnames:
            header["GALAXYID"] = (int(row["galaxy_id"]), "galaxy's id in the selection")
        if "split" in row.colnames:
            header["SPLIT"] = (str(row["split"]), "side of the train/test split")
        header["BANDS"] = (",".join(self.bands), "bands, in channel order")
        hdus = [fits.PrimaryHDU(header=header)]
        for role, image in zip(self.roles, images):
            for k, band in enumerate(self.bands):
                hdu = fits.ImageHDU(np.asarray(image.data[k], np.float32),
                                    header=image.wcs.to_header(), name=f"{role}_{band}")
                hdu.header["BUNIT"] = unit_to_bunit(u.nanomaggy)
                hdus.append(hdu)
        return fits.HDUList(hdus)

    @classmethod
    def read(cls, directory):
        """Samples written by `write`, their images read from the files on demand."""
        directory = Path(directory)
        manifest_path = directory / _MANIFEST
        if not manifest_path.is_file():
            raise MissingFileError(f"{manifest_path}: no manifest; is {directory} a data set "
                                   f"written by {cls.__name__}.write?")
        manifest = QTable.read(manifest_path, format="ascii.ecsv")
        manifest.meta["stretch"] = json.loads(manifest.meta["stretch"])
        bands = tuple(manifest.meta["bands"])

        def make(row):
            return _read_images(directory / row["file"], cls.roles, bands)

        return cls(manifest, make)


class LabelledImages(SampleSet):
    """(image, label) samples for classifiers: one image each, labels from the manifest.

    Elements of its data sets are ``(image, label)``, the image stretched
    and augmented like the GANs' pairs, ready for ``keras.Model.fit``.
    """

    @classmethod
    def from_arrays(cls, images, labels, bands, stretch=None, split=None, wcs=None,
                    label_names=("label",), kind="labelled", seed=0):
        """Labelled samples from images in memory.

        Parameters
        ----------
        images : array-like
            (n, n_bands, ny, nx) in nanomaggies.
        labels : array-like
            (n,) or (n, n_labels) numbers.
        bands : sequence of str
            The images' bands, in channel order.
        stretch : `~galaxyml.stretch.ImageStretch`, optional
            `~galaxyml.stretch.GalaxyGANStretch` by default.
        split : array-like of str, optional
            Side of each sample (``'train'``, ``'test'``).
        wcs : `~astropy.wcs.WCS`, optional
            Shared by the images; an empty one by default.
        label_names : sequence of str
            Names of the label columns.
        kind : str
            What the set is for.
        seed : int
            Seed of the manifest's per-sample seeds.
        """
        images = np.asarray(images, np.float32)
        bands = tuple(bands)
        if images.ndim != 4 or images.shape[1] != len(bands):
            raise InvalidShapeError(f"images must have shape (n, n_bands={len(bands)}, ny, nx), "
                                    f"not {images.shape}")
        labels = np.asarray(labels, float).reshape(len(labels), -1)
        if len(labels) != len(images) or labels.shape[1] != len(label_names):
            raise ShapeMismatchError(f"{len(images)} images need {len(images)} x "
                                     f"{len(label_names)} labels, not {labels.shape}")
        columns = [labels[:, k] for k in range(len(label_names))]
        names = list(label_names)
        if split is not None:
            columns.append(np.asarray(split, str))
            names.append("split")
        rows = list(zip(np.arange(len(images)), *columns))
        manifest = seeded_manifest(rows, ["image_index", *names], seed, cls.id_column)
        manifest.meta.update(kind=kind, bands=list(bands), labels=list(label_names),
                             stretch=(stretch or GalaxyGANStretch()).to_dict())
        wcs = WCS(naxis=2) if wcs is None else wcs

        def make(row):
            return (Stamp(images[int(row["image_index"])], wcs),)

        return cls(manifest, make)


def _manifest_for_writing(manifest):
    out = manifest.copy()
    out.meta = dict(manifest.meta)
    out.meta["stretch"] = json.dumps(manifest.meta["stretch"])
    return out


def _read_images(path, roles, bands):
    with open_fits(path) as hdul:
        images = []
        for role in roles:
            try:
                planes = [hdul[f"{role}_{band}"].data.astype(np.float32) for band in bands]
            except KeyError as exc:
                raise FITSReadError(f"{path}: not a sample with images {roles} in bands "
                                    f"{bands} ({exc})") from exc
            images.append(Stamp(np.stack(planes), WCS(hdul[f"{role}_{bands[0]}"].header)))
    return tuple(images)


def _readable(path):
    try:
        with open_fits(path):
            return True
    except FITSReadError:
        return False


class _SamplesInMemory(SampleSet):
    """A `SampleSet` whose network-ready samples were made once (`SampleSet.in_memory`)."""

    def __init__(self, samples, arrays):
        super().__init__(samples.manifest, samples._make)
        self.roles, self.id_column = samples.roles, samples.id_column
        self._arrays = arrays

    def select(self, rows):
        chosen = copy.copy(self)
        chosen.manifest = self.manifest[rows]
        return chosen

    def sample(self, index):
        return self._arrays[int(self.manifest[self.id_column][index])]
