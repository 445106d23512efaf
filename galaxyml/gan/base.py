# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The layer every image-to-image network of galaxyml shares: card, files, training, inference.

`ImageToImageModel` holds a pix2pix generator that maps images in
nanomaggies to images in nanomaggies through a stretch.  It knows how to
train it (`ConditionalGAN` through `~galaxyml.distribute.fit_resumable`),
save and load it with its JSON model card, load the model shipped with
galaxyml, and apply it to images of any size.  A network such as
`~galaxyml.gan.GalaxyGAN` is a thin subclass that names itself, lists the
hyperparameters its card keeps, and defines its reconstruction loss (and,
if it needs one, its own discriminator).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from astropy.nddata import CCDData, StdDevUncertainty

from ..distribute import fit_resumable
from ..exceptions import (BandMismatchError, ImageTooSmallError, InvalidParameterError,
                          NotBuiltError, ShapeMismatchError, StretchMismatchError)
from ..io.cutout import MultiBandCutout
from ..models import SavedModel
from ..stretch import stretch_from_dict
from ._tiling import TileBlender, batches_by_shape, cut_tiles, inpaint
from .conditional_gan import ConditionalGAN
from .networks import NETWORK_CONFIGS, patchgan_discriminator, unet_generator

__all__ = ["ImageToImageModel"]


