# Licensed under a 3-clause BSD style license - see LICENSE.rst
import keras
import numpy as np
import pytest
import tensorflow as tf

from galaxyml.distribute import (AggregatedModel, ByzantineReplicas, MajorityVote,
                                 MeanAggregator, Signum, WarmupStepSchedule, get_aggregator)
from galaxyml.exceptions import (AggregationConflictError, ByzantineCountError,
                                 CollectiveDtypeError, NonFloatWeightsError)

from .helpers import mirrored


def vote_step(strategy, gradients, learning_rate=0.1, momentum=0.0, steps=1, **kwargs):
    """Apply per-replica ``gradients`` (R, n) through MajorityVote; (weights, aggregator)."""
    n = gradients.shape[1]
    with strategy.scope():
        weights = keras.Variable(np.zeros(n, np.float32))
        optimizer = Signum(learning_rate, momentum=momentum)
        aggregator = MajorityVote(**kwargs)
        aggregator.build(optimizer, [weights])
    table = tf.constant(gradients, tf.float32)

    @tf.function
    def step():
        def on_replica():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            aggregator.apply(optimizer, [tf.gather(table, replica)], [weights])
        strategy.run(on_replica)

    for _ in range(steps):
        step()
    return weights, optimizer, aggregator


def replica_values(strategy, variable):
    return [v.numpy() for v in strategy.experimental_local_results(variable.value)]


@pytest.mark.parametrize("exchange, word_dtype", [("sign_all_gather", "int32"),
                                                  ("sign_all_gather", "float32"),
                                                  ("counter_all_reduce", "int32")])
def test_vote_is_the_majority_of_signs(exchange, word_dtype):
    strategy = mirrored(3)
    rng = np.random.default_rng(0)
    gradients = rng.normal(size=(3, 70))
    gradients[:, 5] = 0.0                       # sign(0) = +1 on every replica
    weights, optimizer, _ = vote_step(strategy, gradients, exchange=exchange,
                                      word_dtype=word_dtype)
    expected = -0.1 * np.sign(np.sign(np.where(gradients < 0, -1, 1)).sum(axis=0))
    for copy in replica_values(strategy, weights):
        np.testing.assert_allclose(copy, expected, rtol=1e-6)
    assert expected[5] == pytest.approx(-0.1)
    assert int(optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("exchange", ["sign_all_gather", "counter_all_reduce"])
def test_ties_do_not_move_a_weight(exchange):
    strategy = mirrored(2)
    gradients = np.array([[1.0, -1.0, -2.0] * 12, [-1.0, -1.0, 3.0] * 12])
    weights, _, _ = vote_step(strategy, gradients, exchange=exchange)
    # Both negative at index 15: the counter's top field of the first word, where sums wrap.
    np.testing.assert_allclose(replica_values(strategy, weights)[1],
                               [0.0, 0.1, 0.0] * 12, atol=1e-7)


def test_each_replica_keeps_its_own_momentum():
    strategy = mirrored(3)
    gradients = np.array([[1.0, 2.0], [-3.0, 2.0], [5.0, -1.0]])
    weights, optimizer, aggregator = vote_step(strategy, gradients, momentum=0.5, steps=2)
    momenta = aggregator.replica_momenta(optimizer)[0]
    # m = 0.5 m + 0.5 g twice from zero: 0.75 g on each replica, not averaged.
    np.testing.assert_allclose(momenta, 0.75 * gradients)
    copies = replica_values(strategy, weights)
    assert all(np.array_equal(copies[0], c) for c in copies)


def test_weight_decay_and_learning_rate_schedule():
    strategy = mirrored(1)
    with strategy.scope():
        weights = keras.Variable(np.full(3, 2.0, np.float32))
        schedule = WarmupStepSchedule(0.1, warmup_steps=2)
        optimizer = Signum(schedule, momentum=0.0, weight_decay=0.5)
        aggregator = MajorityVote()
        aggregator.build(optimizer, [weights])
    gradient = tf.constant([1.0, -1.0, 0.0])
    strategy.run(tf.function(lambda: aggregator.apply(optimizer, [gradient], [weights])))
    # w = w - lr (vote + wd w), lr = 0.1 * 1/2 at step 0 of a 2-step warm-up.
    np.testing.assert_allclose(weights.numpy(), 2.0 - 0.05 * (np.array([1, -1, 1]) + 1.0),
                               rtol=1e-6)
    stepped = WarmupStepSchedule(1.0, warmup_steps=0, boundaries=[2, 4], decay=0.5)
    assert [float(stepped(step)) for step in (0, 2, 5)] == [1.0, 0.5, 0.25]
    assert WarmupStepSchedule.from_config(stepped.get_config()).boundaries == [2, 4]
    with pytest.raises(ValueError, match="increasing"):
        WarmupStepSchedule(1.0, boundaries=[4, 2])


def test_signum_alone_steps_along_the_sign_of_the_momentum():
    weights = keras.Variable(np.zeros(3, np.float32))
    optimizer = Signum(0.1, momentum=0.5)
    for gradient in ([1.0, -1.0, 0.0], [-3.0, 0.0, 0.0]):
        optimizer.apply_gradients([(tf.constant(gradient), weights)])
    # momenta 0.5 g1 then -1.25, -0.25, 0: signs -, -, + after +, -, +.
    np.testing.assert_allclose(weights.numpy(), [0.0, 0.2, -0.2], atol=1e-7)
    restored = Signum.from_config(optimizer.get_config())
    assert restored.momentum == 0.5


def test_majority_vote_sends_32_times_fewer_bytes_on_a_million_parameters():
    strategy = mirrored(2)
    sent = {}
    for aggregation, optimizer in (("majority_vote", Signum), ("mean", keras.optimizers.SGD)):
        with strategy.scope():
            net = keras.Sequential([keras.Input((1000,)), keras.layers.Dense(1024),
                                    keras.layers.Dense(1)])
            model = AggregatedModel(net, aggregation)
            model.compile(optimizer=optimizer(1e-3), loss="mse")
            model.build_aggregation()
        model.fit(np.ones((4, 1000), np.float32), np.ones(4, np.float32), batch_size=4,
                  verbose=0)
        sent[aggregation] = model.aggregator.bytes_per_step()
    assert net.count_params() > 1_000_000
    assert sent["mean"] == 4 * net.count_params()
    assert sent["mean"] / sent["majority_vote"] >= 31


def test_loss_is_reported_like_keras():
    strategy = mirrored(2)
    x = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    with strategy.scope():
        model = AggregatedModel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]),
                                "mean")
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        model.build_aggregation()
    history = model.fit(x, x[:, 0], batch_size=8, verbose=0)
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, x[:, 0], verbose=0),
                                                       rel=1e-5)


