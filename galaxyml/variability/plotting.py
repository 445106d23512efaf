# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Figures: structure functions from days to Gyr; an observed light curve and its model."""

import numpy as np
from astropy import units as u

__all__ = ["plot_structure_function", "plot_light_curve_model"]


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


def plot_light_curve_model(model, curves=None, n_shown=3, time_unit=u.hour):
    """The observed light curve next to its fitted model and simulations.

    Three panels: the light curve with ``n_shown`` simulated curves; the
    binned log periodogram against the PSRESP simulations' mean and 1-sigma
    scatter (`~galaxyml.variability.PSDFit`); the flux histogram against the
    fitted PDF and the simulated curves' pooled fluxes.

    Parameters
    ----------
    model : `~galaxyml.variability.LightCurveModel`
    curves : `~galaxyml.variability.LightCurves`, optional
        Simulations of ``model`` (by default 20 with seed 0).
    n_shown : int
        Simulated curves drawn over the data.
    time_unit : `~astropy.units.Unit`
        Unit of the time axis.

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    curves = model.simulate(20, seed=0) if curves is None else curves
    figure, (lc_ax, psd_ax, pdf_ax) = plt.subplots(1, 3, figsize=(13, 3.8),
                                                   width_ratios=(2, 1.2, 1.2))
    table = model.table
    time = (table["time"] - table["time"][0]).to_value(time_unit)
    lc_ax.errorbar(time, table["flux"].value, yerr=table["error"].value, fmt=".", color="k",
                   markersize=2, elinewidth=0.5, label="observed")
    for k in range(min(n_shown, curves.shape[0])):
        lc_ax.plot(curves.time.to_value(time_unit), curves.values[k], lw=0.7, alpha=0.8,
                   label="simulated" if k == 0 else None)
    lc_ax.set_xlabel(f"time [{time_unit.to_string()}]")
    lc_ax.set_ylabel(f"flux [{table['flux'].unit.to_string() or 'counts/s'}]")
    lc_ax.legend(fontsize="small")

    fit = model.psd_fit
    psd_ax.fill_between(fit.frequency, fit.expected - fit.scatter, fit.expected + fit.scatter,
                        alpha=0.3, color="C0", linewidth=0)
    psd_ax.plot(fit.frequency, fit.expected, color="C0",
                label=f"model (PSRESP p = {fit.probability:.2f})")
    psd_ax.plot(fit.frequency, fit.observed, "ko", markersize=3, label="observed")
    psd_ax.set_xscale("log")
    psd_ax.set_xlabel("frequency [Hz]")
    psd_ax.set_ylabel("mean log10 periodogram [(rms/mean)$^2$/Hz]")
    psd_ax.legend(fontsize="small")

    flux = table["flux"].value
    bins = np.linspace(flux.min(), flux.max(), 30)
    pdf_ax.hist(flux, bins=bins, density=True, color="0.6", label="observed")
    pdf_ax.hist(curves.values.ravel(), bins=bins, density=True, histtype="step", color="C1",
                label="simulated")
    grid = np.linspace(bins[0], bins[-1], 300)
    pdf_ax.plot(grid, model.pdf.pdf(grid), color="C0", label=f"fitted {model.pdf.model}")
    pdf_ax.set_xlabel("flux")
    pdf_ax.set_ylabel("probability density")
    pdf_ax.legend(fontsize="small")
    figure.tight_layout()
    return figure
