# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Time and memory limits of one field, enforced in the worker that runs it.

A watchdog thread checks the field's elapsed time and its process's resident
memory four times a second; past a limit it raises
`~galaxyml.exceptions.FieldLimitError` in the thread that runs the field
(the main thread of a local worker, a Dask worker's task thread), at the
next Python instruction.  The field is then recorded ``failed`` with the
reason, its staging directory is left for the next run, and the worker goes
on with the next field.  The error is raised again four times a second until
the field's code lets it through.
"""

import contextlib
import ctypes
import os
import threading
import time

from ..exceptions import FieldLimitError

__all__ = ["field_limits", "resident_memory_mib"]

_INTERVAL = 0.25


def resident_memory_mib():
    """This process's resident memory in MiB (Linux's /proc), or 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@contextlib.contextmanager
def field_limits(seconds=0, memory_mib=0, what="the field"):
    """Raise `~galaxyml.exceptions.FieldLimitError` in this thread past a limit.

    Parameters
    ----------
    seconds : float
        Wall time allowed; 0 for none.
    memory_mib : float
        Resident memory of the process allowed, in MiB; 0 for none (and
        unenforced where the system does not tell it).
    what : str
        Named in the error's message.
    """
    if not seconds and not memory_mib:
        yield
        return
    target, lock = threading.get_ident(), threading.Lock()
    state = {"active": True, "reason": ""}
    done = threading.Event()

    def watch():
        start = time.monotonic()
        while not done.wait(_INTERVAL):
            elapsed, memory = time.monotonic() - start, resident_memory_mib()
            reason = (f"{what} ran past its time limit of {seconds:g} s" if seconds
                      and elapsed > seconds else f"{what} used {memory:.0f} MiB, past its "
                      f"memory limit of {memory_mib:g} MiB" if memory_mib
                      and memory > memory_mib else "")
            if reason:  # raised again each interval, in case a broad except swallowed it
                with lock:
                    if state["active"]:
                        state["reason"] = state["reason"] or reason
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(target), ctypes.py_object(FieldLimitError))

    watcher = threading.Thread(target=watch, daemon=True, name="galaxyml-field-limits")
    watcher.start()
    try:
        yield
    except FieldLimitError:
        raise FieldLimitError(state["reason"] or f"{what} ran past a limit") from None
    finally:
        _deactivate(state, lock, target)
        done.set()
        watcher.join()


def _deactivate(state, lock, target):
    """Stop raising in ``target``, and drop an error raised but not yet delivered."""
    while True:
        try:
            with lock:
                state["active"] = False
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
            return
        except FieldLimitError:  # delivered just now: the field is over anyway
            continue
