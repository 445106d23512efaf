# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Replicas without accelerators: a MirroredStrategy over logical CPU devices."""

from ..exceptions import DistributeError

__all__ = ["split_cpu", "cpu_strategy"]


def split_cpu(devices):
    """Split the machine's CPU into ``devices`` logical devices, each able to hold a replica.

    TensorFlow fixes its devices when it first uses them, so call this
    early (a test session's configuration, a script's start); later calls
    leave the devices as they are.

    Returns
    -------
    n_devices : int
        The logical CPU devices now available.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(devices))
    except RuntimeError:  # TensorFlow already initialised its devices
        pass
    return len(tf.config.list_logical_devices("CPU"))


def cpu_strategy(replicas, cross_device_ops=None):
    """A `tf.distribute.MirroredStrategy` with ``replicas`` replicas on logical CPU devices.

    For trying distributed training on a laptop, and for tests and
    benchmarks: the replicas share the CPU's cores, so the arithmetic is
    that of ``replicas`` devices, not their speed.  The CPU is split with
    `split_cpu` if TensorFlow has not yet fixed its devices.

    Parameters
    ----------
    replicas : int
        Number of replicas.
    cross_device_ops : `tf.distribute.CrossDeviceOps`, optional
        How replicas reduce; MirroredStrategy's default collectives when
        omitted.  TensorFlow keys collective groups per strategy, so several
        strategies of different sizes in one process need
        `tf.distribute.ReductionToOneDevice`.

    Raises
    ------
    DistributeError
        If fewer logical CPU devices exist than ``replicas``.
    """
    import tensorflow as tf

    available = split_cpu(replicas)
    if available < replicas:
        raise DistributeError(f"{replicas} replicas need {replicas} logical CPU devices, and "
                              f"TensorFlow already fixed {available}: call "
                              "galaxyml.distribute.split_cpu before TensorFlow starts")
    devices = [device.name for device in tf.config.list_logical_devices("CPU")[:replicas]]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)
