# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A conditional GAN (pix2pix) as a Keras model, trainable under any tf.distribute strategy.

`ConditionalGAN.train_step` computes the losses of both networks on each
replica and hands the gradients to a `~galaxyml.distribute.GradientAggregator`,
the one piece that decides how replicas combine them: Keras's own float
all-reduce by default, or the signSGD majority vote
(`~galaxyml.distribute.MajorityVote`), without touching the GAN.
"""

import keras
import tensorflow as tf
from keras import ops

from ..distribute import get_aggregator

__all__ = ["ConditionalGAN", "l1_reconstruction"]


def _cross_entropy(labels, logits):
    """Mean binary cross-entropy of logits, on this replica's batch.

    Written with `keras.ops` rather than a `keras.losses` object, which
    under a distribution strategy divides by the number of replicas itself:
    here `ConditionalGAN.train_step` does that, once, for every term.
    """
    return ops.mean(ops.binary_crossentropy(labels, logits, from_logits=True))


def l1_reconstruction(target, generated, weight=100.0):
    """The pix2pix reconstruction term: ``weight`` times the mean absolute error."""
    return weight * ops.mean(ops.abs(target - generated))


class ConditionalGAN(keras.Model):
    """A pix2pix conditional GAN: generator G(condition) and discriminator D(condition, image).

    Pairs come stretched (`~galaxyml.datasets.TrainingPairs`), their values
    in ``data_range`` ([0, 1] for GalaxyGAN's stretch), and are mapped to
    [-1, 1], the range of the generator's tanh output.
    Losses: D minimises the binary cross-entropy of real pairs as real and
    generated pairs as fake (halved, as in pix2pix); G minimises the
    cross-entropy of its pairs as real plus a reconstruction term,
    ``lambda L1`` by default.  PSFGAN reuses the class with its own
    reconstruction term.

    Parameters
    ----------
    generator, discriminator : `keras.Model`
        See `~galaxyml.gan.unet_generator` and `~galaxyml.gan.patchgan_discriminator`.
    reconstruction : callable, optional
        ``reconstruction(target, generated) -> scalar``; `l1_reconstruction`
        with weight 100 by default.
    aggregator : str or `~galaxyml.distribute.GradientAggregator`, optional
        ``"mean"`` (`~galaxyml.distribute.MeanAggregator`, the default) or
        ``"majority_vote"`` (`~galaxyml.distribute.MajorityVote`).
    data_range : tuple of float
        The stretched values mapped to -1 and 1
        (`~galaxyml.stretch.ImageStretch.network_range`).
    """

    def __init__(self, generator, discriminator, reconstruction=None, aggregator=None,
                 data_range=(0.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.data_range = tuple(float(v) for v in data_range)
        self.generator = generator
        self.discriminator = discriminator
        self.reconstruction = reconstruction or l1_reconstruction
        self.aggregator = get_aggregator(aggregator)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("g_loss", "g_gan", "g_reconstruction", "d_loss", "l1")}

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        """Set the two optimizers (other keyword arguments go to `keras.Model.compile`)."""
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer

    def build_aggregation(self):
        """Create the optimizers' and the aggregator's state (in the strategy's scope).

        Slots made here, not lazily inside a replica, where variables cannot be created.
        """
        self.aggregator.build(self.discriminator_optimizer,
                              self.discriminator.trainable_variables)
        self.aggregator.build(self.generator_optimizer, self.generator.trainable_variables)

    def checkpoint_objects(self):
        """What a training checkpoint holds: both networks and both optimizers."""
        return {"generator": self.generator, "discriminator": self.discriminator,
                "generator_optimizer": self.generator_optimizer,
                "discriminator_optimizer": self.discriminator_optimizer}

    @property
    def metrics(self):
        """The running means of the losses, reset by Keras at every epoch."""
        return list(self.trackers.values())

    def call(self, condition, training=False):
        """The generator's output for a condition in the tanh range [-1, 1]."""
        return self.generator(condition, training=training)

    def _to_tanh_range(self, data):
        """Stretched pairs in ``data_range`` mapped to [-1, 1], the generator's tanh range."""
        condition, target, _ = keras.utils.unpack_x_y_sample_weight(data)
        low, high = self.data_range
        return tuple((image - low) * (2.0 / (high - low)) - 1.0 for image in (condition, target))

    def _gan_losses(self, condition, target, training):
        generated = self.generator(condition, training=training)
        real = self.discriminator([condition, target], training=training)
        fake = self.discriminator([condition, generated], training=training)
        d_loss = 0.5 * (_cross_entropy(ops.ones_like(real), real)
                        + _cross_entropy(ops.zeros_like(fake), fake))
        g_gan = _cross_entropy(ops.ones_like(fake), fake)
        g_reconstruction = self.reconstruction(target, generated)
        l1 = ops.mean(ops.abs(target - generated))
        return generated, d_loss, g_gan, g_reconstruction, l1

    def train_step(self, data):
        """One update of both networks on a batch (condition, target), on each replica."""
        condition, target = self._to_tanh_range(data)
        # Each replica sees its share of the batch; the aggregator sums over replicas.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=True) as tape:
            _, d_loss, g_gan, g_reconstruction, l1 = self._gan_losses(condition, target, True)
            g_loss = g_gan + g_reconstruction
            scaled_g, scaled_d = g_loss / replicas, d_loss / replicas
        g_variables = self.generator.trainable_variables
        d_variables = self.discriminator.trainable_variables
        g_gradients = tape.gradient(scaled_g, g_variables)
        d_gradients = tape.gradient(scaled_d, d_variables)
        del tape
        self.aggregator.apply(self.discriminator_optimizer, d_gradients, d_variables)
        self.aggregator.apply(self.generator_optimizer, g_gradients, g_variables)
        return self._record(g_loss, g_gan, g_reconstruction, d_loss, l1)

    def test_step(self, data):
        """The losses on a validation batch, with the networks in inference mode."""
        condition, target = self._to_tanh_range(data)
        _, d_loss, g_gan, g_reconstruction, l1 = self._gan_losses(condition, target, False)
        return self._record(g_gan + g_reconstruction, g_gan, g_reconstruction, d_loss, l1)

    def _record(self, g_loss, g_gan, g_reconstruction, d_loss, l1):
        values = {"g_loss": g_loss, "g_gan": g_gan, "g_reconstruction": g_reconstruction,
                  "d_loss": d_loss, "l1": l1}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
