# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Training pairs for the GANs: (condition, target) stamps made on demand.

A `TrainingPairs` is a manifest (one row per pair: galaxy, sky position,
train/test side, degradation or point source, seed) and a way to make
each pair from it: from stamps in memory, by degrading them or adding a
point source with the pair's own seed, or from a directory of FITS files
written earlier.  Pairs are kept in nanomaggies; the stretch is applied
when a network asks for them, and its parameters travel with the manifest.
"""

import functools
import json
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable
from astropy.utils.console import ProgressBar
from astropy.wcs import WCS

from ..degrade.agn import add_point_source, host_galaxy
from ..degrade.core import GALAXYGAN_FWHM_GRID, GALAXYGAN_SIGMA_GRID, degrade_like_galaxygan
from ..exceptions import (FITSReadError, NoiseTargetWarning, OutputExistsError,
                          UnknownBandError)
from ..io.cutout import multiband_cutout, read_images
from ..io.fits import open_fits, unit_to_bunit, wcs_pixel_scale
from ..io.writing import atomic_output, provenance_header, write_fits
from ..psf.sdss import SDSSPSFBasis
from ..stretch import GalaxyGANStretch, PSFGANStretch, stretch_from_dict
from .selection import galaxy_catalog, split_by_region

__all__ = ["TrainingPairs", "make_galaxygan_pairs", "make_psfgan_pairs", "galaxygan_grid",
           "augment_pair"]

_MANIFEST = "manifest.ecsv"
_ROLES = ("COND", "TARGET")


def galaxygan_grid(fwhms=GALAXYGAN_FWHM_GRID, sigmas=GALAXYGAN_SIGMA_GRID):
    """The (fwhm, sigma) cells of a degradation grid; the paper's 4 x 5 by default."""
    return [(u.Quantity(fwhm, u.arcsec), float(sigma)) for fwhm in fwhms for sigma in sigmas]


