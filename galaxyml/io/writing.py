# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Writing FITS files atomically, with a provenance header, never over an input."""

import contextlib
import datetime
import os
import secrets
from pathlib import Path

from astropy.io import fits

from ..exceptions import OutputExistsError

__all__ = ["provenance_header", "write_fits", "atomic_output"]


def provenance_header(operation, inputs=(), header=None):
    """Add galaxyml's provenance keywords to a FITS header.

    Parameters
    ----------
    operation : str
        What produced the file, for example ``"multiband_cutout"``.
    inputs : iterable of str or `~pathlib.Path`
        The files the data were derived from.
    header : `~astropy.io.fits.Header`, optional
        Header to add to (in place); a new one by default.

    Returns
    -------
    header : `~astropy.io.fits.Header`
        With ``GMLVERS`` (galaxyml version), ``GMLOP`` (operation),
        ``GMLDATE`` (UTC time of writing), ``GMLNINP`` and ``GMLIN<n>``
        (input file names, full paths in HISTORY cards).
    """
    from .. import __version__

    header = fits.Header() if header is None else header
    inputs = [str(path) for path in inputs]
    header["GMLVERS"] = (__version__, "galaxyml version")  # short: dev versions are long
    header["GMLOP"] = (operation, "galaxyml operation that made this file")
    header["GMLDATE"] = (datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         "UTC time of writing")
    header["GMLNINP"] = (len(inputs), "number of input files")
    for number, name in enumerate(inputs, start=1):
        header[f"GMLIN{number}"] = (Path(name).name[:68], f"input file {number}")
        header.add_history(f"galaxyml input {number}: {name}")
    return header


def check_output_path(path, inputs=(), overwrite=False):
    """Refuse to write over an input file, or over an existing file unless asked."""
    path = Path(path)
    target = path.resolve()
    for name in inputs:
        if Path(name).resolve() == target:
            raise OutputExistsError(f"{path}: refusing to overwrite an input of this operation")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    return path


@contextlib.contextmanager
def atomic_output(path, inputs=(), overwrite=False):
    """Write a file under a temporary name and rename it into place on success.

    The temporary file lies in the destination directory (so that the
    rename is atomic) and keeps the destination's suffixes (so that writers
    that choose a format or compression by suffix behave the same).  A
    crash or an exception leaves no partial file under the final name.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Destination.
    inputs : iterable of str or `~pathlib.Path`
        Files the output derives from: the destination may never be one.
    overwrite : bool
        Replace an existing destination that is not an input.

    Yields
    ------
    temporary : `~pathlib.Path`
        Where to write.
    """
    path = check_output_path(path, inputs, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{secrets.token_hex(6)}.partial.{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_fits(hdul, path, inputs=(), overwrite=False):
    """Write an HDU list atomically.

    The file is written under a temporary name and renamed into place (see
    `atomic_output`).  Compression follows the file name (``.gz``, ``.bz2``)
    as in `astropy.io.fits`.

    Parameters
    ----------
    hdul : `~astropy.io.fits.HDUList`
        What to write.
    path : str or `~pathlib.Path`
        Destination.
    inputs : iterable of str or `~pathlib.Path`
        Files the data came from: the destination may never be one of them.
    overwrite : bool
        Replace an existing destination that is not an input.

    Returns
    -------
    path : `~pathlib.Path`
        The file written.
    """
    with atomic_output(path, inputs, overwrite) as temporary:
        hdul.writeto(temporary, output_verify="exception")
    return Path(path)
