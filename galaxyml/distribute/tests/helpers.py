# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shared pieces of the distribute tests: strategies, a labelled stamp set, a classifier."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from galaxyml.distribute import AggregatedModel, Signum, cpu_strategy


def mirrored(replicas, collective=False):
    """MirroredStrategy over ``replicas`` logical CPUs, or skip (galaxyml's conftest makes 8).

    TensorFlow's collective ops key their groups per strategy from 1, so in
    one process strategies of different sizes collide; the tests therefore
    reduce through one device, except where the collective path itself is
    tested (``collective=True``, always with 2 replicas like the GAN tests).
    """
    if len(tf.config.list_logical_devices("CPU")) < replicas:
        pytest.skip(f"needs {replicas} logical CPU devices (configured by galaxyml's conftest)")
    if collective:
        assert replicas == 2, "collective strategies of one size only in a test process"
        return cpu_strategy(2)
    return cpu_strategy(replicas, cross_device_ops=tf.distribute.ReductionToOneDevice())


def star_galaxy_stamps(n, size=12, seed=0):
    """Noisy point sources (label 0) and extended elliptical galaxies (label 1)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    labels = rng.integers(0, 2, n)
    stamps = np.empty((n, size, size), np.float32)
    for k, label in enumerate(labels):
        dx, dy = rng.uniform(-1, 1, 2)
        if label:
            scale, axis_ratio = rng.uniform(1.5, 3), rng.uniform(0.4, 1)
            angle = rng.uniform(0, np.pi)
        else:
            scale, axis_ratio, angle = rng.uniform(0.7, 1.1), 1.0, 0.0
        u = (x - dx) * np.cos(angle) + (y - dy) * np.sin(angle)
        v = (-(x - dx) * np.sin(angle) + (y - dy) * np.cos(angle)) / axis_ratio
        radius = np.hypot(u, v)
        profile = np.exp(-radius / scale) if label else np.exp(-0.5 * (radius / scale) ** 2)
        stamps[k] = rng.uniform(2, 10) * profile / profile.max() + rng.normal(0, 0.5, (size, size))
    return stamps[..., None], labels


def classifier(size=12, seed=0):
    """A small convolutional star/galaxy classifier."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((size, size, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2),
    ])


def train_classifier(strategy, aggregation, optimizer, data, epochs=4, per_replica_batch=16,
                     **kwargs):
    """Fit `classifier` with ``aggregation`` under ``strategy``; (model, history).

    The data are cut to whole batches, which split evenly over the replicas.
    """
    batch_size = per_replica_batch * strategy.num_replicas_in_sync
    (x, y), (xv, yv) = data
    whole, whole_validation = len(x) // batch_size * batch_size, len(xv) // batch_size * batch_size
    x, y, validation = x[:whole], y[:whole], (xv[:whole_validation], yv[:whole_validation])
    with strategy.scope():
        model = AggregatedModel(classifier(x.shape[1]), aggregation, **kwargs)
        model.compile(optimizer=optimizer(), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.build_aggregation()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False,
                        validation_data=validation, verbose=0)
    return model, history.history


def signum():
    return Signum(2e-3, momentum=0.9)


def adam():
    return keras.optimizers.Adam(2e-3)
