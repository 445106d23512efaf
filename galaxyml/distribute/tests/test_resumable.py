# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""One checkpoint mechanism for every network: a classifier resumes bit for bit."""

import keras
import numpy as np
import pytest

from galaxyml.datasets import LabelledImages
from galaxyml.distribute import AggregatedModel, TrainingCheckpoint, fit_resumable
from galaxyml.exceptions import InvalidParameterError

from .helpers import mirrored, signum, star_galaxy_stamps


@pytest.fixture(scope="module")
def samples():
    stamps, labels = star_galaxy_stamps(96, seed=3)
    # (n, ny, nx, 1) in arbitrary units -> (n, 1, ny, nx) at galaxy-like nanomaggies.
    return LabelledImages.from_arrays(np.moveaxis(stamps, -1, 1) / 4, labels, bands="r", seed=1)


def dropout_classifier(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),  # its random state must be checkpointed too
        keras.layers.Dense(1),
    ])


def voting_classifier(strategy):
    with strategy.scope():
        net = dropout_classifier(seed=4)
        model = AggregatedModel(net, "majority_vote")
        model.compile(optimizer=signum(), metrics=["accuracy"],
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        model.build_aggregation()
    return net, model


def plain_classifier():
    net = dropout_classifier(seed=4)
    net.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return net, net


@pytest.mark.parametrize("kind", ["majority_vote_2_replicas", "plain_keras_adam"])
def test_classifier_stopped_mid_training_resumes_to_identical_weights(samples, tmp_path, kind):
    strategy = mirrored(2) if kind.startswith("majority") else None

    def run(steps, directory):
        net, model = voting_classifier(strategy) if strategy else plain_classifier()
        fit_resumable(model, samples, steps, batch_size=8, seed=2, checkpoint_dir=directory,
                      checkpoint_every=3, log_path=directory / "log.csv", progress=False)
        return net

    initial = dropout_classifier(seed=4).get_weights()
    straight = run(9, tmp_path / "straight")
    run(3, tmp_path / "killed")              # stopped after its first checkpoint
    resumed = run(9, tmp_path / "killed")    # ... and started again
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), initial))
    log = (tmp_path / "killed" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) == 4  # one row per epoch, no duplicates


def test_checkpoint_restores_the_dropout_random_states(samples, tmp_path):
    """The dropout generators' states are part of the checkpoint (TF's graph leaves them out)."""
    net, model = plain_classifier()
    fit_resumable(model, samples, 3, batch_size=8, checkpoint_dir=tmp_path, checkpoint_every=3,
                  progress=False)
    states = [v for v in net.variables if "seed_generator_state" in v.path]
    saved = [np.array(v.numpy()) for v in states]
    assert states and any(s.any() for s in saved)
    for variable in states:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    assert TrainingCheckpoint(net, tmp_path).restore() == 3
    assert all(np.array_equal(v.numpy(), s) for v, s in zip(states, saved))


def test_steps_must_fill_whole_epochs(samples):
    _, model = plain_classifier()
    with pytest.raises(InvalidParameterError, match="multiple of checkpoint_every"):
        fit_resumable(model, samples, 5, checkpoint_every=3, progress=False)


def test_labelled_images_stream_and_files(samples, tmp_path):
    image, label = samples.sample(0)
    assert image.shape == (12, 12, 1) and label.shape == ()
    batch = next(iter(samples.training_dataset(4, seed=1, start_step=2)))
    assert batch[0].shape == (4, 12, 12, 1) and batch[1].shape == (4,)
    again = next(iter(samples.training_dataset(4, seed=1, start_step=2)))
    assert np.array_equal(batch[0], again[0]) and np.array_equal(batch[1], again[1])
    samples.select([0, 5]).write(tmp_path / "set", progress=False)
    read = LabelledImages.read(tmp_path / "set")
    assert read.labels == ("label",) and len(read) == 2
    assert np.allclose(read.sample(1)[0], samples.sample(5)[0], atol=1e-6)
    assert read.sample(1)[1] == samples.sample(5)[1]


def test_time_limit_stops_at_a_checkpoint_and_the_run_resumes(samples, tmp_path):
    _, model = plain_classifier()
    history = fit_resumable(model, samples, 6, batch_size=8, checkpoint_dir=tmp_path,
                            checkpoint_every=2, time_limit=0, progress=False)
    assert len(history["loss"]) == 1  # stopped after the first epoch, checkpointed
    assert int(model.optimizer.iterations.numpy()) == 2
    _, model = plain_classifier()
    history = fit_resumable(model, samples, 6, batch_size=8, checkpoint_dir=tmp_path,
                            checkpoint_every=2, progress=False)
    assert len(history["loss"]) == 2 and int(model.optimizer.iterations.numpy()) == 6
