# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Labelled colour images (JPEG/PNG files or uint8 arrays) as a sample set for classifiers."""

import numpy as np

from ..exceptions import InvalidShapeError, ShapeMismatchError
from .galaxyzoo import read_rgb_image
from .samples import SampleSet, seeded_manifest

__all__ = ["ColourImages", "resize_rgb"]


def resize_rgb(rgb, size):
    """A (ny, nx, 3) colour image resized, anti-aliased, to ``size`` x ``size`` (float32)."""
    from skimage.transform import resize

    rgb = np.asarray(rgb, np.float32)
    if rgb.shape[:2] == (size, size):
        return rgb
    return resize(rgb, (size, size), anti_aliasing=True, preserve_range=True).astype(np.float32)


class ColourImages(SampleSet):
    """(colour image, label) samples: images in [0, 1] of one size, labels from the manifest.

    The images are read (or taken from memory) and resized on demand, so
    the set streams through `~galaxyml.datasets.SampleSet.training_dataset`
    with its exact-resume order and dihedral augmentation, like the GANs'
    pairs.  Use `select` with repeated rows to oversample a rare class.
    """

    file_prefix = "colour"

    @property
    def size(self):
        """Side of the images the samples are resized to."""
        return int(self.manifest.meta["size"])

    def sample(self, index):
        """Sample ``index``: the image (size, size, 3) float32 in [0, 1] and its label."""
        image = resize_rgb(self._make(self.manifest[index]), self.size)
        row = self.manifest[index]
        values = np.array([float(row[name]) for name in self.labels], np.float32)
        return image, (values[0] if len(values) == 1 else values)

    def linear_sample(self, index):
        """The colour image of sample ``index`` at its own size, uint8 or float."""
        return (self._make(self.manifest[index]),)

    def in_memory(self, progress=True):
        """The same samples with every image read and resized once, kept in memory (uint8).

        Decoding a JPEG for every training step costs more than the step
        of a small network; 4455 images of 96 x 96 take 123 MB.
        """
        from astropy.utils.console import ProgressBar

        indices = range(len(self))
        images = np.empty((len(self), self.size, self.size, 3), np.uint8)
        for k in (ProgressBar(indices) if progress else indices):
            images[k] = np.clip(np.rint(resize_rgb(self._make(self.manifest[k]), self.size)
                                        * 255), 0, 255)
        manifest = self.manifest.copy()
        manifest["image_index"] = np.arange(len(self))

        def make(row):
            return images[int(row["image_index"])].astype(np.float32) / 255.0

        return type(self)(manifest, make)

    @classmethod
    def from_files(cls, paths, labels, size, split=None, label_names=("label",),
                   kind="colour", seed=0, extra=None):
        """Samples from image files (JPEG, PNG), read when needed.

        Parameters
        ----------
        paths : sequence of str
        labels : array-like
            (n,) or (n, n_labels).
        size : int
            Side the images are resized to.
        split : array-like of str, optional
            Side of each sample.
        extra : dict of array-like, optional
            More manifest columns (for example ``objid``).
        """
        paths = [str(p) for p in paths]
        manifest = _manifest(paths, labels, split, label_names, seed, cls.id_column, extra)
        manifest["path"] = paths
        manifest.meta.update(kind=kind, bands=["rgb"], labels=list(label_names), size=int(size))

        def make(row):
            return read_rgb_image(row["path"]).astype(np.float32) / 255.0

        return cls(manifest, make)

    @classmethod
    def from_arrays(cls, images, labels, size, split=None, label_names=("label",),
                    kind="colour", seed=0, extra=None):
        """Samples from (n, ny, nx, 3) colour images in memory (uint8, or float in [0, 1])."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise InvalidShapeError(f"colour images must be (n, ny, nx, 3), not {images.shape}")
        scale = 1 / 255.0 if images.dtype == np.uint8 else 1.0
        manifest = _manifest(list(range(len(images))), labels, split, label_names, seed,
                             cls.id_column, extra)
        manifest.meta.update(kind=kind, bands=["rgb"], labels=list(label_names), size=int(size))

        def make(row):
            return images[int(row["image_index"])].astype(np.float32) * scale

        return cls(manifest, make)


def _manifest(items, labels, split, label_names, seed, id_column, extra):
    labels = np.asarray(labels, float).reshape(len(labels), -1)
    if len(labels) != len(items) or labels.shape[1] != len(label_names):
        raise ShapeMismatchError(f"{len(items)} images need {len(items)} x {len(label_names)} "
                                 f"labels, not {labels.shape}")
    columns = [np.arange(len(items))] + [labels[:, k] for k in range(len(label_names))]
    names = ["image_index", *label_names]
    if split is not None:
        columns.append(np.asarray(split, str))
        names.append("split")
    manifest = seeded_manifest(list(zip(*columns)), names, seed, id_column)
    for name, values in (extra or {}).items():
        manifest[name] = values
    return manifest