class TrainingPairs:
    """(condition, target) pairs described by a manifest.

    Made by `make_galaxygan_pairs` and `make_psfgan_pairs`, or read from a
    directory with `TrainingPairs.read`.

    Parameters
    ----------
    manifest : `~astropy.table.QTable`
        One row per pair, with at least ``pair_id``, ``galaxy_id`` and
        ``split``; ``meta`` holds ``kind``, ``bands`` and ``stretch``.
    make : callable
        ``make(row) -> (condition, target)``, each a
        `~galaxyml.io.MultiBandCutout`-like object with ``data`` of shape
        (n_bands, ny, nx) in nanomaggies and a ``wcs``.
    """

    def __init__(self, manifest, make):
        self.manifest = manifest
        self._make = make

    @property
    def kind(self):
        """``'galaxygan'`` or ``'psfgan'``."""
        return self.manifest.meta["kind"]

    @property
    def bands(self):
        """Bands, in the order of the channels."""
        return tuple(self.manifest.meta["bands"])

    @property
    def stretch(self):
        """The `~galaxyml.stretch.ImageStretch` applied for the networks."""
        return stretch_from_dict(self.manifest.meta["stretch"])

    def __len__(self):
        return len(self.manifest)

    def __repr__(self):
        sides = {str(side): int((self.manifest["split"] == side).sum())
                 for side in np.unique(self.manifest["split"])}
        return f"<TrainingPairs kind={self.kind} bands={''.join(self.bands)} pairs={sides}>"

    def subset(self, split):
        """The pairs of one side (``'train'`` or ``'test'``) of the split."""
        return self.select(self.manifest["split"] == split)

    def select(self, rows):
        """The pairs of some manifest rows (a boolean mask or indices)."""
        return TrainingPairs(self.manifest[rows], self._make)

    def linear_pair(self, index):
        """Pair ``index`` (a row number) as two images in nanomaggies, with WCS.

        Returns
        -------
        condition, target : `~galaxyml.io.MultiBandCutout` or the like
            ``data`` of shape (n_bands, ny, nx).
        """
        return self._make(self.manifest[index])

    def pair(self, index):
        """Pair ``index`` stretched for a network: two float32 arrays (ny, nx, n_bands)."""
        condition, target = self.linear_pair(index)
        stretch = self.stretch
        return tuple(np.moveaxis(stretch(image.data, warn=False), 0, -1).astype(np.float32)
                     for image in (condition, target))

    def __iter__(self):
        for index in range(len(self)):
            yield self.pair(index)

    def to_dataset(self, batch_size=None, shuffle=False, augment=False, seed=0):
        """The pairs as a `tf.data.Dataset` of stretched (condition, target) tensors.

        Pairs are made (or read) on the fly, so a data set of any size
        streams in constant memory.

        Parameters
        ----------
        batch_size : int, optional
            Batch the elements.
        shuffle : bool
            Visit the pairs in a random order, a new one every epoch
            (reproducible for a given ``seed``).
        augment : bool
            Apply a random flip and 90-degree rotation to each pair (the
            same to its condition and target), see `augment_pair`.
        seed : int
            Seed of the order and of the augmentation.

        Returns
        -------
        dataset : `tf.data.Dataset`
            Elements (condition, target), float32, shape (ny, nx, n_bands).
        """
        import tensorflow as tf

        indices = tf.data.Dataset.range(len(self))
        if shuffle:
            indices = indices.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return self._tensor_dataset(indices, lambda index: int(index), augment, seed,
                                    batch_size, drop_remainder=False)

    def training_dataset(self, batch_size, seed=0, start_step=0, augment=True):
        """An endless, reproducible stream of batches for training, from any step on.

        Sample k of the stream is pair ``permutation(seed, k // n)[k % n]``:
        every pass over the n pairs has its own seeded order and each
        sample its own seeded flip and rotation, so that a run resumed at
        ``start_step`` sees exactly the batches the uninterrupted run would
        have seen.

        Parameters
        ----------
        batch_size : int
            Pairs per batch.
        seed : int
            Seed of the orders and the augmentation.
        start_step : int
            Batches already consumed.
        augment : bool
            Random flips and 90-degree rotations.

        Returns
        -------
        dataset : `tf.data.Dataset`
            Batches (condition, target), float32, (batch, ny, nx, n_bands).
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
        """Map a dataset of sample numbers to stretched (condition, target) tensors."""
        import tensorflow as tf

        shape = self.pair(0)[0].shape

        def load(sample):
            return self.pair(index_of(sample))

        def load_tensors(sample):
            condition, target = tf.numpy_function(load, [sample], [tf.float32, tf.float32])
            condition.set_shape(shape)
            target.set_shape(shape)
            return sample, condition, target

        dataset = samples.map(load_tensors)
        if augment:
            dataset = dataset.map(lambda k, c, t: augment_pair(c, t, tf.stack([seed, k])))
        else:
            dataset = dataset.map(lambda k, c, t: (c, t))
        if batch_size:
            dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.prefetch(2)

    def write(self, directory, overwrite=False, progress=True):
        """Write every pair to a FITS file and the manifest to ``manifest.ecsv``.

        Each file is written atomically and the manifest last, so an
        interrupted run can be resumed: pairs whose files exist are kept.

        Parameters
        ----------
        directory : str or path
            Created if needed.
        overwrite : bool
            Rewrite pair files that exist and replace the manifest.
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
        manifest["file"] = [f"pair-{int(pid):07d}.fits" for pid in manifest["pair_id"]]
        indices = range(len(manifest))
        for index in (ProgressBar(indices) if progress else indices):
            path = directory / manifest["file"][index]
            if path.exists() and not overwrite and _readable(path):
                continue  # written by an earlier, interrupted run
            condition, target = self.linear_pair(index)
            hdul = _pair_hdulist(manifest[index], condition, target, self.bands)
            write_fits(hdul, path, overwrite=True)
        with atomic_output(manifest_path, overwrite=overwrite) as temporary:
            _manifest_for_writing(manifest).write(temporary, format="ascii.ecsv")
        return manifest_path

    @classmethod
    def read(cls, directory):
        """Pairs written by `write`, read from their files on demand."""
        directory = Path(directory)
        manifest_path = directory / _MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: no manifest; is {directory} a data set "
                                    "written by TrainingPairs.write?")
        manifest = QTable.read(manifest_path, format="ascii.ecsv")
        manifest.meta["stretch"] = json.loads(manifest.meta["stretch"])
        bands = tuple(manifest.meta["bands"])

        def make(row):
            return _read_pair(directory / row["file"], bands)

        return cls(manifest, make)


def augment_pair(condition, target, seed):
    """Apply one of the 8 flips and 90-degree rotations to both images of a pair.

    Parameters
    ----------
    condition, target : `tf.Tensor`
        (ny, nx, n_bands) images; square for rotations to keep the shape.
    seed : `tf.Tensor`
        Two int64 values for `tf.random.stateless_uniform`, so that the
        transform is reproducible.
    """
    import tensorflow as tf

    choice = tf.random.stateless_uniform([], seed=tf.cast(seed, tf.int64), maxval=8,
                                         dtype=tf.int32)
    images = tf.stack([condition, target])
    images = tf.cond(choice >= 4, lambda: tf.reverse(images, axis=[2]), lambda: images)
    images = tf.image.rot90(images, k=choice % 4)
    return images[0], images[1]


