# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""PSFGAN (Stark et al. 2018): remove an AGN's point source, keep its host galaxy."""

import numpy as np
from keras import ops

from ..exceptions import ImageTooSmallError, InvalidParameterError, ShapeMismatchError
from ..morphology.decomposition import (FLAG_CLIPPED, SourceBox, decomposition_table,
                                        host_photometry, point_source_photometry,
                                        prepare_agn_images)
from .base import ImageToImageModel, _mean_and_spread
from .networks import NETWORK_CONFIGS, central_window, unet_generator, window_discriminator

__all__ = ["PSFGAN"]


class PSFGAN(ImageToImageModel):
    """PSFGAN (Stark et al. 2018): remove an AGN's point source, keep its host galaxy.

    A conditional GAN trained on pairs (a galaxy with an artificial point
    source at its centre, the galaxy alone) made by
    `~galaxyml.datasets.make_psfgan_pairs`.  The generator is the pix2pix
    U-Net; the discriminator sees only the central window, where the point
    source sits, with the condition (`~galaxyml.gan.window_discriminator`);
    the generator's reconstruction loss is
    ``l1_weight * (image_l1_fraction * L1(image) + L1(window))``, the
    paper's 0.05 x 100 and 100; Adam runs at the paper's 9e-5 with
    beta_1 = 0.5.  Training, files and the card are those of
    `~galaxyml.gan.ImageToImageModel`.

    Beyond the paper, ``residual=True`` makes the generator return the
    input minus what it learns to take away (`~galaxyml.gan.unet_generator`):
    pixels away from the point source keep their values and noise.

    Parameters
    ----------
    config : {'small', 'paper'}
        Network size, see `~galaxyml.gan.NETWORK_CONFIGS`.
    bands : sequence of str
        The one band of the images (the paper's r).
    stretch : `~galaxyml.stretch.PSFGANStretch`, optional
        Between nanomaggies and the network; by default that of the
        training pairs (its maximum is chosen per data set).
    image_size : int
        Side of the training stamps and of the box the network sees around
        the point source; a multiple of the generator's stride.
    window : int
        Side of the central window (the point-source region).
    l1_weight : float
        Weight of the L1 term over the window (the paper's 100).
    image_l1_fraction : float
        Weight of the L1 term over the whole image, as a fraction of
        ``l1_weight`` (the paper's 0.05).
    residual : bool
        The residual generator (False: the paper's).
    seed : int
        Seed of the initial weights, the dropout and the data order.
    """

    model_type = "PSFGAN"
    pretrained_file = "psfgan-small.keras"
    hyperparameters = ("image_size", "window", "l1_weight", "image_l1_fraction", "residual")
    default_learning_rate = 9e-5

    def __init__(self, config="small", bands=("r",), stretch=None, image_size=64, window=32,
                 l1_weight=100.0, image_l1_fraction=0.05, residual=False, seed=0):
        if len(tuple(bands)) != 1:
            raise InvalidParameterError(f"PSFGAN works on one band, not {tuple(bands)}")
        self.image_size = int(image_size)
        self.window = int(window)
        self.l1_weight = float(l1_weight)
        self.image_l1_fraction = float(image_l1_fraction)
        self.residual = bool(residual)
        super().__init__(config, bands, stretch, seed)
        if self.image_size % self.size_multiple:
            raise InvalidParameterError(f"image_size must be a multiple of {self.size_multiple} "
                                        f"for the {config} network, not {self.image_size}")
        if not 0 < self.window <= self.image_size:
            raise InvalidParameterError(f"window ({self.window}) must be positive and at most "
                                        f"image_size ({self.image_size})")

    @property
    def band(self):
        """The band of the images."""
        return self.bands[0]

    @property
    def min_size(self):
        """Smallest image side accepted: the central window must fit."""
        return self.window

    def build_generator(self):
        """The pix2pix U-Net, residual if asked (`~galaxyml.gan.unet_generator`)."""
        filters = NETWORK_CONFIGS[self.config]["generator_filters"]
        return unet_generator(1, 1, filters, seed=self.seed, residual=self.residual)

    def build_discriminator(self):
        """The central-window discriminator (`~galaxyml.gan.window_discriminator`)."""
        filters = NETWORK_CONFIGS[self.config]["discriminator_filters"]
        return window_discriminator(1, 1, filters, self.image_size, self.window,
                                    seed=self.seed + 1000)

    def reconstruction(self, target, generated):
        """``l1_weight * (image_l1_fraction * L1(image) + L1(central window))``."""
        whole = ops.mean(ops.abs(target - generated))
        window = ops.mean(ops.abs(central_window(target, self.window)
                                  - central_window(generated, self.window)))
        return self.l1_weight * (self.image_l1_fraction * whole + window)

    def _check_samples(self, samples):
        super()._check_samples(samples)
        size = samples.manifest.meta.get("size")
        if size != self.image_size:
            raise ShapeMismatchError(f"the training pairs are {size} pixels on a side; this "
                                     f"PSFGAN has image_size={self.image_size}")

    def remove_point_source(self, image, psf=None, position=None, samples=0, band=None,
                            batch_size=32):
        """Remove the AGN point source: the host galaxy image and the photometry of both.

        The network sees an ``image_size`` box centred on the point source
        (shifted inside larger images at their edges, reflect-padded in
        smaller ones) and returns the host there; outside the box the host
        is the input, and so are pixels outside the central window brighter
        than the stretch's maximum, which the network cannot represent.
        The point-source flux is measured on the residual (input minus
        host) by PSF photometry with ``psf``
        (`~galaxyml.morphology.point_source_photometry`), the host flux in
        the Kron aperture of the host image
        (`~galaxyml.morphology.host_photometry`).

        Parameters
        ----------
        image : `~astropy.nddata.CCDData`, `~galaxyml.io.MultiBandCutout`, array, or list
            In nanomaggies: a CCDData, a cutout (``band`` chooses among
            several bands), a 2-D array, or a batch (a 3-D array or a list).
        psf : `~galaxyml.psf.PSFModel`, 2-D array, path, or list, optional
            The PSF of the point source, or a psField file; by default the
            psField named in the image's metadata (see
            `~galaxyml.morphology.prepare_agn_images`).
        position : tuple of float or `~astropy.coordinates.SkyCoord`, optional
            Where the point source is; by default the centroid of the
            source nearest the image centre.
        samples : int
            0 (the default): deterministic inference.  N > 0: the mean of N
            draws with dropout on; their per-pixel spread is added to the
            host's uncertainty and to the photometric errors.
        band : str, optional
            The band to take from a multi-band cutout.
        batch_size : int
            Boxes per generator call.

        Returns
        -------
        host : same type as ``image``
            In the input's unit, with its WCS and mask (NaN and masked
            pixels are in-painted for the network and stay masked) and, for
            CCDData and cutouts, an uncertainty: the input's, with the
            model's spread added in quadrature when ``samples`` > 0.
        table : `~astropy.table.QTable`
            One row per image, see `~galaxyml.morphology.decomposition_table`.

        Raises
        ------
        BandMismatchError
            A multi-band cutout without ``band``, or a band other than the
            model's.
        ImageTooSmallError
            An image smaller than the central window.
        PositionOffImageError
            A position off the image.
        InvalidPSFError
            A PSF image that cannot be normalised.
        """
        prepared, single = prepare_agn_images(image, psf, position, band, bands=self.bands)
        boxes = [self._box(item) for item in prepared]
        tiles = [self._network_input(box.cut(item.data)[None])
                 for item, box in zip(prepared, boxes)]
        runs = self._draws(tiles, samples, batch_size)
        rows, hosts = [], []
        for k, (item, box) in enumerate(zip(prepared, boxes)):
            mean, std = _mean_and_spread(np.stack([self._from_network(run[k]) for run in runs]),
                                         samples)
            host, spread = item.data.copy(), np.zeros(item.shape)
            host[box.slices] = box.crop(mean[0])
            host = self._keep_bright_neighbours(item, host)
            if samples:
                spread[box.slices] = box.crop(std[0])
            error = np.hypot(item.error, spread)
            point = point_source_photometry(item.data - host, item.psf, (item.x, item.y), error,
                                            mask=item.mask)
            galaxy = host_photometry(host, error, (point["x"], point["y"]), mask=item.mask,
                                     noise=item.sky_noise)
            clipped = (item.data[box.slices] > self.stretch.clip_max).any()
            rows.append({"ps_flux": point["flux"], "ps_flux_err": point["flux_err"],
                         "host_flux": galaxy["flux"], "host_flux_err": galaxy["flux_err"],
                         "x": point["x"], "y": point["y"],
                         "flags": (item.flags | box.flags | point["flags"] | galaxy["flags"]
                                   | (FLAG_CLIPPED if clipped else 0))})
            hosts.append(item.wrap(host, spread if samples else None, method=self.model_type))
        table = decomposition_table(rows, prepared, self.model_type)
        if single:
            return hosts[0], table
        return (np.stack(hosts) if isinstance(image, np.ndarray) else hosts), table

    def _keep_bright_neighbours(self, item, host):
        """The input's pixels where it exceeds the stretch's maximum outside the central
        window: the network cannot represent them (a bright star's core would come back
        at the maximum) and only the point source, in the window, is to be removed."""
        yy, xx = np.indices(item.shape)
        outside = np.maximum(np.abs(xx - item.x), np.abs(yy - item.y)) > self.window / 2
        bright = outside & (item.data > self.stretch.clip_max)
        return np.where(bright, item.data, host)

    def _box(self, item):
        """The ``image_size`` box the network sees around the point source of ``item``."""
        if min(item.shape) < self.min_size:
            raise ImageTooSmallError(f"the image is {item.shape} pixels; PSFGAN needs at least "
                                     f"its {self.window}-pixel central window on a side")
        return SourceBox(item.shape, item.x, item.y, self.image_size)
