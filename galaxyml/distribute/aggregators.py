# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""How the replicas' gradients become one update: float all-reduce or majority vote.

A trainer's ``train_step`` computes each replica's gradients (of a loss
already divided by the number of replicas) and hands them to
``aggregator.apply(optimizer, gradients, variables)`` in replica context.
`MeanAggregator` lets Keras all-reduce them in float; `MajorityVote`
exchanges one bit per parameter and applies the vote on every replica.
"""

import functools

import keras
import tensorflow as tf

from ..exceptions import (AggregationConflictError, CollectiveDtypeError, DistributeError,
                          NonFloatWeightsError, NotBuiltError)
from .optimizers import Signum
from .signs import count_set_bits, pack_bits, pack_counters, unpack_counters
from .traffic import choose_exchange

__all__ = ["GradientAggregator", "MeanAggregator", "MajorityVote", "WORD_DTYPES",
           "get_aggregator"]

#: Types the packed sign words can travel as (bit-cast from int32).
WORD_DTYPES = ("int32", "float32", "uint8")


class GradientAggregator:
    """Base class: how the gradients of the replicas become one update.

    Subclasses implement `apply`; `build` runs once per optimizer in the
    strategy's scope, before training.  `sent_bytes` records, per
    optimizer, the bytes of the tensors this replica hands to collectives
    in one step (from their static shapes, when the step is traced).
    """

    def __init__(self, byzantine=None):
        self.byzantine = byzantine
        self.sent_bytes = {}

    def make_optimizer(self, learning_rate, momentum):
        """The optimizer a trainer uses with this aggregator by default."""
        return keras.optimizers.Adam(learning_rate, beta_1=momentum)

    def build(self, optimizer, variables):
        """Create the optimizer's state for ``variables`` (call in the strategy's scope)."""
        if self.byzantine is not None:
            self.byzantine.check(tf.distribute.get_strategy().num_replicas_in_sync)
        optimizer.build(variables)

    def apply(self, optimizer, gradients, variables):
        """Combine ``gradients`` across replicas and update ``variables`` (replica context)."""
        raise NotImplementedError

    def checkpoint_state(self):
        """Trackable state beyond the optimizer's that a checkpoint must hold."""
        return {}

    def bytes_per_step(self):
        """Bytes one replica hands to collectives per training step (after one traced step)."""
        return sum(self.sent_bytes.values())

    def get_config(self):
        return {"name": type(self).__name__, "byzantine": repr(self.byzantine)}


def _nbytes(tensor):
    return int(tensor.shape.num_elements()) * tf.as_dtype(tensor.dtype).size


class MeanAggregator(GradientAggregator):
    """Keras's own aggregation: a float all-reduce (sum of the pre-divided gradients).

    Parameters
    ----------
    byzantine : `~galaxyml.distribute.ByzantineReplicas`, optional
        Simulated adversaries, for fault-tolerance experiments.
    optimizer : {"adam", "signum"}
        The optimizer trainers build for it (`make_optimizer`): Adam, or
        Signum to compare with `MajorityVote` on the same optimizer.
    """

    OPTIMIZERS = ("adam", "signum")

    def __init__(self, byzantine=None, optimizer="adam"):
        super().__init__(byzantine)
        if optimizer not in self.OPTIMIZERS:
            raise DistributeError(f"unknown optimizer {optimizer!r}; choose from {self.OPTIMIZERS}")
        self.optimizer = optimizer

    def make_optimizer(self, learning_rate, momentum):
        if self.optimizer == "signum":
            return Signum(learning_rate, momentum=momentum)
        return super().make_optimizer(learning_rate, momentum)

    def get_config(self):
        return {**super().get_config(), "optimizer": self.optimizer}

    def apply(self, optimizer, gradients, variables):
        self.sent_bytes[id(optimizer)] = sum(_nbytes(g) for g in gradients if g is not None)
        if self.byzantine is not None:
            context = tf.distribute.get_replica_context()
            gradients = self.byzantine.corrupt_gradients(
                gradients, context.replica_id_in_sync_group, optimizer.iterations)
        optimizer.apply_gradients(zip(gradients, variables))


