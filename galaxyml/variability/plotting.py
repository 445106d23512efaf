# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Figures of structure functions from days to Gyr."""

import numpy as np
from astropy import units as u

__all__ = ["plot_structure_function"]


def plot_structure_function(simulations, observations=None, ax=None, percentiles=(16, 84),
                            time_unit=u.yr, only_reliable=True, label="simulated ensemble",
                            color="C0"):
    """Plot ensemble structure functions with observed points overlaid.

    Parameters
    ----------
    simulations : `~astropy.table.QTable` or list of them
        Outputs of `~galaxyml.variability.structure_function` for ensembles
        of curves (a 2-D ``sf`` column), for example of
        `~galaxyml.variability.ensemble_structure_function`.  The median over
        curves is drawn as a line and ``percentiles`` as a band.
    observations : `~astropy.table.QTable`, optional
        Observed points with columns ``dt`` (Quantity), ``sf``, ``error`` and
        ``label``; one marker style per label.
    ax : `matplotlib.axes.Axes`, optional
        Axes to draw in.
    percentiles : tuple of float
        Lower and upper percentiles of the band.
    time_unit : `~astropy.units.Unit`
        Unit of the lag axis.
    only_reliable : bool
        Draw only the lags flagged reliable.

    Returns
    -------
    ax : `matplotlib.axes.Axes`
    """
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.figure(figsize=(7, 4.5)).add_subplot()
    tables = simulations if isinstance(simulations, (list, tuple)) else [simulations]
    for number, table in enumerate(tables):
        rows = table[table["reliable"]] if only_reliable and "reliable" in table.colnames \
            else table
        lag = rows["dt"].to_value(time_unit)
        sf = np.atleast_2d(np.asarray(rows["sf"]).T)
        low, median, high = np.percentile(sf, [percentiles[0], 50, percentiles[1]], axis=0)
        ax.fill_between(lag, low, high, color=color, alpha=0.25, linewidth=0,
                        label=f"{percentiles[0]}-{percentiles[1]}%" if number == 0 else None)
        ax.plot(lag, median, color=color, label=label if number == 0 else None)
    if observations is not None:
        for index, name in enumerate(np.unique(observations["label"])):
            rows = observations[observations["label"] == name]
            ax.errorbar(rows["dt"].to_value(time_unit), rows["sf"], yerr=rows["error"],
                        fmt="os^vDP"[index % 6], color=f"C{index + 1}", label=str(name),
                        markersize=4, capsize=2, linestyle="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"time lag [{time_unit.to_string()}]")
    ax.set_ylabel("structure function [mag]")
    ax.legend(loc="upper left", fontsize="small")
    return ax