class ImageToImageModel(SavedModel):
    """Base class of galaxyml's image-to-image networks (images in and out in nanomaggies).

    Subclasses set `model_type` (the card's type name), `pretrained_file`
    (the shipped model under ``galaxyml/gan/data``), `hyperparameters`
    (constructor arguments kept in the card and passed back by `load`),
    `default_learning_rate` (their paper's), and implement
    `reconstruction`.

    Parameters
    ----------
    config : {'small', 'paper'}
        Network size, see `~galaxyml.gan.NETWORK_CONFIGS`.
    bands : sequence of str
        Bands, in channel order.
    stretch : `~galaxyml.stretch.ImageStretch` or None
        Between nanomaggies and the network; stretched values in its
        ``network_range`` ([0, 1] for GalaxyGAN's) map to the generator's
        tanh range [-1, 1].  None: the stretch of
        the first training samples (`train`), for stretches whose range
        comes from the data set.
    seed : int
        Seed of the initial weights, the dropout and the data order.
    """

    pretrained_package = "galaxyml.gan"
    network_attribute = "generator"
    #: Constructor arguments of the subclass that the model card records besides
    #: ``config``, ``bands``, ``stretch`` and ``seed``.
    hyperparameters = ()
    #: Adam's learning rate when `train` is given none (the paper's).
    default_learning_rate = 2e-4

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.card_arguments = ("config", "bands", "stretch", "seed") + tuple(cls.hyperparameters)

    def __init__(self, config, bands, stretch, seed=0):
        if config not in NETWORK_CONFIGS:
            raise InvalidParameterError(f"config must be one of {sorted(NETWORK_CONFIGS)}, "
                                        f"not {config!r}")
        self.config = config
        self.bands = tuple(bands)
        self.stretch = stretch
        self.seed = int(seed)
        self.card = {}
        self.generator = self.build_generator()

    @property
    def uncertainty_calibration(self):
        """``(scale, exponent)`` that turn the dropout draws' spread into a calibrated
        1-sigma uncertainty, ``scale * spread ** exponent`` with the spread in
        nanomaggies: the model card's ``uncertainty``, fitted on training pairs by
        `~galaxyml.restoration.fit_uncertainty_calibration` (``(1, 1)``, the raw
        spread, where the card has none)."""
        calibration = self.card.get("uncertainty", {})
        return float(calibration.get("scale", 1.0)), float(calibration.get("exponent", 1.0))

    def calibrated_uncertainty(self, spread):
        """The 1-sigma uncertainty (nanomaggies) for a spread of dropout draws (nanomaggies),
        through `uncertainty_calibration`."""
        scale, exponent = self.uncertainty_calibration
        return scale * np.asarray(spread) ** exponent

    @property
    def tile_size(self):
        """Side of the tiles large images are processed in (the training size)."""
        return NETWORK_CONFIGS[self.config]["image_size"]

    @property
    def size_multiple(self):
        """Image sides must be multiples of this (2 ** depth); smaller ones are padded."""
        return 2 ** len(NETWORK_CONFIGS[self.config]["generator_filters"])

    @property
    def min_size(self):
        """Smallest image side accepted: a quarter of `size_multiple`."""
        return self.size_multiple // 4

    def __repr__(self):
        return (f"<{type(self).__name__} config={self.config} bands={''.join(self.bands)} "
                f"parameters={self.generator.count_params()}>")

    # Networks and training --------------------------------------------------------------

    def build_generator(self):
        """A new U-Net generator for this model's configuration and bands."""
        filters = NETWORK_CONFIGS[self.config]["generator_filters"]
        return unet_generator(len(self.bands), len(self.bands), filters, seed=self.seed)

    def build_discriminator(self):
        """The discriminator of training: the pix2pix PatchGAN by default."""
        filters = NETWORK_CONFIGS[self.config]["discriminator_filters"]
        return patchgan_discriminator(len(self.bands), len(self.bands), filters,
                                      seed=self.seed + 1000)

    def reconstruction(self, target, generated):
        """The generator's reconstruction term (a scalar), besides its adversarial loss."""
        raise NotImplementedError

    def build_trainer(self, aggregator=None, learning_rate=None, beta_1=0.5):
        """The compiled `ConditionalGAN` that trains this model's generator.

        Call it in the strategy's scope to train under `tf.distribute`.  The
        optimizers are the aggregator's
        (`~galaxyml.distribute.GradientAggregator.make_optimizer`): Adam
        with ``beta_1`` really passed for the float mean, Signum with
        momentum ``beta_1`` for the majority vote; the learning rate is
        `default_learning_rate` unless given.
        """
        learning_rate = self.default_learning_rate if learning_rate is None else learning_rate
        gan = ConditionalGAN(self.generator, self.build_discriminator(), aggregator=aggregator,
                             reconstruction=self.reconstruction,
                             data_range=self.stretch.network_range)
        gan.compile(gan.aggregator.make_optimizer(learning_rate, beta_1),
                    gan.aggregator.make_optimizer(learning_rate, beta_1))
        gan.build_aggregation()
        return gan

    def train(self, samples, steps, batch_size=8, validation=None, checkpoint_dir=None,
              checkpoint_every=100, strategy=None, aggregator=None, log_path=None,
              learning_rate=None, beta_1=0.5, in_memory=False, time_limit=None,
              progress=True):
        """Train on `~galaxyml.datasets.TrainingPairs` made with this model's bands and stretch.

        Parameters
        ----------
        samples, validation : `~galaxyml.datasets.TrainingPairs`
            Training and (optional) validation pairs.
        steps, batch_size, checkpoint_dir, checkpoint_every, log_path, time_limit, progress
            See `~galaxyml.distribute.fit_resumable`; a run with the same
            ``checkpoint_dir`` resumes exactly.
        strategy : `tf.distribute.Strategy`, optional
            Train under it (for example `tf.distribute.MirroredStrategy`).
        aggregator : str or `~galaxyml.distribute.GradientAggregator`, optional
            How replicas combine gradients: ``"mean"`` (Keras's float
            all-reduce, with Adam; the default) or ``"majority_vote"``
            (signSGD with majority vote, with Signum).
        learning_rate : float or `keras.optimizers.schedules.LearningRateSchedule`, optional
            The paper's (`default_learning_rate`) by default.
        beta_1 : float
            First-moment decay (Adam's beta_1, Signum's momentum), the
            papers' 0.5 by default.
        in_memory : bool
            Make every pair once, before training, and keep them in memory
            (`~galaxyml.datasets.SampleSet.in_memory`): faster when making
            a pair costs more than a training step.

        Returns
        -------
        history : dict
            Metric name -> values per epoch of ``checkpoint_every`` steps.
        """
        if self.stretch is None:
            self.stretch = samples.stretch
        self._check_samples(samples)
        samples, validation = (None if pairs is None else self.network_samples(pairs)
                               for pairs in (samples, validation))
        if in_memory:
            samples, validation = (None if pairs is None else pairs.in_memory(progress=progress)
                                   for pairs in (samples, validation))
        keras.utils.set_random_seed(self.seed)
        learning_rate = self.default_learning_rate if learning_rate is None else learning_rate
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            if strategy is not None:
                # Variables must be created under the strategy: rebuild the generator there.
                weights = self.generator.get_weights()
                self.generator = self.build_generator()
                self.generator.set_weights(weights)
            trainer = self.build_trainer(aggregator, learning_rate, beta_1)
        history = fit_resumable(trainer, samples, steps, batch_size=batch_size, seed=self.seed,
                                checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                                validation=validation, log_path=log_path,
                                time_limit=time_limit, progress=progress)
        self.card.setdefault("training", {}).update(
            steps=int(trainer.generator_optimizer.iterations.numpy()), batch_size=batch_size,
            learning_rate=_describe(learning_rate),
            beta_1=beta_1, seed=self.seed, n_pairs=len(samples),
            strategy=type(strategy).__name__ if strategy else "default",
            aggregator=type(trainer.aggregator).__name__,
            **{name: getattr(self, name) for name in self.hyperparameters})
        return history

    def network_samples(self, pairs):
        """The pairs as the network trains on them (these pairs, unless a subclass adds
        inputs to the condition)."""
        return pairs

    def _check_samples(self, samples):
        if tuple(samples.bands) != self.bands:
            raise BandMismatchError(f"the training samples have bands {samples.bands}, the "
                                    f"model {self.bands}")
        if samples.stretch.to_dict() != self.stretch.to_dict():
            raise StretchMismatchError(f"the training samples use the stretch "
                                       f"{samples.stretch.to_dict()}, the model "
                                       f"{self.stretch.to_dict()}")

    # Model card and files (`~galaxyml.models.SavedModel`) -----------------------------

    def _card_value(self, name):
        if name == "stretch":
            return None if self.stretch is None else self.stretch.to_dict()
        return super()._card_value(name)

    @classmethod
    def _argument_from_card(cls, name, value):
        if name == "stretch":
            return None if value is None else stretch_from_dict(value)
        return value

    # Inference --------------------------------------------------------------------------

    def transform(self, images, samples=None, batch_size=16, overlap=None, **inputs):
        """Apply the generator to images in nanomaggies: stretch, network, inverse stretch.

        Parameters
        ----------
        images : `~galaxyml.io.MultiBandCutout`, `~astropy.nddata.CCDData`, array, or list
            In nanomaggies: a cutout with the model's bands, a CCDData (a
            one-band model), an array (n_bands, ny, nx) (or (ny, nx) for a
            one-band model), a batch array (n_images, n_bands, ny, nx), or
            a list of these.  Images of any size are processed together,
            in batches of tiles of one shape.
        samples : int, optional
            Draw this many outputs with dropout on and return their mean,
            with their per-pixel standard deviation as the uncertainty.  By
            default inference is deterministic (no dropout, batch
            normalisation with its learnt statistics).
        batch_size : int
            Tiles per generator call.
        overlap : int, optional
            Overlap of the tiles of images larger than `tile_size`; a
            quarter of a tile by default.  Tiles are blended with tapered
            weights, so no seams show.
        **inputs
            What else a subclass's network is told about the images (see
            its ``_network_input``): one value for all images, or a list
            with one per image.

        Returns
        -------
        output : same type as ``images``
            In nanomaggies, with the WCS, metadata and mask (NaN and masked
            pixels are in-painted for the network and stay masked).  Arrays
            come back as arrays, or ``(mean, std)`` with ``samples``.
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            outputs = self.transform(list(images), samples, batch_size, overlap, **inputs)
            return np.stack(outputs) if not samples else tuple(
                np.stack(part) for part in zip(*outputs))
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        arrays, masks = zip(*(self._as_array(item) for item in items))
        per_image = [{} for _ in items]
        for name, value in inputs.items():
            per_item = isinstance(value, (list, tuple)) and not single
            values = value if per_item else [value] * len(items)
            if len(values) != len(items):
                raise ShapeMismatchError(f"{name} has {len(values)} values for {len(items)} images")
            for context, item_value in zip(per_image, values):
                context[name] = item_value
        outputs = self._transform_arrays(list(arrays), samples, batch_size, overlap, per_image)
        results = [self._wrap(item, mean, std, mask)
                   for item, (mean, std), mask in zip(items, outputs, masks)]
        return results[0] if single else results

    def _as_array(self, image):
        """(data, mask) of one image, (n_bands, ny, nx) in nanomaggies, NaNs in-painted."""
        if isinstance(image, MultiBandCutout):
            if tuple(image.bands) != self.bands:
                raise BandMismatchError(f"the cutout has bands {image.bands}; the model was "
                                        f"trained on {self.bands}")
            data = image.data * image.unit.to("nmgy")
            mask = image.mask.copy()
        elif isinstance(image, CCDData):
            if len(self.bands) != 1:
                raise BandMismatchError(f"a CCDData holds one band; the model needs "
                                        f"{self.bands} (pass a MultiBandCutout)")
            data = np.asarray(image.data)[None] * image.unit.to("nmgy")
            mask = (np.zeros(data.shape, bool) if image.mask is None
                    else np.asarray(image.mask, bool)[None])
        else:
            data = np.asarray(image, dtype=float)
            if data.ndim == 2 and len(self.bands) == 1:
                data = data[None]
            if data.ndim != 3 or data.shape[0] != len(self.bands):
                raise BandMismatchError(f"an array must have shape (n_bands={len(self.bands)}, "
                                        f"ny, nx), not {data.shape}")
            mask = np.zeros(data.shape, bool)
        if min(data.shape[1:]) < self.min_size:
            raise ImageTooSmallError(f"the image is {data.shape[1:]} pixels; the network needs "
                                     f"at least {self.min_size} on a side (padded to a multiple "
                                     f"of {self.size_multiple})")
        mask = mask | ~np.isfinite(data)
        return inpaint(np.asarray(data, float), mask), mask

    def _transform_arrays(self, arrays, samples, batch_size, overlap, inputs):
        """(mean, std or None) in nanomaggies for each (n_bands, ny, nx) array, given the
        keyword arguments of `_network_input` for each.

        Images go through the network a group at a time (at most
        ``_GROUP_BATCHES`` batches of tiles, or one image's tiles), and each
        dropout draw is folded into a running mean and variance as soon as
        it is blended, so that memory holds one group's tiles and one draw,
        whatever the number of images and of draws.
        """
        overlap = self.tile_size // 4 if overlap is None else int(overlap)
        results = []
        for group in self._tile_groups(arrays, inputs, overlap, _GROUP_BATCHES * batch_size):
            results.extend(self._transform_group(group, samples, batch_size, overlap))
        return results

    def _tile_groups(self, arrays, inputs, overlap, max_tiles):
        """Lists of (shape, [(origin, tile), ...]) per image, each list with at most
        ``max_tiles`` tiles (or one image's, where it has more)."""
        group, count = [], 0
        for data, context in zip(arrays, inputs):
            cut = cut_tiles(self._network_input(data, **context), self.tile_size, overlap,
                            self.size_multiple)
            if group and count + len(cut) > max_tiles:
                yield group
                group, count = [], 0
            group.append((data.shape[1:], cut))
            count += len(cut)
        if group:
            yield group

    def _transform_group(self, group, samples, batch_size, overlap):
        """(mean, std or None) of the images of one group, draw after draw; each batch's
        outputs are blended into their images as soon as they come."""
        tiles = [tile for _, cut in group for _, tile in cut]
        owners = [(number, index) for number, (_, cut) in enumerate(group)
                  for index in range(len(cut))]
        moments = [_RunningMoments() for _ in group]
        for _ in range(int(samples) if samples else 1):
            blenders = [TileBlender([o for o, _ in cut], shape, overlap) for shape, cut in group]
            for indices, outputs in self._batches(tiles, batch_size, training=bool(samples)):
                for k, output in zip(indices, outputs):
                    number, index = owners[k]
                    blenders[number].add(index, output)
            for blender, image_moments in zip(blenders, moments):
                image_moments.add(self._from_network(blender.result()))
        return [(image_moments.mean, self.calibrated_uncertainty(image_moments.std)
                 if samples else None) for image_moments in moments]

    def _network_input(self, data):
        """(n_bands, ny, nx) nanomaggies -> (ny, nx, n_bands) in the generator's range [-1, 1]."""
        return self._to_generator_range(np.moveaxis(self._stretched(data), 0, -1))

    def _stretched(self, data):
        """``data`` in nanomaggies through the model's stretch (no clipping warning)."""
        if self.stretch is None:
            raise NotBuiltError(f"this {self.model_type} has no stretch yet: train it, load a "
                                "trained one, or pass stretch=")
        return self.stretch(data, warn=False)

    def _to_generator_range(self, stretched):
        """Stretched values: ``network_range`` mapped to [-1, 1], as `ConditionalGAN` does."""
        low, high = self.stretch.network_range
        return (stretched - low) * (2 / (high - low)) - 1

    def _from_generator_range(self, output):
        """[-1, 1] mapped back to ``network_range`` (arrays or tensors): `_to_generator_range`'s
        inverse."""
        low, high = self.stretch.network_range
        return low + (output + 1) * ((high - low) / 2)

    def _from_network(self, output):
        """Generator output (ny, nx, n_bands) in [-1, 1] -> nanomaggies, same axes."""
        return self.stretch.inverse(self._from_generator_range(output))

    def _draws(self, tiles, samples, batch_size):
        """Generator outputs for the tiles: one run, or ``samples`` runs with dropout on."""
        return [self._run(tiles, batch_size, training=bool(samples))
                for _ in range(int(samples) if samples else 1)]

    def _run(self, tiles, batch_size, training):
        """Generator outputs for a list of tiles, in batches of tiles of one shape."""
        outputs = [None] * len(tiles)
        for indices, generated in self._batches(tiles, batch_size, training):
            for k, output in zip(indices, generated):
                outputs[k] = output
        return outputs

    def _batches(self, tiles, batch_size, training):
        """(tile indices, generator outputs) of each batch of tiles of one shape, in turn."""
        batch_norms = [layer for layer in self.generator.layers
                       if isinstance(layer, keras.layers.BatchNormalization)]
        if training:
            # Dropout on, batch normalisation kept in inference mode (Keras 3 runs a
            # non-trainable BatchNormalization with its moving statistics).
            for layer in batch_norms:
                layer.trainable = False
        try:
            generate = self._compiled_generator(training)
            for indices in batches_by_shape(tiles, batch_size):
                batch = np.stack([tiles[k] for k in indices]).astype(np.float32)
                yield indices, np.asarray(generate(batch))
        finally:
            for layer in batch_norms:
                layer.trainable = True

    def _compiled_generator(self, training):
        """The generator as a compiled `tf.function` (an eager Keras call costs tens of
        milliseconds, most of a galaxy's time at batch 1), kept per generator and mode."""
        key = (id(self.generator), bool(training))
        compiled = self.__dict__.setdefault("_compiled", {})
        if key not in compiled:
            generator = self.generator
            for stale in [k for k in compiled if k[0] != key[0]]:  # a replaced generator's
                del compiled[stale]
            compiled[key] = tf.function(lambda batch: generator(batch, training=training),
                                        reduce_retracing=True)
        return compiled[key]

    def _wrap(self, image, mean, std, mask):
        """The output in the input's type, with its WCS, metadata and mask."""
        mean = mean.astype(np.float32)
        meta_key = {"recovered_by": self.model_type}
        if isinstance(image, MultiBandCutout):
            unit_scale = image.unit.to("nmgy")
            return MultiBandCutout(mean / unit_scale, image.bands, image.wcs.deepcopy(),
                                   image.unit, uncertainty=None if std is None
                                   else (std / unit_scale).astype(np.float32),
                                   mask=mask, meta=dict(image.meta, **meta_key))
        if isinstance(image, CCDData):
            unit_scale = image.unit.to("nmgy")
            uncertainty = None if std is None else StdDevUncertainty(std[0] / unit_scale)
            return CCDData(mean[0] / unit_scale, unit=image.unit, wcs=image.wcs,
                           uncertainty=uncertainty, mask=mask[0],
                           meta=dict(image.meta, **meta_key))
        shape = np.shape(image)
        mean = mean.reshape(shape)
        return mean if std is None else (mean, std.reshape(shape))


def _mean_and_spread(draws, samples):
    """Mean and (with ``samples``) standard deviation of draws (n, ny, nx, n_bands), as
    (n_bands, ny, nx) arrays."""
    moments = _RunningMoments()
    for draw in draws:
        moments.add(draw)
    return moments.mean, moments.std if samples else None


# Batches of tiles that go through the network together before their draws are folded in.
_GROUP_BATCHES = 8


class _RunningMoments:
    """The mean and standard deviation of draws (ny, nx, n_bands) added one at a time
    (Welford's algorithm), as (n_bands, ny, nx) arrays."""

    def __init__(self):
        self.count, self._mean, self._squares = 0, None, None

    def add(self, draw):
        self.count += 1
        if self._mean is None:
            self._mean, self._squares = np.array(draw, dtype=float), 0.0
            return
        delta = draw - self._mean
        self._mean += delta / self.count
        self._squares = self._squares + delta * (draw - self._mean)

    @property
    def mean(self):
        return np.moveaxis(self._mean, -1, 0)

    @property
    def std(self):
        return np.moveaxis(np.sqrt(self._squares / self.count) * np.ones_like(self._mean), -1, 0)


def _describe(learning_rate):
    """A learning rate for the model card: the number, or the schedule's configuration."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return keras.optimizers.schedules.serialize(learning_rate)
    return float(learning_rate)