@functools.lru_cache(maxsize=8)
def _permutation(seed, data_pass, n):
    return np.random.default_rng([seed, data_pass]).permutation(n)


class _Stamp:
    """The minimal image a pair needs: data (n_bands, ny, nx) and a WCS."""

    def __init__(self, data, wcs):
        self.data = data
        self.wcs = wcs


def make_galaxygan_pairs(field_images, catalog=None, bands="gri", size=128, grid=None,
                         n_per_galaxy=1, stretch=None, test_fraction=0.5, guard=None, seed=0,
                         progress=True, **catalog_kwargs):
    """GalaxyGAN pairs (degraded stamp, original stamp) from a field.

    Every galaxy of the catalogue is cut in ``bands`` on the grid of the
    detection band (`~galaxyml.io.multiband_cutout`) and degraded with
    `~galaxyml.degrade.degrade_like_galaxygan` for every cell of the grid,
    each pair with its own seed.

    Parameters
    ----------
    field_images : mapping
        Band -> `~astropy.nddata.CCDData` or path of one field.
    catalog : `~astropy.table.QTable`, optional
        Galaxies (``id``, ``x``, ``y`` in pixels of the r band, or of the
        first band without r, ``ra``, ``dec``);
        `~galaxyml.datasets.galaxy_catalog` by default (``catalog_kwargs``
        go to it).  Galaxies whose stamp has pixels off any band's image
        are left out.
    bands : str or sequence of str
        Bands of the stamps (channels).
    size : int
        Side of the stamps in pixels.
    grid : sequence of (fwhm, sigma), or callable, optional
        Degradations: every cell of a grid for every galaxy (`galaxygan_grid`,
        the paper's 20 cells, by default), or a distribution, a function
        ``draw(rng) -> (fwhm, sigma)`` called ``n_per_galaxy`` times per
        galaxy with a `numpy.random.Generator`.
    n_per_galaxy : int
        Draws per galaxy from a distribution (ignored for a grid).
    stretch : `~galaxyml.stretch.ImageStretch`, optional
        `~galaxyml.stretch.GalaxyGANStretch` by default.
    test_fraction, guard
        The train/test split by right ascension, see
        `~galaxyml.datasets.split_by_region`; ``guard`` defaults to half a
        stamp's diagonal, so no stamp of the test side overlaps one of the
        train side.
    seed : int
        Seed of every pair's noise.
    progress : bool
        Show a progress bar while cutting stamps.

    Returns
    -------
    pairs : `TrainingPairs`
        Manifest columns ``pair_id``, ``galaxy_id``, ``ra``, ``dec``,
        ``split``, ``fwhm``, ``sigma``, ``seed``.
    """
    bands = tuple(bands)
    if grid is None:
        grid = galaxygan_grid()
    draw_rng = np.random.default_rng([seed, 1])

    def cells():
        drawn = ([grid(draw_rng) for _ in range(n_per_galaxy)] if callable(grid) else grid)
        return [(u.Quantity(fwhm, u.arcsec), float(sigma)) for fwhm, sigma in drawn]

    stretch = GalaxyGANStretch() if stretch is None else stretch
    images, catalog, split = _prepare(field_images, bands, catalog, size, test_fraction, guard,
                                      catalog_kwargs)
    reference = "r" if "r" in images else bands[0]
    stamps = _cut_stamps(images, bands, catalog, size, reference, progress)

    rows = []
    for galaxy, side in zip(catalog, split):
        if int(galaxy["id"]) not in stamps:
            continue
        for fwhm, sigma in cells():
            rows.append((int(galaxy["id"]), _degrees(galaxy["ra"]), _degrees(galaxy["dec"]),
                         str(side), fwhm.to_value(u.arcsec), sigma))
    manifest = _manifest(rows, ["galaxy_id", "ra", "dec", "split", "fwhm", "sigma"], seed)
    manifest["fwhm"].unit = u.arcsec
    manifest.meta.update(kind="galaxygan", bands=list(bands), stretch=stretch.to_dict(),
                         size=size, reference_band=reference)

    def make(row):
        original = stamps[int(row["galaxy_id"])]
        with warnings.catch_warnings():
            # At sigma = 1 the recipe's truncated noise estimate often finds the blurred
            # stamp as noisy as the original: no noise is added, as in the paper's code.
            warnings.simplefilter("ignore", NoiseTargetWarning)
            degraded, _ = degrade_like_galaxygan(original, row["fwhm"], row["sigma"],
                                                 seed=int(row["seed"]))
        return degraded, original

    return TrainingPairs(manifest, make)


