# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Resumable training of a `ConditionalGAN`: checkpoints, CSV log, progress."""

from pathlib import Path

import keras
import tensorflow as tf

from ..distribute import evaluate_loop, sync_replica_statistics, train_loop

__all__ = ["fit_gan"]


class _SyncStatistics(keras.callbacks.Callback):
    """Averages the replicas' batch-normalisation statistics at the end of each epoch."""

    def on_epoch_end(self, epoch, logs=None):
        sync_replica_statistics(self.model)


class _Checkpointer(keras.callbacks.Callback):
    """Saves the networks, both optimizers and the step every ``every`` steps."""

    def __init__(self, manager, step, every):
        super().__init__()
        self.manager = manager
        self.step = step
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        self.step.assign((epoch + 1) * self.every)
        self.manager.save(checkpoint_number=int(self.step.numpy()))


def _random_states(gan):
    """The dropout layers' random-generator states, which TF's object graph leaves out.

    Without them a resumed run would draw other dropout masks than the
    uninterrupted one.
    """
    return [variable.value for variable in gan.generator.variables + gan.discriminator.variables
            if "seed_generator_state" in variable.path]


def fit_gan(gan, pairs, steps, batch_size=8, seed=0, checkpoint_dir=None, checkpoint_every=100,
            validation=None, log_path=None, augment=True, progress=True):
    """Train a compiled `ConditionalGAN` for ``steps`` steps, resuming where a run stopped.

    Training runs as Keras epochs of ``checkpoint_every`` steps; at the end
    of each, both networks, both optimizers (with their moments) and the
    step are checkpointed.  If ``checkpoint_dir`` holds a checkpoint, it is
    restored (with the aggregator's state: the majority vote's momentum of
    every replica) and the data stream (`TrainingPairs.training_dataset`) starts
    at the restored step, so a killed run, resumed, reaches the weights the
    uninterrupted run would have.  Build and compile ``gan`` inside the
    strategy's scope to train under `tf.distribute`.

    Parameters
    ----------
    gan : `~galaxyml.gan.ConditionalGAN`
        Compiled.
    pairs : `~galaxyml.datasets.TrainingPairs`
        Training pairs.
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
    validation : `~galaxyml.datasets.TrainingPairs`, optional
        Pairs evaluated after each checkpoint.
    log_path : str or path, optional
        CSV file of the losses and validation metrics, appended to on resume.
    augment : bool
        Random flips and rotations of the training pairs.
    progress : bool
        Show Keras's progress bar.

    Returns
    -------
    history : dict
        Metric name -> values for the epochs run now (empty if already done).
    """
    if steps % checkpoint_every:
        raise ValueError(f"steps ({steps}) must be a multiple of checkpoint_every "
                         f"({checkpoint_every})")
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    strategy = gan.distribute_strategy
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    worker = (strategy.cluster_resolver.task_id or 0) if multi_worker else 0
    # Before the checkpoint, so that every replica saves the same; train_loop (several
    # workers) averages the statistics itself.
    callbacks = [] if multi_worker else [_SyncStatistics()]
    if checkpoint_dir is not None:
        if multi_worker:  # each worker keeps its own replicas' momenta
            checkpoint_dir = Path(checkpoint_dir) / f"worker-{worker}"
        checkpoint = tf.train.Checkpoint(generator=gan.generator,
                                         discriminator=gan.discriminator,
                                         generator_optimizer=gan.generator_optimizer,
                                         discriminator_optimizer=gan.discriminator_optimizer,
                                         random_states=_random_states(gan),
                                         aggregator=gan.aggregator.checkpoint_state(),
                                         step=step)
        manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=3)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        callbacks.append(_Checkpointer(manager, step, checkpoint_every))
    start = int(step.numpy())
    if start >= steps:
        return {}
    if log_path is not None and worker == 0:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(str(log_path), append=start > 0))
    if multi_worker:
        return _fit_with_loop(gan, pairs, start, steps, batch_size, seed, checkpoint_every,
                              validation, callbacks, augment, progress)
    dataset = pairs.training_dataset(batch_size, seed=seed, start_step=start, augment=augment)
    validation_data = (None if validation is None
                       else validation.to_dataset(batch_size=batch_size))
    history = gan.fit(dataset, initial_epoch=start // checkpoint_every,
                      epochs=steps // checkpoint_every, steps_per_epoch=checkpoint_every,
                      validation_data=validation_data, callbacks=callbacks, shuffle=False,
                      verbose=1 if progress else 0)
    return history.history


def _fit_with_loop(gan, pairs, start, steps, batch_size, seed, every, validation, callbacks,
                   augment, progress):
    """`fit_gan`'s epochs through `~galaxyml.distribute.train_loop` (for several workers).

    Keras 3's ``fit`` cannot run under MultiWorkerMirroredStrategy; the
    data stream, checkpoints and log are the same as with ``fit``.
    """
    callback_list = keras.callbacks.CallbackList(callbacks, model=gan)
    callback_list.on_train_begin()
    history = {}
    for epoch in range(start // every, steps // every):
        dataset = pairs.training_dataset(batch_size, seed=seed, start_step=epoch * every,
                                         augment=augment)
        logs = {name: float(values[-1])
                for name, values in train_loop(gan, dataset, every, progress=progress).items()}
        if validation is not None:
            batches = validation.to_dataset().batch(batch_size, drop_remainder=True)
            logs.update({f"val_{name}": value
                         for name, value in evaluate_loop(gan, batches).items()})
        callback_list.on_epoch_end(epoch, logs)
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
    callback_list.on_train_end()
    return history