class _VoteState:
    """One optimizer's per-replica momenta and the exchange chosen for them."""

    def __init__(self, key, momenta, exchange, replicas):
        self.key = key
        self.momenta = momenta
        self.exchange = exchange
        self.replicas = replicas
        self.n_parameters = sum(int(m.shape.num_elements()) for m in momenta)


class MajorityVote(GradientAggregator):
    """signSGD with majority vote (Bernstein et al. 2018, 2019), on tf.distribute collectives.

    Each replica keeps its own momentum ``m = beta m + (1 - beta) g`` of
    its own gradients (never averaged), sends the sign bits of ``m``
    packed 32 per word, and every replica applies the same update
    ``w = w - lr (vote + weight_decay w)``, where ``vote`` is the sign of
    the sum of the replicas' signs.  No float crosses the network.

    Signs: a replica's sign of ``m = 0`` is +1.  Ties (an even number of
    replicas split evenly) give ``vote = 0``: that parameter does not move.

    The optimizer must be a `~galaxyml.distribute.Signum`, which supplies
    the learning rate (and its schedule), ``beta`` and the weight decay;
    any other Keras optimizer all-reduces float gradients itself.

    Parameters
    ----------
    exchange : {"auto", "sign_all_gather", "counter_all_reduce"}
        ``"sign_all_gather"`` all-gathers the 1-bit words ((R - 1) n bits
        per worker per step); ``"counter_all_reduce"`` sums packed vote
        counters of ceil(log2(R + 1)) bits; ``"auto"`` takes the cheaper
        (`~galaxyml.distribute.choose_exchange`), and the counters on TPU,
        where an all-gather is an all-reduce of R times the data.
    word_dtype : {"int32", "float32", "uint8"}
        Type the sign words travel as (bit-cast, exact).  The counters
        always travel as int32.
    byzantine : `~galaxyml.distribute.ByzantineReplicas`, optional
        Simulated adversaries, for fault-tolerance experiments.
    """

    EXCHANGES = ("auto", "sign_all_gather", "counter_all_reduce")

    def __init__(self, exchange="auto", word_dtype="int32", byzantine=None):
        super().__init__(byzantine)
        if exchange not in self.EXCHANGES:
            raise DistributeError(f"unknown exchange {exchange!r}; choose from {self.EXCHANGES}")
        if word_dtype not in WORD_DTYPES:
            raise DistributeError(f"unknown word dtype {word_dtype!r}; choose from {WORD_DTYPES}")
        self.exchange = exchange
        self.word_dtype = word_dtype
        self._states = {}
        self._strategy = None

    def make_optimizer(self, learning_rate, momentum):
        return Signum(learning_rate, momentum=momentum)

    def get_config(self):
        return {**super().get_config(), "exchange": self.exchange, "word_dtype": self.word_dtype}

    # Building --------------------------------------------------------------------------

    def build(self, optimizer, variables):
        """Check the setup and create one momentum per replica for ``variables``.

        Call in the strategy's scope, once per optimizer, before training.
        """
        _check_optimizer(optimizer)
        _check_float(variables)
        strategy = tf.distribute.get_strategy()
        replicas = strategy.num_replicas_in_sync
        if self.byzantine is not None:
            self.byzantine.check(replicas)
        n_parameters = sum(int(v.shape.num_elements()) for v in variables)
        exchange = self._resolve_exchange(strategy, replicas, n_parameters)
        _probe_collective(strategy, exchange, self._travel_dtype(exchange))
        key = len(self._states)
        momenta = [tf.Variable(tf.zeros(v.shape, tf.as_dtype(v.dtype)), trainable=False,
                               name=f"replica_momentum_{key}_{i}",
                               synchronization=tf.VariableSynchronization.ON_READ,
                               aggregation=tf.VariableAggregation.MEAN)
                   for i, v in enumerate(variables)]
        self._states[id(optimizer)] = _VoteState(key, momenta, exchange, replicas)
        self._strategy = strategy

    def _resolve_exchange(self, strategy, replicas, n_parameters):
        if self.exchange != "auto":
            exchange = self.exchange
        elif isinstance(strategy, tf.distribute.TPUStrategy):
            exchange = "counter_all_reduce"
        else:
            exchange = choose_exchange(replicas, n_parameters)
        if exchange == "counter_all_reduce" and self.word_dtype != "int32":
            raise CollectiveDtypeError(
                f"the counter all-reduce sums its words, which must be int32, not "
                f"{self.word_dtype}; use exchange='sign_all_gather' or word_dtype='int32'")
        return exchange

    def _travel_dtype(self, exchange):
        return tf.int32 if exchange == "counter_all_reduce" else tf.as_dtype(self.word_dtype)

    def checkpoint_state(self):
        """Every replica's momenta (this worker's replicas), one variable per replica."""
        return {f"replica_momenta_{state.key}":
                [list(self._strategy.experimental_local_results(m)) for m in state.momenta]
                for state in self._states.values()}

    def replica_momenta(self, optimizer):
        """Per variable, the momenta of this worker's replicas as NumPy arrays."""
        state = self._state(optimizer)
        return [[c.numpy() for c in self._strategy.experimental_local_results(m)]
                for m in state.momenta]

    def _state(self, optimizer):
        try:
            return self._states[id(optimizer)]
        except KeyError:
            raise NotBuiltError("MajorityVote.build(optimizer, variables) must run in the "
                                "strategy's scope before training") from None

    # One step ---------------------------------------------------------------------------

    def apply(self, optimizer, gradients, variables):
        state = self._state(optimizer)
        if len(variables) != len(state.momenta):
            raise DistributeError(f"built for {len(state.momenta)} variables, given "
                                  f"{len(variables)}")
        context = tf.distribute.get_replica_context()
        negative = self._local_signs(optimizer.momentum, state.momenta, gradients)
        if self.byzantine is not None:
            negative = self.byzantine.corrupt_signs(
                negative, context.replica_id_in_sync_group, optimizer.iterations)
        votes = _split_like(self._vote(context, state, negative), variables)
        update = functools.partial(_apply_votes, optimizer=optimizer, variables=variables)
        context.merge_call(update, args=(votes, optimizer.learning_rate))

    @staticmethod
    def _local_signs(beta, momenta, gradients):
        """Update this replica's momenta; their sign bits (True = negative), concatenated."""
        negative = []
        for momentum, gradient in zip(momenta, gradients):
            if gradient is None:
                gradient = tf.zeros_like(momentum)
            gradient = tf.convert_to_tensor(gradient, dtype=momentum.dtype)
            updated = momentum.assign(beta * momentum + (1.0 - beta) * gradient)
            negative.append(tf.reshape(updated < 0, [-1]))
        return tf.concat(negative, axis=0)

    def _vote(self, context, state, negative):
        """The majority vote in {-1, 0, +1} per parameter, identical on every replica."""
        n, replicas = state.n_parameters, state.replicas
        if state.exchange == "counter_all_reduce":
            words = pack_counters(negative, replicas)
            self.sent_bytes[state.key] = _nbytes(words)
            negatives = unpack_counters(context.all_reduce("sum", words), replicas, n)
        else:
            words = _to_travel(pack_bits(negative), self.word_dtype)
            self.sent_bytes[state.key] = _nbytes(words)
            gathered = _from_travel(context.all_gather(words, axis=0), self.word_dtype)
            negatives = count_set_bits(tf.reshape(gathered, [replicas, -1]), n)
        # Positive votes minus negative votes, R - 2 * negatives: its sign is the vote.
        return tf.sign(tf.cast(replicas - 2 * negatives, tf.float32))


