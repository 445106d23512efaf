# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The fields of a batch: read from a table, or found among the frames of a directory."""

import re
import warnings
from pathlib import Path

import numpy as np
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyWarning

from ..exceptions import InvalidInputTypeError, InvalidParameterError, MissingColumnError, \
    MissingFileError

__all__ = ["DEFAULT_RERUN", "read_fields", "field_name"]

#: Processing rerun of a field when the field table does not say (DR8 to DR17 imaging).
DEFAULT_RERUN = 301

_FRAME_NAME = re.compile(r"frame-[ugriz]-(\d{6})-(\d)-(\d{4})\.fits(\.bz2|\.gz)?$")
_COLUMNS = ("run", "camcol", "field")
# The largest values SDSS's file names can hold.
_LIMITS = {"run": 999_999, "camcol": 6, "field": 9_999, "rerun": 999_999}
_MAX_TABLE_BYTES = 100_000_000


def field_name(run, camcol, field):
    """The name of a field and of its output directory: ``'RUN-CAMCOL-FIELD'``."""
    return f"{int(run)}-{int(camcol)}-{int(field)}"


def read_fields(fields):
    """The fields of a batch, one row each, in a stable order.

    Parameters
    ----------
    fields : path, `~astropy.table.Table` or list of tuple
        A table file (ECSV, or CSV with a header line) or table with the
        columns ``run``, ``camcol``, ``field`` and optionally ``rerun``; a
        directory, searched recursively for SDSS ``frame-*`` files, each
        distinct (run, camcol, field) being one field; or a list of
        (run, camcol, field) tuples.

    Returns
    -------
    fields : `~astropy.table.QTable`
        ``run``, ``camcol``, ``field``, ``rerun`` (integers; rerun 301 where
        not given) and ``name`` (``'RUN-CAMCOL-FIELD'``).  A field listed
        twice appears once, where it was first listed.

    Raises
    ------
    MissingFileError
        The path does not exist.
    MissingColumnError
        The table lacks ``run``, ``camcol`` or ``field``.
    InvalidParameterError
        No field at all, or values that are not positive integers.
    """
    if isinstance(fields, (str, Path)):
        path = Path(fields)
        if path.is_dir():
            table = _fields_in_directory(path)
        elif path.is_file():
            table = _read_table(path)
        else:
            raise MissingFileError(f"{path}: no such field table or directory of frames")
    elif isinstance(fields, Table):
        table = QTable(fields)
    elif isinstance(fields, (list, tuple)):
        table = QTable(rows=[tuple(row)[:3] for row in fields], names=_COLUMNS) if fields \
            else QTable(names=_COLUMNS)
    else:
        raise InvalidInputTypeError(f"fields must be a table, a path or a list of (run, camcol, "
                                    f"field), not {type(fields).__name__}")
    return _normalised(table, str(fields) if isinstance(fields, (str, Path)) else "the table")


def _read_table(path):
    fmt = "ascii.ecsv" if path.suffix == ".ecsv" else "ascii.csv"
    if path.suffix not in (".ecsv", ".csv"):
        fmt = None  # let astropy guess (FITS tables, whitespace-separated text)
    if path.stat().st_size > _MAX_TABLE_BYTES:
        raise InvalidParameterError(f"{path}: {path.stat().st_size} bytes is too large for a "
                                    f"field table (at most {_MAX_TABLE_BYTES})")
    try:
        with warnings.catch_warnings():
            # astropy warns, then reads as text, where an integer overflows: checked below.
            warnings.simplefilter("ignore", AstropyWarning)
            return QTable.read(path, format=fmt)
    except Exception as exc:  # noqa: BLE001  (astropy raises many kinds for unreadable tables)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidParameterError(f"{path}: cannot read the field table, which must be ECSV, "
                                    f"CSV with a header line or a FITS table ({first_line})"
                                    ) from None


def _integers(table, name, source):
    """A column of positive integers below the SDSS limits; an empty ``rerun`` is 301."""
    if name not in table.colnames:
        return np.full(len(table), DEFAULT_RERUN, dtype=np.int64)
    column = table[name]
    empty = np.asarray(getattr(column, "mask", np.zeros(len(column), bool)), bool)
    values = np.asarray(column.filled(DEFAULT_RERUN) if hasattr(column, "filled") else column)
    if name == "rerun":
        if values.dtype.kind in "US":  # an empty text cell
            empty = empty | (np.char.strip(values.astype(str)) == "")
            values = np.where(empty, str(DEFAULT_RERUN), values)
    elif empty.any():
        raise InvalidParameterError(f"{source}: column {name!r} has empty cells (rows "
                                    f"{list(np.flatnonzero(empty)[:10])})")
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and overflow: checked below
            integers = values.astype(np.int64)
        exact = np.all(integers == values.astype(integers.dtype if values.dtype.kind in "iu"
                                                 else float))
    except (TypeError, ValueError, OverflowError):
        exact = False
    if not exact or np.any(integers < (0 if name == "rerun" else 1)) \
            or np.any(integers > _LIMITS[name]):
        shown = ", ".join(str(value)[:20] for value in values[:5])
        raise InvalidParameterError(f"{source}: column {name!r} must hold integers from "
                                    f"{0 if name == 'rerun' else 1} to {_LIMITS[name]}, not "
                                    f"[{shown}{', ...' if len(values) > 5 else ''}]")
    return integers


def _fields_in_directory(directory):
    found = []
    for path in sorted(directory.rglob("frame-*")):
        match = _FRAME_NAME.match(path.name)
        if match:
            found.append(tuple(int(v) for v in match.groups()[:3]))
    rows = sorted(set(found))
    if not rows:
        raise InvalidParameterError(f"{directory}: no SDSS frame-BAND-RUN-CAMCOL-FIELD.fits[.bz2] "
                                    "files found in this directory or below")
    return QTable(rows=rows, names=_COLUMNS)


def _normalised(table, source):
    missing = [name for name in _COLUMNS if name not in table.colnames]
    if missing:
        raise MissingColumnError(f"{source} lacks the column(s) {missing}; a field table needs "
                                 f"run, camcol, field (and optionally rerun)")
    if len(table) == 0:
        raise InvalidParameterError(f"{source} lists no field")
    result = QTable()
    for name in _COLUMNS + ("rerun",):
        result[name] = _integers(table, name, source)
    result["name"] = [field_name(*row) for row in zip(result["run"], result["camcol"],
                                                      result["field"])]
    _, first = np.unique(result["name"], return_index=True)
    return result[np.sort(first)]
