# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A Keras ``train_step`` that hands the gradients to a `GradientAggregator`."""

import keras
import tensorflow as tf

from ..exceptions import NotBuiltError
from .aggregators import get_aggregator

__all__ = ["AggregatedTrainStep", "AggregatedModel"]


class AggregatedTrainStep:
    """Mixin for `keras.Model` subclasses: Keras's ``train_step`` with a replaceable aggregation.

    Put it before `keras.Model` in the bases and set ``self.aggregator``
    (a `~galaxyml.distribute.GradientAggregator`); compile as usual, build
    the model and call `build_aggregation` in the strategy's scope, then
    ``fit``.  The compiled loss, metrics and the ``loss`` entry of the
    history behave as with Keras's own step.

    Examples
    --------
    >>> import keras
    >>> from galaxyml.distribute import AggregatedTrainStep, MajorityVote, Signum
    >>> class VotingMLP(AggregatedTrainStep, keras.Sequential):
    ...     pass
    >>> model = VotingMLP([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.aggregator = MajorityVote()
    >>> model.compile(optimizer=Signum(1e-3), loss="mse")
    >>> model.build_aggregation()
    """

    aggregator = None

    def build_aggregation(self):
        """Create the aggregator's state for the trainable weights (in the strategy's scope)."""
        if self.aggregator is None:
            self.aggregator = get_aggregator()
        if not self.trainable_weights:
            raise NotBuiltError("the model has no trainable weights yet: build it first")
        self.aggregator.build(self.optimizer, self.trainable_weights)

    def checkpoint_objects(self):
        """What a training checkpoint holds: the model (its weights) and its optimizer."""
        return {"model": self, "optimizer": self.optimizer}

    def train_step(self, data):
        """Forward, loss (divided by the number of replicas), gradients, aggregation, metrics."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
        weights = self.trainable_weights
        self.aggregator.apply(self.optimizer, tape.gradient(loss, weights), weights)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        for metric in self.metrics:
            if metric.name == "loss":  # Keras's loss tracker: the undivided mean loss
                metric.update_state(loss * replicas, sample_weight=batch)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


class AggregatedModel(AggregatedTrainStep, keras.Model):
    """A wrapper that trains any Keras model with a `GradientAggregator`.

    The wrapper is for training; save the wrapped ``model`` itself.

    Parameters
    ----------
    model : `keras.Model`
        The model to train (its weights are shared, not copied).
    aggregation : str or `~galaxyml.distribute.GradientAggregator`
        ``"majority_vote"``, ``"mean"`` or an aggregator instance.
    **kwargs
        Passed to the aggregator's class when ``aggregation`` is a name.

    Examples
    --------
    >>> import keras
    >>> from galaxyml.distribute import AggregatedModel, Signum
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model = AggregatedModel(net, "majority_vote")
    >>> model.compile(optimizer=Signum(1e-3), loss="mse")
    >>> model.build_aggregation()
    """

    def __init__(self, model, aggregation="majority_vote", **kwargs):
        super().__init__()
        self.model = model
        self.aggregator = get_aggregator(aggregation, **kwargs)

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)
