# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A training loop over ``strategy.run`` for strategies that Keras 3's ``fit`` cannot drive.

Keras 3's ``Model.fit`` fails under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585: its symbolic build reduces a per-replica batch
eagerly).  `train_loop` runs the model's own ``train_step`` under any
strategy, so the aggregation is the same as in ``fit``.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

__all__ = ["train_loop", "evaluate_loop", "sync_replica_statistics"]

# Per model, the tf.functions of its loops (traced once, reused by later calls) and
# whether its compiled metrics are built.
_FUNCTIONS = weakref.WeakKeyDictionary()


def _function(model, strategy, name, python_function):
    functions = _FUNCTIONS.setdefault(model, {})
    key = (name, id(strategy))
    if key not in functions:
        functions[key] = tf.function(python_function)
    return functions[key]


def _global_batches(dataset):
    """``dataset`` sharded by element: worker w reads slice w of every global batch.

    That is the slice its replicas would read under MirroredStrategy on
    one machine, so one process and several give the same training.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _build_state(model, dataset, strategy):
    """Create the compiled loss's and metrics' variables in the strategy's scope, once.

    Keras creates them lazily, which inside a replica is not allowed.  The
    metrics are reset at every call.
    """
    built = _FUNCTIONS.setdefault(model, {})
    if ("state", id(strategy)) not in built:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(next(iter(dataset)))
        with strategy.scope():
            y_pred = model(x, training=False)
            if model.loss is not None:  # a compiled loss (custom train steps may have none)
                model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                   training=False)
            model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        built[("state", id(strategy))] = True
    model.reset_metrics()


def train_loop(model, dataset, steps, strategy=None, progress=False):
    """Run ``model.train_step`` on ``steps`` global batches of ``dataset`` under ``strategy``.

    Parameters
    ----------
    model : `keras.Model`
        Compiled in the strategy's scope, its aggregation built (for
        example an `~galaxyml.distribute.AggregatedModel`).
    dataset : `tf.data.Dataset`
        Global batches, split over the replicas by the strategy (sharded by
        element: worker w reads slice w of every batch, which its replicas
        would read on one machine).
    steps : int
        Batches to train on.
    strategy : `tf.distribute.Strategy`, optional
        The model's strategy (``model.distribute_strategy``) by default.
    progress : bool
        Show a progress bar.

    Returns
    -------
    history : dict
        Metric name -> `~numpy.ndarray` of its running value after each
        step.  On return the replicas' batch-normalisation statistics are
        averaged (`sync_replica_statistics`).
    """
    strategy = strategy or model.distribute_strategy
    _build_state(model, dataset, strategy)
    iterator = iter(strategy.experimental_distribute_dataset(_global_batches(dataset)))
    one_step = _function(model, strategy, "train",
                         lambda batches: strategy.run(model.train_step, args=(next(batches),)))
    history = {}
    bar = keras.utils.Progbar(steps) if progress else None
    for step in range(steps):
        logs = {name: float(strategy.experimental_local_results(value)[0])
                for name, value in one_step(iterator).items()}
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
        if bar is not None:
            bar.update(step + 1, values=list(logs.items()))
    sync_replica_statistics(model, strategy)
    return {name: np.asarray(values) for name, values in history.items()}


def evaluate_loop(model, dataset, strategy=None):
    """Run ``model.test_step`` on every global batch of ``dataset`` under ``strategy``.

    Batches must split evenly over the replicas (batch with
    ``drop_remainder=True``): an empty share would give NaN losses.

    Returns
    -------
    logs : dict
        Metric name -> its value over all replicas of all workers.
    """
    strategy = strategy or model.distribute_strategy
    _build_state(model, dataset, strategy)
    one_step = _function(model, strategy, "test",
                         lambda batch: strategy.run(model.test_step, args=(batch,)))
    for batch in strategy.experimental_distribute_dataset(_global_batches(dataset)):
        one_step(batch)
    # Read in cross-replica context: the metrics' replica values are reduced.
    return {metric.name: float(metric.result()) for metric in model.metrics}


def sync_replica_statistics(model, strategy=None):
    """Average the replicas' copies of the non-trainable float weights of ``model``.

    Keras updates batch-normalisation moving statistics on each replica
    from its own share of the batch, so their copies drift apart (trainable
    weights stay identical under any aggregation).  Averaging them, for
    example before a checkpoint, gives every replica and worker the same
    model to save and evaluate; it exchanges a few floats per channel.
    """
    strategy = strategy or model.distribute_strategy
    variables = [v for v in model.non_trainable_variables
                 if keras.backend.is_float_dtype(v.dtype)]
    if strategy.num_replicas_in_sync == 1 or not variables:
        return

    def average():
        def on_replica():
            context = tf.distribute.get_replica_context()
            return context.all_reduce("mean", [tf.identity(v.value) for v in variables])

        means = strategy.run(on_replica)
        for variable, mean in zip(variables, means):
            variable.assign(strategy.experimental_local_results(mean)[0])

    _function(model, strategy, "sync", average)()
