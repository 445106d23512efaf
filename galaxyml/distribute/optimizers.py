# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Signum: the sign of a momentum as the update (Bernstein et al. 2018)."""

import keras
from keras import ops

from ..exceptions import DistributeError

__all__ = ["Signum", "WarmupStepSchedule", "sign_of"]


def sign_of(values):
    """+1 where ``values >= 0``, -1 where negative: the sign bit signSGD sends (sign(0) = +1)."""
    return ops.where(values < 0, -ops.ones_like(values), ops.ones_like(values))


@keras.saving.register_keras_serializable(package="galaxyml")
class Signum(keras.optimizers.Optimizer):
    """Signum: ``m = beta m + (1 - beta) g``; ``w = w - lr (sign(m) + weight_decay w)``.

    With ``momentum=0`` it is plain signSGD.  Used alone (one device, or
    under a strategy with Keras's float all-reduce) it steps along the
    sign of the momentum of the mean gradient.  `~galaxyml.distribute.MajorityVote`
    uses its learning rate (schedules included), momentum and weight decay
    but keeps one momentum per replica and replaces the sign by the
    replicas' majority vote.

    Parameters
    ----------
    learning_rate : float or `keras.optimizers.schedules.LearningRateSchedule`
        Step size per parameter; see `warmup_schedule`.
    momentum : float
        beta in [0, 1); 0.9 as in the papers.
    weight_decay : float, optional
        Decoupled weight decay, ``lr * weight_decay * w`` per step.
    **kwargs
        Other arguments of `keras.optimizers.Optimizer` (``name``,
        ``gradient_accumulation_steps``, ...).
    """

    def __init__(self, learning_rate=1e-4, momentum=0.9, weight_decay=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name,
                         **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise DistributeError(f"momentum must lie in [0, 1), not {momentum}")
        self.momentum = float(momentum)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(variable, "momentum")
                          for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        """One Signum step of ``variable`` (weight decay is applied by the base class)."""
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = self.momentums[self._get_variable_index(variable)]
        self.assign(momentum, self.momentum * momentum + (1.0 - self.momentum) * gradient)
        self.assign_sub(variable, learning_rate * sign_of(momentum))

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config


@keras.saving.register_keras_serializable(package="galaxyml")
class WarmupStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then step decay: the schedule of large-batch sign training.

    ``lr(step) = learning_rate * min(1, (step + 1) / warmup_steps) * decay ** k``,
    with ``k`` the number of ``boundaries`` at or below ``step``.

    Parameters
    ----------
    learning_rate : float
        Peak learning rate, reached at step ``warmup_steps - 1``.
    warmup_steps : int
        Steps of linear warm-up (0 for none).
    boundaries : sequence of int
        Steps at which the rate is multiplied by ``decay``.
    decay : float
        Factor applied at each boundary.

    Examples
    --------
    >>> schedule = WarmupStepSchedule(1e-3, warmup_steps=4, boundaries=[10], decay=0.1)
    >>> [round(float(schedule(step)), 6) for step in (0, 3, 9, 10)]
    [0.00025, 0.001, 0.001, 0.0001]
    """

    def __init__(self, learning_rate, warmup_steps=0, boundaries=(), decay=0.1):
        if warmup_steps < 0:
            raise DistributeError(f"warmup_steps must be non-negative, not {warmup_steps}")
        if list(boundaries) != sorted(boundaries):
            raise DistributeError(f"boundaries must be increasing, not {boundaries}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.decay = float(decay)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.learning_rate, "float32")
        if self.warmup_steps:
            rate = rate * ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        for boundary in self.boundaries:
            rate = ops.where(step >= boundary, rate * self.decay, rate)
        return rate

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                "boundaries": self.boundaries, "decay": self.decay}
