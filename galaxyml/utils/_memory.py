# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A check of the memory available before a large allocation."""

import os

from ..exceptions import InsufficientMemoryError

__all__ = ["require_memory"]


def _available_memory():
    """Bytes of memory available to a new allocation (Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(n_bytes, what, advice):
    """Raise `~galaxyml.exceptions.InsufficientMemoryError` if ``n_bytes`` would not fit.

    Parameters
    ----------
    n_bytes : int
        The allocation's size.
    what : str
        What needs it, for the message.
    advice : str
        How to need less, for the message.
    """
    available = _available_memory()
    if available is not None and n_bytes > 0.9 * available:
        raise InsufficientMemoryError(
            f"{what} needs about {n_bytes / 2 ** 30:.2f} GiB of memory and only "
            f"{available / 2 ** 30:.2f} GiB are available; {advice}")