def _apply_votes(strategy, votes, learning_rate, optimizer, variables):
    """w = w - lr (vote + weight_decay w) on every replica's copy, then count the step."""
    weight_decay = optimizer.weight_decay or 0.0

    def step(variable, vote, learning_rate):
        learning_rate = tf.cast(learning_rate, variable.dtype)
        vote = tf.cast(vote, variable.dtype)
        return variable.assign_sub(learning_rate * (vote + weight_decay * variable))

    for variable, vote in zip(variables, votes):
        variable = variable.value if isinstance(variable, keras.Variable) else variable
        strategy.extended.update(variable, step, args=(vote, learning_rate), group=False)
    optimizer.iterations.assign_add(1)


def _split_like(vector, variables):
    sizes = [int(v.shape.num_elements()) for v in variables]
    return [tf.reshape(part, v.shape) for part, v in zip(tf.split(vector, sizes), variables)]


def _to_travel(words, word_dtype):
    if word_dtype == "int32":
        return words
    return tf.reshape(tf.bitcast(words, tf.as_dtype(word_dtype)), [-1])


def _from_travel(words, word_dtype):
    if word_dtype == "int32":
        return words
    if word_dtype == "uint8":
        words = tf.reshape(words, [-1, 4])
    return tf.bitcast(words, tf.int32)


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Signum):
        raise AggregationConflictError(
            f"majority vote computes the update itself; {type(optimizer).__name__} would "
            "all-reduce float gradients on its own. Use galaxyml.distribute.Signum "
            "(learning rate, momentum, weight decay), or MeanAggregator for float all-reduce")
    if optimizer.gradient_accumulation_steps:
        raise AggregationConflictError(
            "majority vote cannot follow an optimizer that accumulates gradients itself "
            "(gradient_accumulation_steps); accumulate in a larger batch instead")


