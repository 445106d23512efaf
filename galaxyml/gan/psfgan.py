# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""PSFGAN (Stark et al. 2018): remove an AGN's point source, keep its host galaxy."""

import numpy as np
from keras import ops

from ..datasets.pairs import TrainingPairs
from ..exceptions import ImageTooSmallError, InvalidParameterError, ShapeMismatchError
from ..morphology.decomposition import (FLAG_CLIPPED, DecompositionErrors, SourceBox,
                                        decide_and_measure, prepare_agn_images, render_psf)
from ..morphology.pointsource import place_psf, psf_photometry
from ..psf.sdss import SDSSPSFBasis
from .base import ImageToImageModel, _mean_and_spread
from .networks import NETWORK_CONFIGS, central_window, unet_generator, window_discriminator

__all__ = ["PSFGAN", "PSFGAN_MODES"]

#: The generators: ``paper`` (the pix2pix U-Net ending in tanh), ``residual`` (the
#: input minus what the U-Net learns to take away) and ``refine`` (PSF photometry's
#: residual, image minus the fitted PSF, plus the U-Net's correction).
PSFGAN_MODES = ("paper", "residual", "refine")


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

    Beyond the paper, ``mode='residual'`` makes the generator return the
    input minus what it learns to take away (`~galaxyml.gan.unet_generator`),
    and ``mode='refine'`` gives it what PSF photometry alone finds: it sees
    the image, the image minus the PSF fitted at the point source
    (`~galaxyml.morphology.psf_photometry`) and the PSF itself, and adds a
    correction to that residual, which it starts from (an untrained refine
    network is PSF photometry).

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
        Side of the central window (the point-source region): the host
        differs from the input only there.
    l1_weight : float
        Weight of the L1 term over the window (the paper's 100).
    image_l1_fraction : float
        Weight of the L1 term over the whole image, as a fraction of
        ``l1_weight`` (the paper's 0.05).
    mode : {'paper', 'residual', 'refine'}
        The generator, see `PSFGAN_MODES`.
    seed : int
        Seed of the initial weights, the dropout and the data order.
    """

    model_type = "PSFGAN"
    pretrained_file = "psfgan-small.keras"
    hyperparameters = ("image_size", "window", "l1_weight", "image_l1_fraction", "mode")
    default_learning_rate = 9e-5

    def __init__(self, config="small", bands=("r",), stretch=None, image_size=64, window=32,
                 l1_weight=100.0, image_l1_fraction=0.05, mode="residual", seed=0):
        if len(tuple(bands)) != 1:
            raise InvalidParameterError(f"PSFGAN works on one band, not {tuple(bands)}")
        if mode not in PSFGAN_MODES:
            raise InvalidParameterError(f"mode must be one of {PSFGAN_MODES}, not {mode!r}")
        self.image_size = int(image_size)
        self.window = int(window)
        self.l1_weight = float(l1_weight)
        self.image_l1_fraction = float(image_l1_fraction)
        self.mode = mode
        super().__init__(config, bands, stretch, seed)
        if self.image_size % self.size_multiple:
            raise InvalidParameterError(f"image_size must be a multiple of {self.size_multiple} "
                                        f"for the {config} network, not {self.image_size}")
        if not 0 < self.window <= self.image_size:
            raise InvalidParameterError(f"window ({self.window}) must be positive and at most "
                                        f"image_size ({self.image_size})")

    @classmethod
    def read_card(cls, path):
        card = super().read_card(path)
        if "mode" not in card and "residual" in card:  # cards written before the modes
            card["mode"] = "residual" if card["residual"] else "paper"
        return card

    @property
    def band(self):
        """The band of the images."""
        return self.bands[0]

    @property
    def min_size(self):
        """Smallest image side accepted: the central window must fit."""
        return self.window

    @property
    def condition_channels(self):
        """Channels the generator sees: the image, or (refine) the image, PSF
        photometry's residual and the PSF."""
        return 3 if self.mode == "refine" else 1

    @property
    def error_model(self):
        """The calibrated errors of the decomposition: the card's ``error_model``
        (`~galaxyml.morphology.DecompositionErrors`; the photometric errors alone
        where the card has none)."""
        return DecompositionErrors.from_dict(self.card.get("error_model"))

    def build_generator(self):
        """The pix2pix U-Net: residual, or refining PSF photometry's residual, if asked
        (`~galaxyml.gan.unet_generator`)."""
        filters = NETWORK_CONFIGS[self.config]["generator_filters"]
        return unet_generator(self.condition_channels, 1, filters, seed=self.seed,
                              residual=self.mode == "residual",
                              refine_channels=1 if self.mode == "refine" else None)

    def build_discriminator(self):
        """The central-window discriminator (`~galaxyml.gan.window_discriminator`)."""
        filters = NETWORK_CONFIGS[self.config]["discriminator_filters"]
        return window_discriminator(self.condition_channels, 1, filters, self.image_size,
                                    self.window, seed=self.seed + 1000)

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

    def network_samples(self, pairs):
        """The pairs as the network trains on them: in refine mode each condition gets
        PSF photometry's residual and the PSF (the psField's, at the galaxy's
        position on the frame: what the user gives), as in `remove_point_source`."""
        return pairs if self.mode != "refine" else _RefinementPairs(pairs, self)

    def refinement_condition(self, boxes, kernels, positions, fit=None):
        """What the refine network sees, in stretched units: (n, ny, nx, 3).

        Channels: the stretched image; the stretched image minus the PSF
        fitted at the point source (`~galaxyml.morphology.psf_photometry`);
        the PSF at the point source scaled to the stretch's network range
        (its peak at the top).

        Parameters
        ----------
        boxes : array (n, ny, nx)
            The images the network sees, in nanomaggies.
        kernels : sequence of 2-D arrays
            Their PSFs (odd sides, unit sum).
        positions : array (n, 2)
            (x, y) of the point sources in the boxes.
        fit : `~galaxyml.morphology.PointSourceFit`, optional
            The PSF photometry of the boxes, if already made.
        """
        boxes = np.asarray(boxes, float)
        errors = np.ones_like(boxes)  # the fit's weights: uniform, as the network sees pixels
        if fit is None:
            fit = psf_photometry(boxes, errors, kernels, positions)
        centred = np.c_[fit.x, fit.y]
        point = place_psf(boxes.shape[1:], kernels, centred, np.where(fit.ok, fit.flux, 0.0))
        shape = place_psf(boxes.shape[1:], kernels, centred, np.ones(len(boxes)))
        low, high = self.stretch.network_range
        peak = shape.max(axis=(1, 2), keepdims=True)
        condition = np.empty(boxes.shape + (3,), np.float32)
        condition[..., 0] = self._stretched(boxes)
        condition[..., 1] = self._stretched(boxes - point)
        condition[..., 2] = low + (high - low) * shape / np.where(peak > 0, peak, 1.0)
        return condition

    def _from_network(self, output):
        """Generator output -> nanomaggies.  The refine mode's output is linear: it is
        limited to [-1, 1], the stretch's range."""
        if self.mode == "refine":
            output = np.clip(output, -1.0, 1.0)
        return super()._from_network(output)

    def remove_point_source(self, image, psf=None, position=None, samples=0, band=None,
                            batch_size=32, threshold=None, errors=None):
        """Remove the AGN point source if there is one: the host image and the photometry.

        The network sees an ``image_size`` box centred on the point source
        (shifted inside larger images at their edges, reflect-padded in
        smaller ones) and returns the host there; only the central
        ``window`` changes, and not where another source detected in the
        input lies: elsewhere the host is the input, bit for bit.  The
        point-source flux is measured on the residual (input minus host) by
        PSF photometry (`~galaxyml.morphology.psf_photometry`), the host
        flux in the Kron aperture of the host image
        (`~galaxyml.morphology.host_photometry`); both errors include the
        model's own, calibrated on training pairs (`error_model`).  The
        point source is detected when its flux over that error exceeds
        ``threshold``; where it is not, the host is the input and the
        point-source flux an upper limit
        (`~galaxyml.morphology.decide_and_measure`).

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
        threshold : float, optional
            Detection threshold in ``ps_snr``; by default
            ``galaxyml.morphology.conf.detection_threshold``.
        errors : `~galaxyml.morphology.DecompositionErrors`, optional
            The calibrated errors; by default `error_model`, the card's.

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
        PSFError
            No PSF, or one sampled on other pixels than the image's.
        InvalidPSFError
            A PSF image that cannot be normalised.
        """
        prepared, single = prepare_agn_images(image, psf, position, band, bands=self.bands,
                                              window=self.window)
        hosts, spreads, flags = self._network_hosts(prepared, samples, batch_size)
        for item, flag in zip(prepared, flags):
            item.flags |= flag
        errors = self.error_model if errors is None else errors
        table, host_images = decide_and_measure(prepared, hosts, errors, self.model_type,
                                                threshold, spreads)
        hosts = [item.wrap(host, spread if samples else None, method=self.model_type)
                 for item, host, spread in zip(prepared, host_images, spreads)]
        if single:
            return hosts[0], table
        return (np.stack(hosts) if isinstance(image, np.ndarray) else hosts), table

    def _network_hosts(self, prepared, samples, batch_size):
        """(hosts, spreads, flags): the host images the network makes, each the input
        outside its central window and over other sources; the dropout spread; flags."""
        boxes = [self._box(item) for item in prepared]
        cut = np.stack([box.cut(item.data) for item, box in zip(prepared, boxes)])
        positions = np.array([box.to_box(item.x, item.y) for item, box in zip(prepared, boxes)])
        tiles = list(self._network_inputs(prepared, cut, positions))
        runs = self._draws(tiles, samples, batch_size)
        hosts, spreads, flags = [], [], []
        for k, (item, box) in enumerate(zip(prepared, boxes)):
            mean, std = _mean_and_spread(np.stack([self._from_network(run[k]) for run in runs]),
                                         samples)
            changed, clipped = self._changeable(item, box)
            host, spread = item.data.copy(), np.zeros(item.shape)
            host[box.slices] = np.where(changed, box.crop(mean[0]), item.data[box.slices])
            if samples:
                spread[box.slices] = np.where(changed, box.crop(std[0]), 0.0)
            hosts.append(host)
            spreads.append(spread)
            flags.append(box.flags | (FLAG_CLIPPED if clipped else 0))
        return hosts, spreads, flags

    def _network_inputs(self, prepared, cut, positions):
        """The generator's inputs (ny, nx, channels) in [-1, 1] for the boxes."""
        if self.mode != "refine":
            return self._to_generator_range(self._stretched(cut)[..., None]).astype(np.float32)
        kernels = [item.kernel for item in prepared]
        condition = self.refinement_condition(cut, kernels, positions)
        return self._to_generator_range(condition).astype(np.float32)

    def _changeable(self, item, box):
        """The pixels of the box (cut to the image) that the host may change: the central
        ``window`` around the point source, except other sources' pixels and pixels
        brighter than the stretch's maximum (which the network cannot represent); and
        whether the window holds such bright pixels."""
        yy, xx = np.mgrid[box.slices]
        half = self.window / 2
        inside = (np.abs(xx - item.x) < half) & (np.abs(yy - item.y) < half)
        bright = item.data[box.slices] > self.stretch.clip_max
        return inside & ~item.neighbours[box.slices] & ~bright, bool((inside & bright).any())

    def _box(self, item):
        """The ``image_size`` box the network sees around the point source of ``item``."""
        if min(item.shape) < self.min_size:
            raise ImageTooSmallError(f"the image is {item.shape} pixels; PSFGAN needs at least "
                                     f"its {self.window}-pixel central window on a side")
        return SourceBox(item.shape, item.x, item.y, self.image_size)


class _RefinementPairs(TrainingPairs):
    """PSFGAN pairs whose conditions are what the refine network sees."""

    def __init__(self, pairs, model):
        super().__init__(pairs.manifest, pairs._make)
        self._model = model
        self._basis = SDSSPSFBasis(pairs.manifest.meta["psfield"], pairs.bands[0])

    def sample(self, index):
        condition, target = self.linear_sample(index)
        row = self.manifest[index]
        kernel = render_psf(self._basis.at(float(row["frame_y"]), float(row["frame_x"])))
        network_input = self._model.refinement_condition(
            condition.data[:1], [kernel], [(float(row["x_ps"]), float(row["y_ps"]))])[0]
        stretched = np.moveaxis(self.stretch(target.data, warn=False), 0, -1)
        return network_input, stretched.astype(np.float32)
