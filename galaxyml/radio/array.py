# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Antenna layouts of a radio station or array, and their baselines."""

import numpy as np
from astropy import units as u
from astropy.table import QTable

from ..exceptions import AntennaTableError, InvalidParameterError

__all__ = ["antenna_table", "lofar_station_layout", "baselines"]

_COLUMNS = ("east", "north", "up")


def antenna_table(table):
    """Check an antenna table and return it as a QTable with lengths in metres.

    Parameters
    ----------
    table : `~astropy.table.Table` or mapping
        Columns ``east``, ``north``, ``up``: positions in a local
        east-north-up frame (lengths, or numbers in metres); an optional
        ``name`` column.

    Raises
    ------
    AntennaTableError
        If a column is missing, a position is not finite, or two antennas
        share a position (their baseline would be zero).
    """
    table = QTable(table)
    missing = [name for name in _COLUMNS if name not in table.colnames]
    if missing:
        raise AntennaTableError(f"the antenna table lacks the columns {missing} "
                                f"(it has {table.colnames}); positions are east, north, up")
    out = QTable()
    out["name"] = (table["name"] if "name" in table.colnames
                   else [f"A{k:03d}" for k in range(len(table))])
    for name in _COLUMNS:
        out[name] = u.Quantity(table[name], u.m)
    positions = np.column_stack([out[name].to_value(u.m) for name in _COLUMNS])
    if not np.all(np.isfinite(positions)):
        raise AntennaTableError("antenna positions must be finite")
    if len(positions) < 2:
        raise AntennaTableError(f"an interferometer needs at least 2 antennas, not "
                                f"{len(positions)}")
    _, first, counts = np.unique(np.round(positions, 6), axis=0, return_index=True,
                                 return_counts=True)
    if np.any(counts > 1):
        duplicate = positions[first[counts > 1][0]]
        raise AntennaTableError(f"{int((counts - 1).sum())} antennas share a position with "
                                f"another, e.g. at {duplicate} m")
    return out


def lofar_station_layout(n_antennas=96, radius=40 * u.m, min_spacing=2.5 * u.m, seed=0):
    """A LOFAR-like low-band station: antennas scattered over a disc.

    LOFAR's low-band stations place their dipoles pseudo-randomly, denser
    towards the centre, to spread the baselines evenly; here positions are
    drawn with a radial density falling as 1 / r, with a smallest spacing.

    Parameters
    ----------
    n_antennas : int
        Number of antennas (48 or 96 in LOFAR stations).
    radius : `~astropy.units.Quantity`
        Radius of the station.
    min_spacing : `~astropy.units.Quantity`
        Smallest distance between two antennas.
    seed : int
        Seed of the layout.

    Returns
    -------
    antennas : `~astropy.table.QTable`
        ``name``, ``east``, ``north``, ``up`` (zero).
    """
    rng = np.random.default_rng(seed)
    radius = u.Quantity(radius, u.m).value
    spacing = u.Quantity(min_spacing, u.m).value
    positions = []
    for _ in range(200 * n_antennas):
        if len(positions) == n_antennas:
            break
        r = radius * rng.uniform()  # uniform in r: a density ~ 1 / r on the disc
        angle = rng.uniform(0, 2 * np.pi)
        candidate = np.array([r * np.cos(angle), r * np.sin(angle)])
        if all(np.hypot(*(candidate - p)) >= spacing for p in positions):
            positions.append(candidate)
    if len(positions) < n_antennas:
        raise InvalidParameterError(f"cannot place {n_antennas} antennas {spacing} m apart within "
                                    f"{radius} m")
    positions = np.array(positions)
    return antenna_table({"name": [f"LBA{k:03d}" for k in range(n_antennas)],
                          "east": positions[:, 0] * u.m, "north": positions[:, 1] * u.m,
                          "up": np.zeros(n_antennas) * u.m})


def baselines(antennas):
    """Baseline vectors r_q - r_p for every pair p < q (no autocorrelations).

    Returns
    -------
    vectors : `~astropy.units.Quantity`, shape (n_pairs, 3)
        East, north, up components.
    pairs : `~numpy.ndarray`, shape (n_pairs, 2)
        Antenna indices (p, q).
    """
    antennas = antenna_table(antennas)
    positions = np.column_stack([antennas[name].to_value(u.m) for name in _COLUMNS])
    p, q = np.triu_indices(len(positions), k=1)
    return (positions[q] - positions[p]) * u.m, np.column_stack([p, q])