def _check_float(variables):
    for variable in variables:
        if not keras.backend.is_float_dtype(variable.dtype):
            raise NonFloatWeightsError(
                f"trainable weight {variable.path if hasattr(variable, 'path') else variable.name}"
                f" has dtype {variable.dtype}; sign votes need float weights (mark it "
                "non-trainable)")


def _probe_collective(strategy, exchange, dtype):
    """Raise `CollectiveDtypeError` unless ``strategy`` can run ``exchange`` on ``dtype``."""

    def exchange_zeros():
        context = tf.distribute.get_replica_context()
        zeros = tf.zeros([4], dtype)
        if exchange == "counter_all_reduce":
            return context.all_reduce("sum", zeros)
        return context.all_gather(zeros, axis=0)

    try:
        strategy.run(tf.function(exchange_zeros))
    except (TypeError, ValueError, NotImplementedError, tf.errors.OpError) as error:
        operation = "all-reduce" if exchange == "counter_all_reduce" else "all-gather"
        reason = [line.strip() for line in str(error).splitlines() if len(line.strip()) > 2]
        raise CollectiveDtypeError(
            f"{type(strategy).__name__} cannot {operation} {dtype.name} words "
            f"({reason[-1] if reason else type(error).__name__}); "
            f"choose another word_dtype (int32 is carried by MirroredStrategy, "
            f"MultiWorkerMirroredStrategy and TPUStrategy)") from error


def get_aggregator(aggregation=None, **kwargs):
    """An aggregator from a name: ``"mean"`` (default) or ``"majority_vote"``.

    An existing `GradientAggregator` is returned as it is; ``kwargs`` go
    to the class.
    """
    if isinstance(aggregation, GradientAggregator):
        if kwargs:
            raise DistributeError("keyword arguments are for aggregators given by name")
        return aggregation
    classes = {None: MeanAggregator, "mean": MeanAggregator, "majority_vote": MajorityVote}
    if aggregation not in classes:
        raise DistributeError(f"unknown aggregation {aggregation!r}; choose 'mean' or "
                              "'majority_vote', or pass a GradientAggregator")
    return classes[aggregation](**kwargs)
