# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulated Byzantine replicas, for tests and benchmarks of fault tolerance."""

import tensorflow as tf

from ..exceptions import ByzantineCountError, DistributeError

__all__ = ["ByzantineReplicas"]


class ByzantineReplicas:
    """The first ``count`` replicas turn adversarial.

    Under majority vote an adversary can only choose the bit it sends:
    ``"sign_flip"`` sends the negation of its honest sign, ``"random"``
    random signs.  Under float aggregation the same adversaries send
    ``-scale g`` (sign flip) or ``scale |g|`` with random signs: a float
    gradient carries a magnitude, which an adversary can inflate at will,
    while a vote cannot (Bernstein et al. 2019, Sec. 4).

    Parameters
    ----------
    count : int
        Adversarial replicas, fewer than half of all.
    mode : {"sign_flip", "random"}
    scale : float
        Magnitude factor of the adversaries' float gradients (1 sends the
        negated honest gradient); ignored by majority vote.
    seed : int
        Seed of the random signs.
    """

    MODES = ("sign_flip", "random")

    def __init__(self, count, mode="sign_flip", scale=1.0, seed=0):
        if mode not in self.MODES:
            raise DistributeError(f"unknown Byzantine mode {mode!r}; choose from {self.MODES}")
        if count < 0:
            raise ByzantineCountError(f"the Byzantine count must be non-negative, not {count}")
        self.count = int(count)
        self.mode = mode
        self.scale = float(scale)
        self.seed = int(seed)

    def __repr__(self):
        return f"ByzantineReplicas(count={self.count}, mode={self.mode!r}, scale={self.scale})"

    def check(self, replicas):
        """Raise `~galaxyml.exceptions.ByzantineCountError` unless count < replicas / 2."""
        if 2 * self.count >= replicas:
            raise ByzantineCountError(
                f"{self.count} Byzantine replicas of {replicas} is half or more: no "
                f"aggregation can outvote them; simulate fewer than {(replicas + 1) // 2}")

    def _random_signs(self, shape, replica_id, step, salt=0):
        seed = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.cast(self.seed, tf.int64), tf.cast(step, tf.int64)]),
            tf.cast(replica_id, tf.int64) * 100003 + salt)
        return tf.random.stateless_uniform(shape, seed) < 0.5

    def _is_adversary(self, replica_id):
        return tf.cast(replica_id, tf.int32) < self.count

    def corrupt_signs(self, negative, replica_id, step):
        """The sign bits (True = negative) this replica sends, given its honest ones."""
        if self.mode == "sign_flip":
            corrupted = tf.logical_not(negative)
        else:
            corrupted = self._random_signs(tf.shape(negative), replica_id, step)
        return tf.where(self._is_adversary(replica_id), corrupted, negative)

    def corrupt_gradients(self, gradients, replica_id, step):
        """The float gradients this replica hands to the all-reduce."""
        adversary = self._is_adversary(replica_id)
        sent = []
        for index, gradient in enumerate(gradients):
            if self.mode == "sign_flip":
                corrupted = -self.scale * gradient
            else:
                flip = self._random_signs(tf.shape(gradient), replica_id, step, salt=index + 1)
                corrupted = self.scale * tf.where(flip, -1.0, 1.0) * tf.abs(gradient)
            sent.append(tf.where(adversary, corrupted, gradient))
        return sent
