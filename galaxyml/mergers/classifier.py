# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The merger classifier (Ackermann et al. 2018): a CNN fine-tuned from a pretrained backbone."""

import contextlib
from pathlib import Path

import keras
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from ..datasets.colour import resize_rgb
from ..distribute import fit_resumable
from ..exceptions import InvalidParameterError
from ..io.cutout import MultiBandCutout
from ..models import SavedModel
from .backbones import BACKBONES, build_backbone
from .images import as_rgb

__all__ = ["MergerClassifier", "balanced"]


class MergerClassifier(SavedModel):
    """A binary merger classifier: a CNN backbone, dropout and a logistic output.

    As in Ackermann et al. (2018), the backbone is first trained on
    pictures of everyday objects (``weights``) and then fine-tuned on
    labelled galaxies (`fine_tune`): first the new output layer alone with
    the backbone frozen, then everything at a lower learning rate.

    Parameters
    ----------
    backbone : {'small', 'mobilenet', 'xception'}
        See `~galaxyml.mergers.build_backbone`: galaxyml's small CNN (trains
        on a laptop's CPU), MobileNetV2, or Xception (the paper's).
    weights : None, 'natural', 'imagenet', or path
        The transfer source: None (from scratch), ``'natural'`` (the small
        CNN pretrained by galaxyml on natural photographs, shipped),
        ``'imagenet'`` (Keras's ImageNet weights, from its cache), or a
        backbone weights file.
    input_size : int, optional
        Side of the network's input; images of any size are resized to
        it.  The backbone's default (96 for small and mobilenet, 299 for
        xception) by default.
    bands : sequence of str
        The bands of cutouts in nanomaggies, shown as blue, green, red.
    dropout : float
        Dropout before the output layer.
    seed : int
        Seed of the initial weights, the dropout and the data order.
    """

    model_type = "MergerClassifier"
    card_arguments = ("backbone", "input_size", "bands", "dropout", "seed")
    pretrained_package = "galaxyml.mergers"
    pretrained_file = "merger-small.keras"
    network_attribute = "network"

    def __init__(self, backbone="small", weights=None, input_size=None, bands=("g", "r", "i"),
                 dropout=0.3, seed=0):
        if backbone not in BACKBONES:
            raise InvalidParameterError(f"backbone must be one of {sorted(BACKBONES)}, not "
                                        f"{backbone!r}")
        self.backbone = backbone
        self.input_size = int(input_size or BACKBONES[backbone][2])
        self.bands = tuple(bands)
        self.dropout = float(dropout)
        self.seed = int(seed)
        self.weights = weights if weights is None else str(weights)
        self.card = {"transfer_source": self.weights}
        self.network = self._build(weights)

    def __repr__(self):
        return (f"<MergerClassifier backbone={self.backbone} input_size={self.input_size} "
                f"weights={self.weights} parameters={self.network.count_params()}>")

    def _build(self, weights):
        keras.utils.set_random_seed(self.seed)
        base = build_backbone(self.backbone, self.input_size, weights, self.seed)
        inputs = keras.Input((self.input_size, self.input_size, 3))
        features = base(inputs)
        features = keras.layers.Dropout(self.dropout, seed=self.seed)(features)
        output = keras.layers.Dense(1, activation="sigmoid", name="p_merger",
                                    kernel_initializer=keras.initializers.GlorotUniform(
                                        self.seed))(features)
        return keras.Model(inputs, output, name=f"merger_{self.backbone}")

    @property
    def backbone_network(self):
        """The backbone (the layer frozen in the first stage of `fine_tune`)."""
        return self.network.layers[1]

    # Training ---------------------------------------------------------------------------

    def fine_tune(self, samples, frozen_steps=200, unfrozen_steps=400, batch_size=32,
                  learning_rates=(1e-3, 1e-4), validation=None, checkpoint_dir=None,
                  checkpoint_every=50, log_path=None, strategy=None, progress=True):
        """Fine-tune on labelled colour images: output layer first, then the whole network.

        Parameters
        ----------
        samples : `~galaxyml.datasets.ColourImages`
            Training images resized to `input_size`, label 1 for a merger.
            Oversample the mergers (`~galaxyml.mergers.balanced`) when they
            are rare.
        frozen_steps, unfrozen_steps : int
            Steps with the backbone frozen, then unfrozen (multiples of
            ``checkpoint_every``; 0 skips a stage).
        batch_size : int
        learning_rates : (float, float)
            Adam's rate in each stage.
        validation : `~galaxyml.datasets.ColourImages`, optional
            Evaluated (loss, AUC) after each checkpoint.
        checkpoint_dir : str or path, optional
            Each stage checkpoints in its own subdirectory; a run with the
            same directory resumes exactly where it stopped.
        log_path : str or path, optional
            CSV of losses and validation metrics, one file per stage
            (``<stem>-frozen.csv``, ``<stem>-unfrozen.csv``).
        strategy : `tf.distribute.Strategy`, optional
        progress : bool

        Returns
        -------
        history : dict
            Stage -> metric name -> values.
        """
        if samples.size != self.input_size:
            raise InvalidParameterError(f"the samples are resized to {samples.size} pixels; "
                                        f"the network takes {self.input_size}")
        history = {}
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        for stage, steps, rate in (("frozen", frozen_steps, learning_rates[0]),
                                   ("unfrozen", unfrozen_steps, learning_rates[1])):
            if not steps:
                continue
            with scope:
                if strategy is not None:
                    weights = self.network.get_weights()
                    self.network = self._build(None)
                    self.network.set_weights(weights)
                self.backbone_network.trainable = stage == "unfrozen"
                self.network.compile(optimizer=keras.optimizers.Adam(rate),
                                     loss="binary_crossentropy",
                                     metrics=[keras.metrics.AUC(name="auc")])
                # Slots exist before a checkpoint is restored into them.
                self.network.optimizer.build(self.network.trainable_variables)
            history[stage] = fit_resumable(
                self.network, samples, steps, batch_size=batch_size, seed=self.seed,
                checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / stage,
                checkpoint_every=checkpoint_every, validation=validation,
                log_path=None if log_path is None else _stage_log(log_path, stage),
                progress=progress)
        self.backbone_network.trainable = True
        self.card.setdefault("training", {}).update(
            frozen_steps=frozen_steps, unfrozen_steps=unfrozen_steps, batch_size=batch_size,
            learning_rates=list(learning_rates), n_samples=len(samples),
            strategy=type(strategy).__name__ if strategy else "default")
        return history

    # Inference --------------------------------------------------------------------------

    def predict(self, images, batch_size=64):
        """The merger probability of each image.

        Parameters
        ----------
        images : image or list of images
            Image files (JPEG, PNG), (ny, nx, 3) uint8 colour images,
            (3, ny, nx) arrays of g, r, i in nanomaggies, or
            `~galaxyml.io.MultiBandCutout` with those bands (shown in
            SDSS's colours, `~galaxyml.mergers.lupton_rgb`); any size
            from 16 pixels, resized to `input_size`.  Inference is
            deterministic.
        batch_size : int

        Returns
        -------
        table : `~astropy.table.QTable`
            One row per image: ``p_merger``; ``inpainted`` (NaN or masked
            pixels were in-painted); ``sky_centroid`` (the cutout's
            centre) for cutouts with a celestial WCS, ``path`` for files.
        """
        single = not isinstance(images, (list, tuple)) and not (
            isinstance(images, np.ndarray) and images.ndim == 4)
        items = [images] if single else list(images)
        converted = [as_rgb(item, self.bands) for item in items]
        batch = np.stack([resize_rgb(rgb, self.input_size) for rgb, _ in converted])
        probabilities = np.asarray(self.network.predict(batch, batch_size=batch_size,
                                                        verbose=0)).ravel()
        table = QTable()
        table["p_merger"] = probabilities.astype(float)
        table["inpainted"] = [flag for _, flag in converted]
        if all(isinstance(item, MultiBandCutout) and item.wcs.has_celestial for item in items):
            table["sky_centroid"] = SkyCoord([_centre(item) for item in items])
        if all(isinstance(item, (str, Path)) for item in items):
            table["path"] = [str(item) for item in items]
        table.meta["model"] = f"MergerClassifier {self.backbone} ({self.weights})"
        return table


def _centre(cutout):
    ny, nx = cutout.data.shape[1:]
    return cutout.wcs.celestial.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)


def _stage_log(log_path, stage):
    path = Path(log_path)
    return path.with_name(f"{path.stem}-{stage}{path.suffix or '.csv'}")


def balanced(samples, label="label", ratio=1.0, seed=0):
    """The samples with the positive class repeated to ``ratio`` times the negatives' number."""
    labels = np.asarray(samples.manifest[label]) > 0.5
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    if positives.size == 0:
        raise InvalidParameterError("no positive samples to balance")
    repeats = max(1, int(round(ratio * negatives.size / positives.size)))
    rows = np.random.default_rng(seed).permutation(
        np.concatenate([negatives, np.repeat(positives, repeats)]))
    return samples.select(rows)
