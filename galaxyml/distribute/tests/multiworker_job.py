# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Train with majority vote as a worker of a cluster or alone: a classifier or GalaxyGAN.

    python -m galaxyml.distribute.tests.multiworker_job OUT.npz [--replicas R]
        [--model classifier|galaxygan]

With TF_CONFIG set, runs under MultiWorkerMirroredStrategy (one replica per
worker); without, under MirroredStrategy over ``--replicas`` logical CPUs.
Replica r trains on slice r of each global batch in both setups.  Writes
the weights (and, for the classifier, this worker's replica momenta) and
the losses to OUT.npz (atomically); GalaxyGAN also leaves its simulated
field and checkpoints in the folder OUT (without .npz).
"""

import argparse
import os

import numpy as np


def _global_batches(x, y, batch_size):
    """Global batches (`train_loop` gives worker w slice w of each, as one process would)."""
    import tensorflow as tf

    steps = len(x) // batch_size
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)
    return dataset, steps


def _strategy(replicas):
    import tensorflow as tf

    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    from galaxyml.distribute import cpu_strategy

    return cpu_strategy(replicas)


def train_classifier(strategy, epochs):
    """The star/galaxy classifier through `train_loop`: its arrays to save."""
    import keras

    from galaxyml.distribute import AggregatedModel, Signum, train_loop
    from galaxyml.distribute.tests.helpers import classifier, star_galaxy_stamps

    x, y = star_galaxy_stamps(256, seed=0)
    with strategy.scope():
        model = AggregatedModel(classifier(seed=0), "majority_vote")
        model.compile(optimizer=Signum(2e-3), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.build_aggregation()
    dataset, steps = _global_batches(x, y, 16 * strategy.num_replicas_in_sync)
    history = train_loop(model, dataset.repeat(), epochs * steps, strategy)
    momenta = model.aggregator.replica_momenta(model.optimizer)
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"momentum_{i}_replica_{r}": m for i, per_replica in enumerate(momenta)
                   for r, m in enumerate(per_replica)})
    arrays["loss"] = history["loss"]
    return arrays


def train_galaxygan(strategy, directory):
    """GalaxyGAN through `GalaxyGAN.train` (checkpointed, validated) on a simulated field."""
    from astropy import units as u

    from galaxyml.datasets import galaxy_catalog, make_galaxygan_pairs, simulate_sdss_field
    from galaxyml.gan import GalaxyGAN

    field = simulate_sdss_field(directory / "field", bands="gri", shape=(320, 384),
                                n_galaxies=25, n_stars=12, seed=3)
    images = field.files.read("gri")
    catalog = galaxy_catalog(images, size=64, mag_range=(14, 20.5))
    pairs = make_galaxygan_pairs(images, catalog=catalog, size=64,
                                 grid=[(2.0 * u.arcsec, 2.0)], progress=False)
    model = GalaxyGAN(seed=1)
    batch_size = 2 * strategy.num_replicas_in_sync
    history = model.train(pairs.subset("train"), steps=4, batch_size=batch_size,
                          validation=pairs.subset("test"), checkpoint_every=2,
                          checkpoint_dir=directory / "checkpoints", strategy=strategy,
                          aggregator="majority_vote", progress=False)
    arrays = {f"weight_{i}": w for i, w in enumerate(model.generator.get_weights())}
    arrays.update({name: np.asarray(values) for name, values in history.items()})
    return arrays


def main(argv=None):
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", choices=["classifier", "galaxygan"], default="classifier")
    args = parser.parse_args(argv)

    from galaxyml.io.writing import atomic_output

    strategy = _strategy(args.replicas)
    if args.model == "classifier":
        arrays = train_classifier(strategy, args.epochs)
    else:
        arrays = train_galaxygan(strategy, args.output.with_suffix(""))
    with atomic_output(args.output, overwrite=True) as path:
        np.savez(path, **arrays)


if __name__ == "__main__":
    main()
