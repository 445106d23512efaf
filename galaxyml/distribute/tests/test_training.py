# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Training with majority vote: convergence, Byzantine replicas, several worker processes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from galaxyml.distribute import ByzantineReplicas, free_local_ports, tf_config

from .helpers import adam, mirrored, signum, star_galaxy_stamps, train_classifier


@pytest.fixture(scope="module")
def stamps():
    return star_galaxy_stamps(1024, seed=0), star_galaxy_stamps(512, seed=1)


def test_majority_vote_matches_float_all_reduce_with_adam(stamps):
    strategy = mirrored(4)
    _, vote = train_classifier(strategy, "majority_vote", signum, stamps, epochs=3)
    _, mean = train_classifier(strategy, "mean", adam, stamps, epochs=3)
    assert vote["val_accuracy"][-1] > 0.9
    assert abs(vote["val_accuracy"][-1] - mean["val_accuracy"][-1]) < 0.03


def test_one_sign_flipper_of_four_breaks_the_mean_but_not_the_vote(stamps):
    strategy = mirrored(4)
    flipper = ByzantineReplicas(1, "sign_flip", scale=4.0)
    _, vote = train_classifier(strategy, "majority_vote", signum, stamps, epochs=3,
                               byzantine=flipper)
    _, mean = train_classifier(strategy, "mean", adam, stamps, epochs=3, byzantine=flipper)
    assert vote["val_accuracy"][-1] > 0.9
    # The adversary's inflated float gradient reverses the mean: the loss climbs.
    assert mean["val_accuracy"][-1] < 0.6 and mean["loss"][-1] > mean["loss"][0]


def test_random_signs_come_from_the_adversaries_only():
    byzantine = ByzantineReplicas(1, "random", seed=3)
    honest = tf.zeros(1000, tf.bool)
    sent = [byzantine.corrupt_signs(honest, replica, step=0).numpy() for replica in range(3)]
    assert 0.4 < sent[0].mean() < 0.6 and not sent[1].any() and not sent[2].any()
    again = byzantine.corrupt_signs(honest, 0, step=0).numpy()
    assert np.array_equal(sent[0], again)        # reproducible from the seed and step
    assert not np.array_equal(sent[0], byzantine.corrupt_signs(honest, 0, step=1).numpy())


def _run_job(args, env):
    return subprocess.Popen([sys.executable, "-m", "galaxyml.distribute.tests.multiworker_job",
                             *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _cluster_and_single_process(directory, model, timeout=300):
    """Run the job on 2 worker processes on 127.0.0.1 and in one process with 2 replicas.

    Returns the arrays saved by the single process and by each worker.
    """
    workers = [f"127.0.0.1:{port}" for port in free_local_ports(2)]
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    processes = [_run_job([directory / f"worker{i}.npz", "--model", model],
                          env={**environment, "TF_CONFIG": tf_config(workers, i)})
                 for i in range(2)]
    processes.append(_run_job([directory / "single.npz", "--model", model, "--replicas", 2],
                              env=environment))
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return [np.load(directory / name) for name in ("single.npz", "worker0.npz", "worker1.npz")]


def _assert_same_weights(single, cluster):
    weights = [name for name in single.files if name.startswith("weight_")]
    assert weights
    for name in weights:
        assert np.array_equal(cluster[0][name], cluster[1][name])   # every worker alike
        assert np.array_equal(cluster[0][name], single[name])       # and as in one process


def test_multi_worker_training_agrees_with_one_process(tmp_path):
    single, *cluster = _cluster_and_single_process(tmp_path, "classifier")
    _assert_same_weights(single, cluster)
    # Each worker holds its own replica's momentum, the one-process run both.
    assert np.array_equal(cluster[1]["momentum_0_replica_0"], single["momentum_0_replica_1"])
    assert not np.array_equal(single["momentum_0_replica_0"], single["momentum_0_replica_1"])


def test_multi_worker_galaxygan_agrees_with_one_process(tmp_path):
    """GalaxyGAN.train under MultiWorkerMirroredStrategy: checkpoints, validation, same weights."""
    single, *cluster = _cluster_and_single_process(tmp_path, "galaxygan")
    _assert_same_weights(single, cluster)      # batch-norm statistics included
    # The validation mean is summed across workers by the collective and across replicas in
    # one process: the same terms in another order, equal to float32 rounding (the weights
    # above are equal bit for bit).
    np.testing.assert_allclose(cluster[1]["val_l1"], single["val_l1"], rtol=1e-6)
    assert len(single["val_l1"]) == 2 and np.all(np.isfinite(single["l1"]))
    for worker in range(2):   # each worker checkpoints its own replicas' momenta
        assert (tmp_path / "worker0" / "checkpoints" / f"worker-{worker}").exists() == (worker == 0)
        assert list((tmp_path / f"worker{worker}" / "checkpoints" /
                     f"worker-{worker}").glob("ckpt-4.index"))