# Bad input ------------------------------------------------------------------------------


def test_uint8_words_are_refused_by_mirrored_collectives():
    strategy = mirrored(2, collective=True)
    with strategy.scope():
        weights = keras.Variable(np.zeros(3, np.float32))
        with pytest.raises(CollectiveDtypeError, match="cannot all-gather uint8"):
            MajorityVote(exchange="sign_all_gather", word_dtype="uint8").build(
                Signum(), [weights])
    with pytest.raises(CollectiveDtypeError, match="must be int32"):
        MajorityVote(exchange="counter_all_reduce", word_dtype="float32").build(
            Signum(), [keras.Variable(np.zeros(3, np.float32))])


def test_non_float_weights_are_refused():
    weights = keras.Variable(np.zeros(3, np.int32), trainable=True)
    with pytest.raises(NonFloatWeightsError, match="int32"):
        MajorityVote().build(Signum(), [weights])


def test_byzantine_count_must_be_below_half():
    strategy = mirrored(4)
    with strategy.scope():
        weights = keras.Variable(np.zeros(3, np.float32))
        with pytest.raises(ByzantineCountError, match="2 Byzantine replicas of 4"):
            MajorityVote(byzantine=ByzantineReplicas(2)).build(Signum(), [weights])
        with pytest.raises(ByzantineCountError):
            MeanAggregator(byzantine=ByzantineReplicas(2)).build(
                keras.optimizers.SGD(), [weights])
    with pytest.raises(ByzantineCountError, match="non-negative"):
        ByzantineReplicas(-1)


def test_optimizers_that_aggregate_are_refused():
    weights = keras.Variable(np.zeros(3, np.float32))
    with pytest.raises(AggregationConflictError, match="Adam would all-reduce"):
        MajorityVote().build(keras.optimizers.Adam(), [weights])
    with pytest.raises(AggregationConflictError, match="accumulates"):
        MajorityVote().build(Signum(gradient_accumulation_steps=4), [weights])


def test_unbuilt_aggregator_and_unknown_names():
    with pytest.raises(RuntimeError, match="must run in the strategy's scope"):
        MajorityVote().apply(Signum(), [], [])
    with pytest.raises(ValueError, match="unknown aggregation"):
        get_aggregator("median")
    with pytest.raises(ValueError, match="unknown exchange"):
        MajorityVote(exchange="psum")
    assert isinstance(get_aggregator("majority_vote", exchange="sign_all_gather"), MajorityVote)
    assert isinstance(MeanAggregator(optimizer="signum").make_optimizer(1e-3, 0.9), Signum)
    assert isinstance(MeanAggregator().make_optimizer(1e-3, 0.5), keras.optimizers.Adam)
    with pytest.raises(ValueError, match="unknown optimizer"):
        MeanAggregator(optimizer="lamb")
