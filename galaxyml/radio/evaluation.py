# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Comparing float32 and few-bit NIHT with CLEAN on simulated skies."""

import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.utils.console import ProgressBar

from .clean import dirty_image, hogbom_clean
from .sky import add_visibility_noise, simulate_sky
from .solvers import niht, quantized_niht, relative_error, support_recovery

__all__ = ["evaluate_iht", "summarize_iht", "plot_iht_comparison"]


def evaluate_iht(operator, n_skies=5, bits=(32, 8, 4, 2), snr=1.0, n_point=20, n_gaussian=5,
                 seed=0, clean=True, max_iter=300, progress=True):
    """Image simulated skies with NIHT at several bit widths, and with CLEAN.

    Every method sees the same noisy visibilities of each sky.  NIHT keeps
    as many pixels as the sky has nonzero pixels (the oracle sparsity
    usual in compressive-sensing comparisons) and only positive ones.

    Parameters
    ----------
    operator : `~galaxyml.radio.MeasurementOperator`
        Station, frequency and sky grid.
    n_skies : int
        Number of sky realisations.
    bits : sequence of int
        32 for float32 NIHT, else bit widths for `quantized_niht`.
    snr : float
        rms visibility over rms noise.
    n_point, n_gaussian : int
        Sources per sky (see `~galaxyml.radio.simulate_sky`).
    seed : int
        Seed of the skies, the noise and the quantization.
    clean : bool
        Add Hogbom CLEAN.
    max_iter : int
        Iteration cap of NIHT.
    progress : bool
        Show a progress bar over the skies.

    Returns
    -------
    runs : `~astropy.table.QTable`
        One row per sky and method: ``sky``, ``method``, ``bits``,
        ``relative_error``, ``support_recovery``, ``iterations``,
        ``converged``, ``matrix_bytes``, ``seconds_per_iteration``.
    examples : dict
        Images (`~astropy.nddata.CCDData`) of the first sky: ``truth``,
        ``dirty``, ``clean`` and one per bit width.
    """
    matrix = operator.matrix(np.float32) if 32 in bits else None
    rows, examples = [], {}
    skies = range(n_skies)
    for index in (ProgressBar(skies) if progress else skies):
        sky, catalog = simulate_sky(operator.grid, n_point, n_gaussian, seed=seed + index)
        noisy, _ = add_visibility_noise(operator.visibilities(sky), snr, seed=seed + 1000 + index)
        data = operator.real_data(noisy)
        sparsity = int(np.count_nonzero(sky))
        for width in bits:
            if width == 32:
                result = niht(matrix, data, sparsity, max_iter=max_iter, positive=True)
                method = "NIHT float32"
            else:
                result = quantized_niht(operator, data, sparsity, bits=width, max_iter=max_iter,
                                        positive=True, seed=seed + index)
                method = f"NIHT {width}-bit"
            rows.append(_row(index, method, width, result.x, sky, catalog, operator.grid.shape,
                             result.iterations, result.converged, result.matrix_nbytes,
                             result.seconds_per_iteration))
            if index == 0:
                examples[method] = operator.grid.to_ccddata(result.x)
        if clean:
            cleaned = hogbom_clean(operator, noisy)
            rows.append(_row(index, "CLEAN", 0, cleaned.model.data, sky, catalog,
                             operator.grid.shape, cleaned.iterations, True, 0, np.nan))
            if index == 0:
                examples["CLEAN"] = cleaned.restored
        if index == 0:
            examples["truth"] = operator.grid.to_ccddata(sky)
            examples["dirty"] = dirty_image(operator, noisy)
    runs = QTable(rows=rows, names=["sky", "method", "bits", "relative_error",
                                    "support_recovery", "iterations", "converged",
                                    "matrix_bytes", "seconds_per_iteration"])
    runs["matrix_bytes"].unit = u.byte
    runs["seconds_per_iteration"].unit = u.s
    runs.meta.update(snr=snr, n_point=n_point, n_gaussian=n_gaussian, seed=seed,
                     operator=repr(operator))
    return runs, examples


def _row(index, method, bits, estimate, sky, catalog, shape, iterations, converged, nbytes,
         seconds):
    return (index, method, bits, relative_error(estimate, sky),
            support_recovery(estimate, catalog, shape), iterations, converged, nbytes, seconds)


