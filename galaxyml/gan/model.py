# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN for users: train, save, load and recover galaxy images in nanomaggies."""

import json
from importlib import resources
from pathlib import Path

import keras
import numpy as np
from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans
from astropy.nddata import CCDData, StdDevUncertainty

from .. import __version__
from ..exceptions import BandMismatchError, ImageTooSmallError, ModelTypeError
from ..io.cutout import MultiBandCutout
from ..io.writing import atomic_output
from ..stretch import GalaxyGANStretch, stretch_from_dict
from .networks import NETWORK_CONFIGS, patchgan_discriminator, unet_generator
from .trainer import ConditionalGAN, l1_reconstruction
from .training import fit_gan

__all__ = ["GalaxyGAN"]

_MODEL_TYPE = "GalaxyGAN"
_PRETRAINED = "galaxygan-small.keras"


class GalaxyGAN:
    """GalaxyGAN (Schawinski et al. 2017): recover galaxy features from degraded images.

    Parameters
    ----------
    config : {'small', 'paper'}
        Network size, see `~galaxyml.gan.NETWORK_CONFIGS`.
    bands : sequence of str
        Bands, in channel order.
    stretch : `~galaxyml.stretch.ImageStretch`, optional
        Between nanomaggies and the network; `~galaxyml.stretch.GalaxyGANStretch`
        by default.  Stretched values in [0, 1] map to the tanh range [-1, 1].
    l1_weight : float
        lambda of the L1 term.
    seed : int
        Seed of the initial weights and the dropout.
    """

    def __init__(self, config="small", bands=("g", "r", "i"), stretch=None, l1_weight=100.0,
                 seed=0):
        if config not in NETWORK_CONFIGS:
            raise ValueError(f"config must be one of {sorted(NETWORK_CONFIGS)}, not {config!r}")
        self.config = config
        self.bands = tuple(bands)
        self.stretch = stretch or GalaxyGANStretch()
        self.l1_weight = float(l1_weight)
        self.seed = int(seed)
        self.card = {}
        filters = NETWORK_CONFIGS[config]["generator_filters"]
        self.generator = unet_generator(len(self.bands), len(self.bands), filters, seed=seed)

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
        return (f"<GalaxyGAN config={self.config} bands={''.join(self.bands)} "
                f"parameters={self.generator.count_params()}>")

    # Training ---------------------------------------------------------------------------

    def build_trainer(self, aggregator=None, learning_rate=2e-4, beta_1=0.5):
        """The `ConditionalGAN` that trains this model's generator (call in a strategy scope).

        The optimizers are the aggregator's
        (`~galaxyml.distribute.GradientAggregator.make_optimizer`): Adam with
        ``beta_1`` for the float mean, Signum with momentum ``beta_1`` for the
        majority vote.
        """
        filters = NETWORK_CONFIGS[self.config]["discriminator_filters"]
        discriminator = patchgan_discriminator(len(self.bands), len(self.bands), filters,
                                               seed=self.seed + 1000)
        weight = self.l1_weight
        gan = ConditionalGAN(self.generator, discriminator, aggregator=aggregator,
                             reconstruction=lambda t, g: l1_reconstruction(t, g, weight))
        # beta_1 = 0.5 really passed to Adam (the TF port of the paper kept 0.9).
        gan.compile(gan.aggregator.make_optimizer(learning_rate, beta_1),
                    gan.aggregator.make_optimizer(learning_rate, beta_1))
        gan.build_aggregation()
        return gan

    def train(self, pairs, steps, batch_size=8, validation=None, checkpoint_dir=None,
              checkpoint_every=100, strategy=None, aggregator=None, log_path=None,
              learning_rate=2e-4, beta_1=0.5, progress=True):
        """Train on `~galaxyml.datasets.TrainingPairs` (made with the same bands and stretch).

        Parameters
        ----------
        pairs, validation : `~galaxyml.datasets.TrainingPairs`
            Training and (optional) validation pairs.
        steps, batch_size, checkpoint_dir, checkpoint_every, log_path, progress
            See `~galaxyml.gan.fit_gan`; a run with the same ``checkpoint_dir``
            resumes.
        strategy : `tf.distribute.Strategy`, optional
            Train under it (for example `tf.distribute.MirroredStrategy`).
        aggregator : str or `~galaxyml.distribute.GradientAggregator`, optional
            How replicas combine gradients: ``"mean"`` (Keras's float
            all-reduce, with Adam; the default) or ``"majority_vote"``
            (signSGD with majority vote, with Signum).
        learning_rate : float or `keras.optimizers.schedules.LearningRateSchedule`
            The paper's 2e-4 by default.
        beta_1 : float
            First-moment decay (Adam's beta_1, Signum's momentum), the
            paper's 0.5 by default.

        Returns
        -------
        history : dict
        """
        if tuple(pairs.bands) != self.bands:
            raise BandMismatchError(f"the pairs have bands {pairs.bands}, the model "
                                    f"{self.bands}")
        if pairs.stretch.to_dict() != self.stretch.to_dict():
            raise ValueError(f"the pairs use the stretch {pairs.stretch.to_dict()}, the model "
                             f"{self.stretch.to_dict()}")
        keras.utils.set_random_seed(self.seed)
        if strategy is not None:
            with strategy.scope():
                # Variables must be created under the strategy: rebuild the generator there.
                weights = self.generator.get_weights()
                filters = NETWORK_CONFIGS[self.config]["generator_filters"]
                self.generator = unet_generator(len(self.bands), len(self.bands), filters,
                                                seed=self.seed)
                self.generator.set_weights(weights)
                gan = self.build_trainer(aggregator, learning_rate, beta_1)
        else:
            gan = self.build_trainer(aggregator, learning_rate, beta_1)
        history = fit_gan(gan, pairs, steps, batch_size=batch_size, seed=self.seed,
                          checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                          validation=validation, log_path=log_path, progress=progress)
        self.card.setdefault("training", {}).update(
            steps=steps, batch_size=batch_size, learning_rate=_describe(learning_rate),
            beta_1=beta_1,
            l1_weight=self.l1_weight, seed=self.seed, n_pairs=len(pairs),
            strategy=type(strategy).__name__ if strategy else "default",
            aggregator=type(gan.aggregator).__name__)
        return history

    # Saving -----------------------------------------------------------------------------

    def model_card(self):
        """The JSON model card: model type, bands, stretch, configuration, training, metrics."""
        card = {"model_type": _MODEL_TYPE, "galaxyml_version": __version__,
                "config": self.config, "bands": list(self.bands),
                "stretch": self.stretch.to_dict(), "l1_weight": self.l1_weight,
                "seed": self.seed, "parameters": int(self.generator.count_params())}
        card.update({key: value for key, value in self.card.items() if key not in card})
        return card

    def save(self, path, overwrite=False):
        """Write the generator (``.keras``) and its model card (same name, ``.json``)."""
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"the model file must end in .keras, not {path.name}")
        with atomic_output(path, overwrite=overwrite) as temporary:
            self.generator.save(temporary)
        with atomic_output(path.with_suffix(".json"), overwrite=overwrite) as temporary:
            temporary.write_text(json.dumps(self.model_card(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path):
        """A model written by `save`.

        Raises
        ------
        ModelTypeError
            If the model card is missing or names another model type.
        """
        path = Path(path)
        card_path = path.with_suffix(".json")
        if not card_path.is_file():
            raise ModelTypeError(f"{path}: no model card {card_path.name} beside it, so it is "
                                 "not a galaxyml GalaxyGAN model")
        card = json.loads(card_path.read_text())
        if card.get("model_type") != _MODEL_TYPE:
            raise ModelTypeError(f"{path} is a {card.get('model_type')!r} model, not a "
                                 f"{_MODEL_TYPE}")
        model = cls(config=card["config"], bands=card["bands"],
                    stretch=stretch_from_dict(card["stretch"]), l1_weight=card["l1_weight"],
                    seed=card["seed"])
        model.generator = keras.saving.load_model(path, compile=False)
        model.card = card
        return model

    @classmethod
    def pretrained(cls):
        """The model shipped with galaxyml (trained by ``scripts/train_galaxygan.py``)."""
        path = resources.files("galaxyml.gan") / "data" / _PRETRAINED
        with resources.as_file(path) as local:
            if not Path(local).is_file():
                raise FileNotFoundError(f"the shipped model {_PRETRAINED} is missing from this "
                                        "installation; train one with scripts/train_galaxygan.py")
            return cls.load(local)

    # Inference --------------------------------------------------------------------------

    def recover(self, images, samples=None, batch_size=16, overlap=None):
        """Recover degraded images: stretch, run the generator, invert the stretch.

        Parameters
        ----------
        images : `~galaxyml.io.MultiBandCutout`, `~astropy.nddata.CCDData`, array, or list
            In nanomaggies: a cutout with the model's bands, a CCDData (a
            one-band model), an array (n_bands, ny, nx), or a list of these
            (processed together in batches).
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

        Returns
        -------
        recovered : same type as ``images``
            In nanomaggies, with the WCS, metadata and mask (NaN pixels
            are in-painted for the network and stay masked).
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        arrays, masks = zip(*(self._as_array(item) for item in items))
        outputs = self._recover_arrays(list(arrays), samples, batch_size, overlap)
        results = [self._wrap(item, mean, std, mask)
                   for item, (mean, std), mask in zip(items, outputs, masks)]
        return results[0] if single else results

    def _as_array(self, image):
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
            if data.ndim != 3 or data.shape[0] != len(self.bands):
                raise BandMismatchError(f"an array must have shape (n_bands={len(self.bands)}, "
                                        f"ny, nx), not {data.shape}")
            mask = np.zeros(data.shape, bool)
        if min(data.shape[1:]) < self.min_size:
            raise ImageTooSmallError(f"the image is {data.shape[1:]} pixels; the network needs "
                                     f"at least {self.min_size} on a side (padded to a multiple "
                                     f"of {self.size_multiple})")
        mask = mask | ~np.isfinite(data)
        return _inpaint(np.asarray(data, float), mask), mask

    def _recover_arrays(self, arrays, samples, batch_size, overlap):
        overlap = self.tile_size // 4 if overlap is None else int(overlap)
        tiles, places = [], []
        for number, data in enumerate(arrays):
            network_input = np.moveaxis(self.stretch(data, warn=False) * 2 - 1, 0, -1)
            for origin, tile in _tiles(network_input, self.tile_size, overlap,
                                       self.size_multiple):
                tiles.append(tile)
                places.append((number, origin))
        runs = [self._run(tiles, batch_size, training=False)] if not samples else \
            [self._run(tiles, batch_size, training=True) for _ in range(int(samples))]
        picked_by_image = {}
        for k, (number, _) in enumerate(places):
            picked_by_image.setdefault(number, []).append(k)
        results = []
        for number, data in enumerate(arrays):
            picked = picked_by_image[number]
            origins = [places[k][1] for k in picked]
            draws = np.stack([
                (self.stretch.inverse((_blend([run[k] for k in picked], origins,
                                              data.shape[1:], overlap) + 1) / 2))
                for run in runs])
            mean = np.moveaxis(draws.mean(axis=0), -1, 0)
            std = np.moveaxis(draws.std(axis=0), -1, 0) if samples else None
            results.append((mean, std))
        return results

    def _run(self, tiles, batch_size, training):
        """Generator outputs for a list of equal-or-padded tiles, batch by batch."""
        outputs = []
        batch_norms = [layer for layer in self.generator.layers
                       if isinstance(layer, keras.layers.BatchNormalization)]
        if training:
            # Dropout on, batch normalisation kept in inference mode (Keras 3 runs a
            # non-trainable BatchNormalization with its moving statistics).
            for layer in batch_norms:
                layer.trainable = False
        try:
            for start in range(0, len(tiles), batch_size):
                batch = np.stack(tiles[start:start + batch_size]).astype(np.float32)
                outputs.extend(np.asarray(self.generator(batch, training=training)))
        finally:
            for layer in batch_norms:
                layer.trainable = True
        return outputs

    def _wrap(self, image, mean, std, mask):
        mean = mean.astype(np.float32)
        if isinstance(image, MultiBandCutout):
            unit_scale = image.unit.to("nmgy")
            return MultiBandCutout(mean / unit_scale, image.bands, image.wcs.deepcopy(),
                                   image.unit, uncertainty=None if std is None
                                   else (std / unit_scale).astype(np.float32),
                                   mask=mask, meta=dict(image.meta, recovered_by=_MODEL_TYPE))
        if isinstance(image, CCDData):
            unit_scale = image.unit.to("nmgy")
            uncertainty = None if std is None else StdDevUncertainty(std[0] / unit_scale)
            return CCDData(mean[0] / unit_scale, unit=image.unit, wcs=image.wcs,
                           uncertainty=uncertainty, mask=mask[0],
                           meta=dict(image.meta, recovered_by=_MODEL_TYPE))
        return mean if std is None else (mean, std)


def _describe(learning_rate):
    """A learning rate for the model card: the number, or the schedule's configuration."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return keras.optimizers.schedules.serialize(learning_rate)
    return float(learning_rate)


def _inpaint(data, mask):
    """Replace masked pixels by a Gaussian-weighted mean of their neighbours, band by band."""
    if not mask.any():
        return data
    filled = np.where(mask, np.nan, data)
    kernel = Gaussian2DKernel(2.0)
    for band in range(filled.shape[0]):
        for _ in range(10):  # large holes fill from their edges inwards
            if not np.isnan(filled[band]).any():
                break
            filled[band] = interpolate_replace_nans(filled[band], kernel)
        filled[band] = np.where(np.isnan(filled[band]), 0.0, filled[band])
    return filled


def _tiles(image, tile, overlap, multiple):
    """(origin, tile) pairs covering an (ny, nx, c) image; small images are padded.

    An image up to ``tile`` on a side is one tile, reflect-padded to a
    multiple of ``multiple``; a larger one is cut into ``tile`` x ``tile``
    tiles overlapping by at least ``overlap``.
    """
    ny, nx = image.shape[:2]
    if ny <= tile and nx <= tile:
        py, px = (-ny) % multiple, (-nx) % multiple
        padded = np.pad(image, ((0, py), (0, px), (0, 0)), mode="reflect") if py or px \
            else image
        return [((0, 0), padded)]
    if ny < tile or nx < tile:
        image = np.pad(image, ((0, max(tile - ny, 0)), (0, max(tile - nx, 0)), (0, 0)),
                       mode="reflect")
        ny, nx = image.shape[:2]
    out = []
    for y0 in _starts(ny, tile, overlap):
        for x0 in _starts(nx, tile, overlap):
            out.append(((y0, x0), image[y0:y0 + tile, x0:x0 + tile]))
    return out


def _starts(length, tile, overlap):
    if length <= tile:
        return [0]
    count = int(np.ceil((length - overlap) / (tile - overlap)))
    return np.linspace(0, length - tile, count).round().astype(int).tolist()


def _blend(tiles, origins, shape, overlap):
    """Blend overlapping tiles with weights that taper to the tile edges."""
    ny, nx = shape
    if len(tiles) == 1 and origins[0] == (0, 0):
        return tiles[0][:ny, :nx]
    tile = tiles[0].shape[0]
    ramp = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
    taper = np.clip(ramp / max(overlap, 1), 1e-3, 1.0)
    weight = np.outer(taper, taper)[..., None]
    height = max(o[0] for o in origins) + tile
    width = max(o[1] for o in origins) + tile
    total = np.zeros((height, width, tiles[0].shape[-1]))
    weights = np.zeros((height, width, 1))
    for (y0, x0), values in zip(origins, tiles):
        total[y0:y0 + tile, x0:x0 + tile] += weight * values
        weights[y0:y0 + tile, x0:x0 + tile] += weight
    return (total / weights)[:ny, :nx]
