# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Where the fields of a batch run: in this process, in local processes, on Dask.

Each executor takes the fields to process and yields one result per field
(see `~galaxyml.batch.tasks.process_field`) as each finishes.  Only the
field's description goes to the worker and only its small result comes
back: products are written by the worker, so the client's memory does not
grow with the number of stamps.
"""

import logging
import multiprocessing
import os
import secrets
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from ..exceptions import InvalidParameterError
from ..utils._optional import optional_import
from .tasks import process_field

__all__ = ["EXECUTORS", "run_fields", "check_executor"]

#: The executors: ``serial`` (this process), ``processes`` (a local pool), ``dask``.
EXECUTORS = ("serial", "processes", "dask")


def run_fields(jobs, settings, executor="serial", workers=None, scheduler=None, log=print):
    """Process fields with an executor; yield each field's result as it finishes.

    Parameters
    ----------
    jobs : list of dict
        The fields (rows of `~galaxyml.batch.read_fields` as dicts).
    settings : `~galaxyml.batch.BatchSettings`
    executor : {'serial', 'processes', 'dask'}
    workers : int, optional
        Local processes or Dask workers (default: the number of CPUs).
        Ignored by ``serial`` and with a ``scheduler``.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); a
        `distributed.LocalCluster` of ``workers`` processes by default.
    log : callable
        Receives one-line messages (the Dask dashboard's address).

    Yields
    ------
    job, result : dict, dict
        The field and what `~galaxyml.batch.tasks.process_field` returned;
        a worker that died is a ``failed`` result saying so.
    """
    check_executor(executor, workers)
    if not jobs:
        return
    if executor == "serial":
        for job in jobs:
            yield job, process_field(job, settings)
    elif executor == "processes":
        yield from _run_processes(jobs, settings, workers)
    else:
        yield from _run_dask(jobs, settings, workers, scheduler, log)


def check_executor(executor, workers=None):
    """Raise `~galaxyml.exceptions.InvalidParameterError` for an unknown executor or a
    number of workers below 1."""
    if executor not in EXECUTORS:
        raise InvalidParameterError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    if workers is not None and int(workers) < 1:
        raise InvalidParameterError(f"workers must be at least 1, not {workers}")


def _lost(job, exc):
    """The result of a field whose worker died or whose task could not run."""
    return {"name": job["name"], "state": "failed", "n_galaxies": 0,
            "message": f"the worker was lost before the field was finished ({type(exc).__name__}"
                       f": {' '.join(str(exc).split())}); rerun to redo it"}


def _run_processes(jobs, settings, workers):
    # Spawned, not forked: TensorFlow's threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    workers = min(int(workers or multiprocessing.cpu_count()), len(jobs))
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(),))
    finished = False
    try:
        futures = {pool.submit(process_field, job, settings): job for job in jobs}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:  # BrokenProcessPool: a worker was killed
                yield futures[future], _lost(futures[future], exc)
        finished = True
    finally:
        if not finished:  # interrupted: the workers stop now, not after their fields
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(client_pid):
    """In each local worker: Ctrl-C is the client's to handle, and the worker ends with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_client, args=(client_pid,), daemon=True,
                     name="galaxyml-client-watch").start()


def _exit_with_client(client_pid, interval=0.5):
    """End this process as soon as the client that started it is gone.

    A field half written is harmless (it is staged and renamed into place
    complete), while a worker that outlives its client would go on writing
    into a directory that a new run may own.
    """
    while os.getppid() == client_pid:
        time.sleep(interval)
    os._exit(1)


def _run_dask(jobs, settings, workers, scheduler, log):
    distributed = optional_import("distributed", "Dask executors", "dask")
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler)
    else:
        import dask

        # A field ran 30-40% slower in a Dask worker than in a local process with Dask's
        # defaults, mostly because of its statistical profiler (it samples the stacks every
        # 10 ms, holding the GIL); MALLOC_TRIM_THRESHOLD_ (which turns off glibc's adaptive
        # mmap threshold) cost a little more.  Both are turned off here (docs/batch.rst).
        environ = {name: value for name, value
                   in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                   if name != "MALLOC_TRIM_THRESHOLD_"}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                              "distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(
                n_workers=int(workers or multiprocessing.cpu_count()), threads_per_worker=1,
                processes=True, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
    try:
        log(f"Dask dashboard: {client.dashboard_link}")
        token = secrets.token_hex(4)
        futures = {client.submit(process_field, job, settings, pure=False,
                                 key=f"galaxyml-field-{job['name']}-{token}"): job
                   for job in jobs}
        for future in distributed.as_completed(list(futures)):
            job = futures.pop(future)
            try:
                yield job, future.result()
            except Exception as exc:  # KilledWorker, lost connection
                yield job, _lost(job, exc)
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