def make_psfgan_pairs(field_images, psfield, catalog=None, band="r", size=128,
                      contrast_range=(0.1, 10.0), n_per_galaxy=1, stretch=None,
                      test_fraction=0.5, guard=None, seed=0, progress=True, **catalog_kwargs):
    """PSFGAN pairs (galaxy with an artificial AGN, the galaxy alone) from a field.

    Each galaxy stamp gets ``n_per_galaxy`` point sources at its centroid,
    with contrasts (point-source flux over the host's Kron flux) drawn
    uniformly in log between the limits, shaped by the SDSS KL-PSF at the
    galaxy's position on the frame, with their photon noise.

    Parameters
    ----------
    field_images : mapping
        Band -> `~astropy.nddata.CCDData` or path; must hold ``band``.
    psfield : str or path
        The field's psField file.
    catalog : `~astropy.table.QTable`, optional
        Galaxies; `~galaxyml.datasets.galaxy_catalog` by default.
    band : str
        The band of the stamps (the paper used r).
    size : int
        Side of the stamps in pixels.
    contrast_range : tuple of float
        Limits of the log-uniform contrast distribution; the paper's 0.1 to 10.
    n_per_galaxy : int
        Pairs per galaxy.
    stretch : `~galaxyml.stretch.PSFGANStretch`, optional
        By default its upper limit is just above the brightest pixel of all
        the conditions (host peak plus point-source peak), so no bright
        pixel is clipped.
    test_fraction, guard, seed, progress
        As for `make_galaxygan_pairs`.

    Returns
    -------
    pairs : `TrainingPairs`
        Manifest columns ``pair_id``, ``galaxy_id``, ``ra``, ``dec``,
        ``split``, ``contrast``, ``ps_flux``, ``host_flux``, ``x_ps``,
        ``y_ps``, ``seed``.
    """
    low, high = contrast_range
    if not 0 < low <= high:
        raise ValueError(f"contrast_range must be positive and increasing, not {contrast_range}")
    images, catalog, split = _prepare(field_images, (band,), catalog, size, test_fraction,
                                      guard, catalog_kwargs)
    stamps = _cut_stamps(images, (band,), catalog, size, band, progress)
    basis = SDSSPSFBasis(psfield, band)
    psfs = {int(g["id"]): basis.at(float(g["y"]), float(g["x"])) for g in catalog}

    rng = np.random.default_rng(seed)
    rows, peak = [], 0.0
    for galaxy, side in zip(catalog, split):
        galaxy_id = int(galaxy["id"])
        if galaxy_id not in stamps:
            continue
        stamp = stamps[galaxy_id][band]
        x_host, y_host, host_flux = host_galaxy(stamp)
        host_flux = host_flux.to_value(u.nanomaggy)
        for contrast in 10 ** rng.uniform(np.log10(low), np.log10(high), n_per_galaxy):
            ps_flux = contrast * host_flux
            rows.append((galaxy_id, _degrees(galaxy["ra"]), _degrees(galaxy["dec"]), str(side),
                         contrast, ps_flux, host_flux, x_host, y_host))
            peak = max(peak, float(np.nanmax(stamp.data)) + ps_flux * psfs[galaxy_id].array.max())
    manifest = _manifest(rows, ["galaxy_id", "ra", "dec", "split", "contrast", "ps_flux",
                                "host_flux", "x_ps", "y_ps"], seed)
    manifest["ps_flux"].unit = u.nanomaggy
    manifest["host_flux"].unit = u.nanomaggy
    stretch = PSFGANStretch(clip_max=float(f"{peak * 1.01:.3g}")) if stretch is None else stretch
    manifest.meta.update(kind="psfgan", bands=[band], stretch=stretch.to_dict(), size=size,
                         psfield=str(psfield))

    def make(row):
        original = stamps[int(row["galaxy_id"])]
        with_agn, _ = add_point_source(original[band], psfs[int(row["galaxy_id"])],
                                       flux=row["ps_flux"], position=(row["x_ps"], row["y_ps"]),
                                       seed=int(row["seed"]))
        return _Stamp(with_agn.data[None], original.wcs), original

    return TrainingPairs(manifest, make)