def summarize_iht(runs):
    """Means over the skies per method, with ratios to float32 NIHT.

    Returns
    -------
    summary : `~astropy.table.QTable`
        ``method``, ``bits``, ``mean_error``, ``std_error``,
        ``error_ratio`` (to float32), ``support_recovery``, ``iterations``,
        ``matrix_bytes``, ``memory_reduction`` (float32 bytes over these),
        ``seconds_per_iteration`` and ``speedup`` (float32 time over this).
    """
    methods = list(dict.fromkeys(runs["method"]))
    rows = []
    for method in methods:
        part = runs[runs["method"] == method]
        rows.append((method, int(part["bits"][0]), np.mean(part["relative_error"]),
                     np.std(part["relative_error"]), np.mean(part["support_recovery"]),
                     np.mean(part["iterations"]), int(part["matrix_bytes"][0].value),
                     np.mean(part["seconds_per_iteration"].value)))
    summary = QTable(rows=rows, names=["method", "bits", "mean_error", "std_error",
                                       "support_recovery", "iterations", "matrix_bytes",
                                       "seconds_per_iteration"])
    reference = summary[summary["bits"] == 32]
    if len(reference):
        base = reference[0]
        summary["error_ratio"] = summary["mean_error"] / base["mean_error"]
        with np.errstate(divide="ignore", invalid="ignore"):
            summary["memory_reduction"] = np.where(summary["matrix_bytes"] > 0,
                                                   base["matrix_bytes"] / summary["matrix_bytes"],
                                                   np.nan)
            summary["speedup"] = base["seconds_per_iteration"] / summary["seconds_per_iteration"]
    summary["matrix_bytes"].unit = u.byte
    summary["seconds_per_iteration"].unit = u.s
    summary.meta.update(runs.meta)
    return summary


def plot_iht_comparison(summary, examples, figure=None):
    """Error, memory and time per method, and example images of one sky.

    Parameters
    ----------
    summary : `~astropy.table.QTable`
        From `summarize_iht`.
    examples : dict
        From `evaluate_iht`.
    figure : `~matplotlib.figure.Figure`, optional
        Best made with ``layout="constrained"``.

    Returns
    -------
    figure : `~matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt
    from astropy.visualization import ImageNormalize, PercentileInterval, SqrtStretch

    figure = figure or plt.figure(figsize=(13, 7), layout="constrained")
    top, bottom = figure.subfigures(2, 1)
    names = list(summary["method"])
    positions = np.arange(len(names))
    ax = top.add_subplot(1, 3, 1)
    ax.bar(positions, summary["mean_error"], yerr=summary["std_error"], color="C0")
    ax.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(r"$\|\hat x - x\| / \|x\|$")
    ax.set_title("recovery error (mean over skies)", fontsize=9)
    niht_rows = summary[summary["bits"] > 0]
    niht_positions = np.arange(len(niht_rows))
    ax = top.add_subplot(1, 3, 2)
    ax.bar(niht_positions, niht_rows["matrix_bytes"].to_value(u.MB), color="C1")
    ax.set_xticks(niht_positions, niht_rows["method"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("matrix memory [MB]")
    ax.set_yscale("log")
    ax.set_title("memory of the streamed matrix", fontsize=9)
    ax = top.add_subplot(1, 3, 3)
    ax.bar(niht_positions, 1e3 * niht_rows["seconds_per_iteration"].to_value(u.s), color="C2")
    ax.set_xticks(niht_positions, niht_rows["method"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("ms per iteration")
    ax.set_title("time per NIHT iteration", fontsize=9)
    shown = [name for name in ("truth", "dirty", "CLEAN", "NIHT float32", "NIHT 4-bit",
                               "NIHT 2-bit") if name in examples][:6]
    truth = examples.get("truth")
    norm_data = truth.data if truth is not None else examples[shown[0]].data
    norm = ImageNormalize(norm_data, interval=PercentileInterval(99.9), stretch=SqrtStretch())
    for k, name in enumerate(shown):
        ax = bottom.add_subplot(1, len(shown), k + 1)
        image = examples[name].data
        # Sky models share the truth's scale; dirty and restored images are in Jy / beam.
        ax.imshow(image, origin="lower", cmap="inferno",
                  norm=norm if name not in ("dirty", "CLEAN") else None)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    return figure
