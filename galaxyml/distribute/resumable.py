# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Training that survives being killed: one checkpoint of the whole state, one resumable fit.

`TrainingCheckpoint` saves and restores everything a run needs to go on
bit for bit: weights, optimizer slots, the aggregator's per-replica state,
the dropout layers' random-generator states and the step, which is also
the position in the data (`~galaxyml.datasets.SampleSet.training_dataset`
is indexed by step).  `fit_resumable` trains any compiled Keras model on a
sample set with it: the GANs (`~galaxyml.gan.ConditionalGAN`), and any
classifier, plain or wrapped in `AggregatedModel`.
"""

import time
from pathlib import Path

import keras
import tensorflow as tf

from ..exceptions import InvalidParameterError
from .loop import evaluate_loop, sync_replica_statistics, train_loop

__all__ = ["TrainingCheckpoint", "fit_resumable"]


def _worker_index(strategy):
    """This process's worker index under MultiWorkerMirroredStrategy, else None."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return strategy.cluster_resolver.task_id or 0
    return None


def _random_states(model):
    """The random-generator states of the model's layers (dropout), which TF's object graph
    leaves out: without them a resumed run would draw other dropout masks."""
    return [variable.value for variable in model.variables
            if "seed_generator_state" in variable.path]


class TrainingCheckpoint:
    """The whole training state of a compiled Keras model, saved and restored together.

    It holds the model's ``checkpoint_objects()`` (networks and optimizers
    with their slots; the model and ``model.optimizer`` when the model
    does not define it), the aggregator's state (the majority vote's
    momentum of every replica), the dropout layers' random-generator
    states and the step.  Under `tf.distribute.MultiWorkerMirroredStrategy`
    each worker keeps its own replicas' state in ``directory/worker-<i>``.

    Parameters
    ----------
    model : `keras.Model`
        Compiled, with its optimizers' and aggregator's state built.
    directory : str or path
        Where the checkpoints go.
    max_to_keep : int
        Checkpoints kept (the oldest are deleted).
    """

    def __init__(self, model, directory, max_to_keep=3):
        worker = _worker_index(model.distribute_strategy)
        self.directory = Path(directory) if worker is None \
            else Path(directory) / f"worker-{worker}"
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        objects = (model.checkpoint_objects() if hasattr(model, "checkpoint_objects")
                   else {"model": model, "optimizer": model.optimizer})
        aggregator = getattr(model, "aggregator", None)
        self._checkpoint = tf.train.Checkpoint(
            **objects, random_states=_random_states(model), step=self.step,
            aggregator={} if aggregator is None else aggregator.checkpoint_state())
        self._manager = tf.train.CheckpointManager(self._checkpoint, str(self.directory),
                                                   max_to_keep=max_to_keep)

    def restore(self):
        """Restore the latest checkpoint, if there is one; the step it was taken at (or 0)."""
        if self._manager.latest_checkpoint:
            self._checkpoint.restore(self._manager.latest_checkpoint) \
                .assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self, step):
        """Save the state after ``step`` steps; the checkpoint's path."""
        self.step.assign(int(step))
        return self._manager.save(checkpoint_number=int(step))


class _SyncStatistics(keras.callbacks.Callback):
    """Averages the replicas' batch-normalisation statistics at the end of each epoch."""

    def on_epoch_end(self, epoch, logs=None):
        sync_replica_statistics(self.model)


class _Checkpointer(keras.callbacks.Callback):
    """Saves a `TrainingCheckpoint` at the end of each epoch of ``every`` steps."""

    def __init__(self, checkpoint, every):
        super().__init__()
        self.checkpoint = checkpoint
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.save((epoch + 1) * self.every)


