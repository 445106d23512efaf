# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A batch's output directory: claimed, locked, and written only where galaxyml owns it.

A batch writes and removes files only inside a directory that it marked as
its own (``.galaxyml-batch``, written before anything else).  A directory
that holds files galaxyml did not write, that overlaps the input data, or
whose ``fields`` or ``logs`` is a link out of it is refused, so that no run
can delete or overwrite a user's data.  A lock keeps two runs out of one
directory.
"""

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

from ..exceptions import OutputExistsError, OutputLockedError
from ..io.writing import atomic_output

__all__ = ["OUTPUT_MARKER", "FIELD_MARKER", "claim_output_directory", "output_lock",
           "resumable_staging", "remove_owned_directory"]

#: The file that marks a directory as a galaxyml batch's output; written first.
OUTPUT_MARKER = ".galaxyml-batch"

#: The file that marks a field's (staging) directory as written by galaxyml.
FIELD_MARKER = ".galaxyml-field"

_LOCK = ".galaxyml-lock"
# A run record written by galaxyml before the output marker existed: still ours.
_EARLIER_RECORD = "run.json"


def claim_output_directory(output, inputs=()):
    """Check that ``output`` is galaxyml's to write in, and mark it so.

    Parameters
    ----------
    output : `~pathlib.Path`
        The batch's output directory; created when it does not exist.
    inputs : iterable of `~pathlib.Path`
        Directories the batch reads (mirrors, a directory of frames): the
        output may neither lie inside one nor hold one.

    Raises
    ------
    OutputExistsError
        ``output`` overlaps an input directory, is not a directory, holds
        files galaxyml did not write, or its ``fields`` or ``logs`` is a
        symbolic link.
    """
    output = Path(output).absolute()
    resolved = output.resolve()
    for directory in inputs:
        directory = Path(directory).resolve()
        if resolved == directory or directory in resolved.parents \
                or resolved in directory.parents:
            raise OutputExistsError(
                f"the output directory {output} overlaps the input directory {directory}; "
                f"choose an output directory outside the data")
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"the output {output} exists and is not a directory")
    if output.is_dir() and not _is_owned(output):
        foreign = sorted(entry.name for entry in output.iterdir())
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutputExistsError(
                f"the output directory {output} holds files galaxyml did not write ({shown}); "
                f"choose a new or empty directory")
    for inner in (output / "fields", output / "logs"):
        if inner.is_symlink() or (inner.exists() and not inner.is_dir()):
            raise OutputExistsError(f"{inner} is a link or a file, not a directory galaxyml "
                                    f"wrote; remove it or choose another output directory")
    output.mkdir(parents=True, exist_ok=True)
    marker = output / OUTPUT_MARKER
    if not marker.is_file():
        marker.write_text("This directory is the output of a galaxyml batch; galaxyml writes "
                          "and removes files only inside directories so marked.\n")


def _is_owned(directory):
    if (directory / OUTPUT_MARKER).is_file():
        return True
    record = directory / _EARLIER_RECORD
    try:
        return "config_hash" in json.loads(record.read_text())
    except (OSError, ValueError, TypeError):
        return False


@contextlib.contextmanager
def output_lock(output):
    """Hold the output directory's lock for a run; a second run stops, naming the first.

    The lock is an advisory ``flock`` on ``OUTPUT/.galaxyml-lock``, released
    by the system when the process ends however it ends, so a killed run
    never leaves a stale lock behind.

    Raises
    ------
    OutputLockedError
        Another process holds the lock.
    """
    path = Path(output) / _LOCK
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 4096, 0).decode(errors="replace").strip()
            raise OutputLockedError(
                f"the output directory {output} is in use by another galaxyml batch "
                f"({holder or 'a process that has not yet said which'}); wait for it to end "
                f"or choose another output directory") from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"process {os.getpid()} on {socket.gethostname()}, started "
                              f"{started}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def resumable_staging(final, key):
    """The hidden directory beside ``final`` where its products are made: ``.NAME.partial``.

    It is marked as galaxyml's and kept when a run stops before the field is
    complete, so that the next run resumes it, provided its record
    (``staging.json``) equals ``key`` (the parameters and the galaxies that
    the products depend on); otherwise it is emptied and started again.

    Returns
    -------
    staging : `~pathlib.Path`
    """
    staging = final.with_name(f".{final.name}.partial")
    record = staging / "staging.json"
    if staging.exists() or staging.is_symlink():
        try:
            if json.loads(record.read_text()) == key and not staging.is_symlink() \
                    and (staging / FIELD_MARKER).is_file():
                return staging
        except (OSError, ValueError):
            pass
        remove_owned_directory(staging)
    staging.mkdir(parents=True)
    (staging / FIELD_MARKER).touch()
    with atomic_output(record) as temporary:
        temporary.write_text(json.dumps(key))
    return staging


def remove_owned_directory(directory):
    """Remove a directory that galaxyml wrote (it holds `FIELD_MARKER`); refuse any other.

    Raises
    ------
    OutputExistsError
        ``directory`` is a link or lacks the marker: it was not written by
        galaxyml and is left as it is.
    """
    directory = Path(directory)
    if directory.is_symlink() or not (directory / FIELD_MARKER).is_file():
        raise OutputExistsError(f"{directory} exists and was not written by galaxyml; move it "
                                f"away to let the batch write this field")
    shutil.rmtree(directory)