def _prepare(field_images, bands, catalog, size, test_fraction, guard, catalog_kwargs):
    images = read_images(field_images)
    missing = [band for band in bands if band not in images]
    if missing:
        raise UnknownBandError(f"bands {missing} are not among the field's images "
                               f"{tuple(images)}")
    if catalog is None:
        detection = "r" if "r" in images else bands[0]
        catalog = galaxy_catalog(images, detection_band=detection, size=size, **catalog_kwargs)
    if len(catalog) < 2:
        raise ValueError(f"only {len(catalog)} galaxies were selected; pairs need at least 2 "
                         "(one on each side of the split)")
    if guard is None:
        reference = images["r" if "r" in images else bands[0]]
        guard = (size / np.sqrt(2) * u.pix * wcs_pixel_scale(reference.wcs)).to(u.deg)
    split, _ = split_by_region(catalog, test_fraction, guard)
    keep = split != "guard"
    return images, catalog[keep], split[keep]


def _cut_stamps(images, bands, catalog, size, reference, progress):
    subset = {band: images[band] for band in bands}
    if reference not in subset:
        subset = {reference: images[reference], **subset}
    rows = list(catalog)
    stamps = {}
    for galaxy in (ProgressBar(rows) if progress else rows):
        cutout = multiband_cutout(subset, (float(galaxy["x"]), float(galaxy["y"])), size,
                                  reference_band=reference, mode="strict")
        if tuple(cutout.bands) != bands:
            cutout = _select_bands(cutout, bands)
        if np.all(np.isfinite(cutout.data)):  # else a band's image ends inside the stamp
            stamps[int(galaxy["id"])] = cutout
    return stamps


def _select_bands(cutout, bands):
    from ..io.cutout import MultiBandCutout
    index = [cutout.bands.index(band) for band in bands]
    uncertainty = None if cutout.uncertainty is None else cutout.uncertainty[index]
    return MultiBandCutout(cutout.data[index], bands, cutout.wcs, cutout.unit,
                           uncertainty=uncertainty, mask=cutout.mask[index], meta=cutout.meta)


def _degrees(angle):
    return float(u.Quantity(angle, u.deg).to_value(u.deg))


def _manifest(rows, names, seed):
    manifest = QTable(rows=rows, names=names)
    manifest.add_column(np.arange(len(manifest)), name="pair_id", index=0)
    # Each pair's noise has its own seed, so any pair is made identically in any order.
    manifest["seed"] = [int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
                        for k in range(len(manifest))]
    manifest["ra"].unit = u.deg
    manifest["dec"].unit = u.deg
    return manifest


def _manifest_for_writing(manifest):
    out = manifest.copy()
    out.meta = dict(manifest.meta)
    out.meta["stretch"] = json.dumps(manifest.meta["stretch"])
    return out


def _pair_hdulist(row, condition, target, bands):
    primary = fits.PrimaryHDU(header=provenance_header("training_pair"))
    header = primary.header
    header["PAIRID"] = (int(row["pair_id"]), "row of the pair in the manifest")
    header["GALAXYID"] = (int(row["galaxy_id"]), "galaxy's id in the selection catalogue")
    header["SPLIT"] = (str(row["split"]), "side of the train/test split")
    header["BANDS"] = (",".join(bands), "bands, in channel order")
    hdus = [primary]
    for role, image in zip(_ROLES, (condition, target)):
        for k, band in enumerate(bands):
            hdu = fits.ImageHDU(np.asarray(image.data[k], np.float32), header=image.wcs.to_header(),
                                name=f"{role}_{band}")
            hdu.header["BUNIT"] = unit_to_bunit(u.nanomaggy)
            hdus.append(hdu)
    return fits.HDUList(hdus)


def _read_pair(path, bands):
    with open_fits(path) as hdul:
        images = []
        for role in _ROLES:
            try:
                planes = [hdul[f"{role}_{band}"].data.astype(np.float32) for band in bands]
            except KeyError as exc:
                raise FITSReadError(f"{path}: not a training pair of bands {bands} "
                                    f"({exc})") from exc
            images.append(_Stamp(np.stack(planes), WCS(hdul[f"{role}_{bands[0]}"].header)))
    return tuple(images)


def _readable(path):
    try:
        with open_fits(path):
            return True
    except FITSReadError:
        return False