def fit_resumable(model, samples, steps, batch_size=8, seed=0, checkpoint_dir=None,
                  checkpoint_every=100, validation=None, log_path=None, augment=True,
                  time_limit=None, progress=True):
    """Train a compiled Keras model for ``steps`` steps, resuming where a run stopped.

    Training runs as Keras epochs of ``checkpoint_every`` steps; after each,
    the whole training state is checkpointed (`TrainingCheckpoint`).  If
    ``checkpoint_dir`` holds a checkpoint, it is restored and the sample
    stream starts at the restored step, so a killed run, resumed, reaches
    the weights the uninterrupted run would have, bit for bit.  Build and
    compile ``model`` inside a strategy's scope to train under
    `tf.distribute`; under `tf.distribute.MultiWorkerMirroredStrategy`,
    which Keras 3's ``fit`` cannot drive, the epochs run through
    `train_loop` with the same stream, checkpoints and log.

    Parameters
    ----------
    model : `keras.Model`
        Compiled: a `~galaxyml.gan.ConditionalGAN`, an `AggregatedModel`,
        or any Keras model.
    samples : `~galaxyml.datasets.SampleSet`
        Training samples (for example `~galaxyml.datasets.TrainingPairs`).
    steps : int
        Total steps, a multiple of ``checkpoint_every``.
    batch_size : int
        Global batch size (split over the replicas).
    seed : int
        Seed of the data order and the augmentation.
    checkpoint_dir : str or path, optional
        Where checkpoints go; without it training cannot resume.
    checkpoint_every : int
        Steps between checkpoints (and between validation and log rows).
    validation : `~galaxyml.datasets.SampleSet`, optional
        Samples evaluated after each checkpoint.
    log_path : str or path, optional
        CSV file of the losses and validation metrics, appended to on resume.
    augment : bool
        Random flips and rotations of the training images.
    time_limit : float, optional
        Stop at the first checkpoint after this many seconds (training for
        a wall-clock budget; run again to go on).
    progress : bool
        Show Keras's progress bar.

    Returns
    -------
    history : dict
        Metric name -> values for the epochs run now (empty if already done).
    """
    if steps % checkpoint_every:
        raise InvalidParameterError(f"steps ({steps}) must be a multiple of checkpoint_every "
                                    f"({checkpoint_every})")
    worker = _worker_index(model.distribute_strategy)
    # Before the checkpoint, so that every replica saves the same; train_loop (several
    # workers) averages the statistics itself.
    callbacks = [_SyncStatistics()] if worker is None else []
    start = 0
    if checkpoint_dir is not None:
        checkpoint = TrainingCheckpoint(model, checkpoint_dir)
        start = checkpoint.restore()
        callbacks.append(_Checkpointer(checkpoint, checkpoint_every))
    if start >= steps:
        return {}
    if log_path is not None and not worker:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(str(log_path), append=start > 0))
    if time_limit is not None:
        callbacks.append(_TimeLimit(time_limit))
    if worker is not None:
        return _fit_with_loop(model, samples, start, steps, batch_size, seed, checkpoint_every,
                              validation, callbacks, augment, progress)
    dataset = samples.training_dataset(batch_size, seed=seed, start_step=start, augment=augment)
    validation_data = (None if validation is None
                       else validation.to_dataset(batch_size=batch_size))
    history = model.fit(dataset, initial_epoch=start // checkpoint_every,
                        epochs=steps // checkpoint_every, steps_per_epoch=checkpoint_every,
                        validation_data=validation_data, callbacks=callbacks, shuffle=False,
                        verbose=1 if progress else 0)
    return history.history


class _TimeLimit(keras.callbacks.Callback):
    """Stop training at the end of the first epoch (a checkpoint) past a time limit."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = float(seconds)
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def _fit_with_loop(model, samples, start, steps, batch_size, seed, every, validation,
                   callbacks, augment, progress):
    """`fit_resumable`'s epochs through `train_loop` (for several workers)."""
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    callback_list.on_train_begin()
    history = {}
    for epoch in range(start // every, steps // every):
        dataset = samples.training_dataset(batch_size, seed=seed, start_step=epoch * every,
                                           augment=augment)
        logs = {name: float(values[-1])
                for name, values in train_loop(model, dataset, every, progress=progress).items()}
        if validation is not None:
            batches = validation.to_dataset().batch(batch_size, drop_remainder=True)
            logs.update({f"val_{name}": value
                         for name, value in evaluate_loop(model, batches).items()})
        callback_list.on_epoch_end(epoch, logs)
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
        if getattr(model, "stop_training", False):
            break
    callback_list.on_train_end()
    return history
