# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""PSFGAN against the parametric fit: magnitude errors on artificial AGN of known flux."""

import functools
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from astropy import units as u
from astropy.table import QTable, vstack
from astropy.utils.console import ProgressBar

from ..io.sdss import nanomaggies_to_mag
from .decomposition import FLAG_FAILED, FLAG_PS_FIT, DecompositionErrors

__all__ = ["evaluate_decomposition", "calibrate_decomposition_errors", "pull_width",
           "summarize_decomposition", "false_positive_rate", "plot_completeness", "plot_pulls",
           "plot_magnitude_errors", "plot_psf_mismatch"]

#: A decomposition whose flags hold any of these bits counts as failed.
FAILED_FLAGS = FLAG_FAILED | FLAG_PS_FIT


def evaluate_decomposition(pairs, decompose, method, chunk=64, workers=1, keep=(),
                           progress=True):
    """Magnitude errors of a decomposition method on PSFGAN pairs of known truth.

    Parameters
    ----------
    pairs : `~galaxyml.datasets.TrainingPairs`
        Made by `~galaxyml.datasets.make_psfgan_pairs`: the conditions are
        the inputs, the manifest's ``ps_flux`` and ``host_flux`` the truth.
    decompose : callable
        ``decompose(list of cutouts) -> (hosts, table)``, for example
        ``model.remove_point_source`` or
        `~galaxyml.morphology.fit_point_source_sersic` (a module-level
        function, for ``workers`` > 1).
    method : str
        Name of the method in the results.
    chunk : int
        Pairs per call of ``decompose``.
    workers : int
        Processes to spread the chunks over; the seconds reported are each
        call's own wall time, so they do not depend on it.
    keep : sequence of int
        Manifest rows whose inputs and hosts are returned, for a gallery.
    progress : bool
        Show a progress bar.

    Returns
    -------
    runs : `~astropy.table.QTable`
        One row per pair: ``pair_id``, ``galaxy_id``, ``contrast``,
        ``psf_scale``, ``method``, ``ps_flux_true``, ``host_flux_true``, the
        decomposition table's ``ps_detected``, ``ps_snr``, ``ps_flux``,
        ``ps_flux_err``, ``ps_flux_upper``, ``host_flux``, ``host_flux_err``,
        ``host_core_flux``, ``ps_mag_true``, ``host_mag_true``,
        ``ps_mag``, ``host_mag``, their errors ``ps_dmag``, ``host_dmag``
        (measured minus true), ``host_sersic_mag`` and
        ``host_sersic_dmag`` (the fit's Sérsic magnitude; NaN for other
        methods), ``flags``, ``failed`` (no finite magnitude, or the fit
        flagged as failed or not converged) and ``seconds`` (per galaxy,
        its chunk's mean).
    examples : dict
        Row -> (input, host) for the rows in ``keep``.
    """
    manifest = pairs.manifest
    starts = list(range(0, len(manifest), chunk))
    inputs = (([pairs.linear_pair(k)[0] for k in range(start, min(start + chunk, len(manifest)))],
               decompose) for start in starts)
    tables, examples = [], {}
    bar = ProgressBar(len(starts)) if progress else None
    with (ProcessPoolExecutor(workers) if workers > 1 else _Serial()) as pool:
        for start, (hosts, table, seconds) in zip(starts, pool.map(_timed, inputs)):
            table["seconds"] = seconds / len(table)
            tables.append(table)
            for k in keep:
                if start <= k < start + len(table):
                    examples[k] = (pairs.linear_pair(k)[0], hosts[k - start])
            if bar is not None:
                bar.update()
    return _runs(manifest, vstack(tables), method), examples


class _Serial:
    """The `concurrent.futures` executor interface, run in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(function, iterable):
        return map(function, iterable)


def _timed(job):
    conditions, decompose = job
    start = time.perf_counter()
    hosts, table = decompose(conditions)
    return hosts, table, time.perf_counter() - start


def _runs(manifest, table, method):
    runs = QTable()
    for name in ("pair_id", "galaxy_id", "contrast", "psf_scale"):
        runs[name] = manifest[name]
    runs["method"] = [method] * len(runs)
    runs["ps_flux_true"] = u.Quantity(manifest["ps_flux"], u.nanomaggy)
    runs["host_flux_true"] = u.Quantity(manifest["host_flux"], u.nanomaggy)
    for name in ("ps_detected", "ps_snr", "ps_flux", "ps_flux_err", "ps_flux_upper",
                 "host_flux", "host_flux_err", "host_core_flux"):
        runs[name] = table[name]
    runs["ps_mag_true"] = nanomaggies_to_mag(manifest["ps_flux"])
    runs["host_mag_true"] = nanomaggies_to_mag(manifest["host_flux"])
    for part in ("ps", "host"):
        runs[f"{part}_mag"] = table[f"{part}_mag"]
        runs[f"{part}_dmag"] = (table[f"{part}_mag"].value - runs[f"{part}_mag_true"].value) * u.mag
    # NaN for methods without a Sérsic magnitude, so that tables of several methods stack.
    sersic = (table["host_sersic_mag"].value if "host_sersic_mag" in table.colnames
              else np.full(len(table), np.nan))
    runs["host_sersic_mag"] = sersic * u.ABmag
    runs["host_sersic_dmag"] = (sersic - runs["host_mag_true"].value) * u.mag
    runs["flags"] = table["flags"]
    runs["failed"] = ((np.asarray(table["flags"]) & FAILED_FLAGS) > 0) | ~(
        np.isfinite(runs["ps_flux"].value) & np.isfinite(runs["host_flux"].value))
    with np.errstate(divide="ignore", invalid="ignore"):
        for part in ("ps", "host"):
            runs[f"{part}_pull"] = ((runs[f"{part}_flux"] - runs[f"{part}_flux_true"])
                                    / runs[f"{part}_flux_err"]).value
    runs["seconds"] = table["seconds"] * u.s
    return runs


def false_positive_rate(images, decompose, method, chunk=64, psf=None):
    """Point-source detections on galaxies that have none.

    Parameters
    ----------
    images : list
        Galaxies without a point source (cutouts, CCDData or arrays).
    decompose : callable
        ``decompose(list of images, psf=psf) -> (hosts, table)``.
    method : str
    chunk : int
        Images per call.
    psf : optional
        Passed on (for example the PSF of simulated galaxies).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per image: ``method``, ``ps_detected``, ``ps_snr``,
        ``ps_flux``, ``ps_flux_err``, ``flags``, ``seconds`` (per galaxy).
    """
    tables = []
    for start in range(0, len(images), chunk):
        begin = time.perf_counter()
        kwargs = {} if psf is None else {"psf": psf}
        _, table = decompose(images[start:start + chunk], **kwargs)
        seconds = (time.perf_counter() - begin) / len(table)
        part = table["ps_detected", "ps_snr", "ps_flux", "ps_flux_err", "flags"]
        part.meta.clear()  # the method is a column here
        part["seconds"] = np.full(len(part), seconds) * u.s
        tables.append(part)
    table = vstack(tables)
    table.add_column([method] * len(table), name="method", index=0)
    return table


def calibrate_decomposition_errors(pairs, decompose, chunk=64, workers=1, progress=True):
    """The `~galaxyml.morphology.DecompositionErrors` of a method, from pairs of known truth.

    Parameters
    ----------
    pairs : `~galaxyml.datasets.TrainingPairs`
        Made by `~galaxyml.datasets.make_psfgan_pairs` on the training side,
        with pairs without a point source among them.
    decompose : callable
        As for `evaluate_decomposition`; it must take ``errors`` and
        ``threshold``, as `~galaxyml.gan.PSFGAN.remove_point_source` and
        `~galaxyml.morphology.fit_point_source_sersic` do.
    chunk, workers, progress
        As for `evaluate_decomposition`.

    Returns
    -------
    errors : `~galaxyml.morphology.DecompositionErrors`
    """
    raw = functools.partial(decompose, errors=DecompositionErrors(), threshold=-np.inf)
    runs, _ = evaluate_decomposition(pairs, raw, "uncalibrated", chunk=chunk, workers=workers,
                                     progress=progress)
    return DecompositionErrors.calibrate(runs, runs["ps_flux_true"].value,
                                         runs["host_flux_true"].value,
                                         meta={"n_galaxies": int(len(np.unique(
                                             runs["galaxy_id"])))})


def _bias_and_scatter(values):
    """Median and half the 16-84 per cent range of the finite values (NaN if none)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    low, median, high = np.percentile(values, [16, 50, 84])
    return float(median), float((high - low) / 2)


def pull_width(pulls):
    """Half the 16-84 per cent range of the finite pulls: 1 for calibrated errors."""
    return _bias_and_scatter(pulls)[1]


_SUMMARY_COLUMNS = ["n", "failed_fraction", "detected_fraction", "ps_bias", "ps_scatter",
                    "host_bias", "host_scatter", "host_sersic_bias", "host_sersic_scatter",
                    "ps_pull_width", "ps_pull_std", "host_pull_width", "host_pull_std",
                    "seconds_per_galaxy"]


def summarize_decomposition(runs, by=("method", "contrast")):
    """Detection rate, bias, scatter and pull width per group of decompositions.

    Failed decompositions are counted (``failed_fraction``) and left out
    of the statistics.

    Parameters
    ----------
    runs : `~astropy.table.QTable`
        From `evaluate_decomposition` (several methods stacked).
    by : sequence of str
        Columns to group by.

    Returns
    -------
    summary : `~astropy.table.QTable`
        The ``by`` columns, ``n``, ``failed_fraction``, ``detected_fraction``
        (of all pairs: the completeness, or at contrast 0 the false-positive
        rate), ``ps_bias`` and ``ps_scatter`` (median and half the 16-84%
        range of the point-source magnitude error, over the detected),
        ``host_bias``, ``host_scatter``, ``host_sersic_bias`` and
        ``host_sersic_scatter`` (NaN for methods without a Sérsic
        magnitude), all in mag; ``ps_pull_width`` and ``host_pull_width``
        (half the 16-84% range of (measured - true flux) / error, 1 for
        calibrated errors) and ``ps_pull_std``, ``host_pull_std`` (their
        standard deviation within 5); ``seconds_per_galaxy``.
    """
    groups = runs.group_by(list(by))
    rows = []
    for key, group in zip(groups.groups.keys, groups.groups):
        good = group[~np.asarray(group["failed"])]
        row = {name: key[name] for name in by}
        row["n"] = len(group)
        row["failed_fraction"] = float(np.mean(group["failed"]))
        row["detected_fraction"] = float(np.mean(group["ps_detected"]))
        for part in ("ps", "host", "host_sersic"):
            row[f"{part}_bias"], row[f"{part}_scatter"] = _bias_and_scatter(
                good[f"{part}_dmag"].value)
        for part in ("ps", "host"):
            pulls = np.asarray(good[f"{part}_pull"], float)
            row[f"{part}_pull_width"] = pull_width(pulls)
            inside = pulls[np.isfinite(pulls) & (np.abs(pulls) < 5)]
            row[f"{part}_pull_std"] = float(np.std(inside)) if inside.size else np.nan
        row["seconds_per_galaxy"] = float(np.mean(group["seconds"].value))
        rows.append(row)
    if not rows:
        return QTable(names=list(by) + _SUMMARY_COLUMNS)
    summary = QTable(rows=rows)
    for name in ("ps_bias", "ps_scatter", "host_bias", "host_scatter", "host_sersic_bias",
                 "host_sersic_scatter"):
        summary[name].unit = u.mag
    summary["seconds_per_galaxy"].unit = u.s
    return summary


def plot_completeness(summary, methods, figure=None):
    """The fraction of point sources detected against contrast, per method.

    Contrast 0 (galaxies without a point source) is drawn at the left
    edge: there the fraction is the false-positive rate.

    Parameters
    ----------
    summary : `~astropy.table.QTable`
        `summarize_decomposition` by ``("method", "contrast")``.
    methods : sequence of str

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    positive = summary["contrast"] > 0
    left = 0.5 * float(np.min(summary["contrast"][positive]))
    for method in methods:
        rows = summary[summary["method"] == method]
        rows = rows[np.argsort(rows["contrast"])]
        x = np.where(rows["contrast"] > 0, rows["contrast"], left)
        ax.plot(x, rows["detected_fraction"], marker="o", label=method)
    ax.axhline(0.05, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"contrast (point-source / host flux); no point source at {left:g}")
    ax.set_ylabel("fraction detected")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return figure


def plot_pulls(runs, methods, contrasts, figure=None):
    """Histograms of the pulls (measured - true flux) / error, per method and contrast.

    Parameters
    ----------
    runs : `~astropy.table.QTable`
        From `evaluate_decomposition`, several methods stacked.
    methods : sequence of str
    contrasts : sequence of float
        One panel column each (point source and host in two rows).

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(2.6 * len(contrasts), 5), layout="constrained")
    axes = figure.subplots(2, len(contrasts), sharex=True, squeeze=False)
    bins = np.linspace(-5, 5, 26)
    grid = np.linspace(-5, 5, 200)
    for column, contrast in enumerate(contrasts):
        for row, (part, label) in enumerate((("ps", "point source"), ("host", "host"))):
            ax = axes[row, column]
            for method in methods:
                chosen = runs[(runs["method"] == method) & (runs["contrast"] == contrast)
                              & ~np.asarray(runs["failed"])]
                pulls = np.clip(np.asarray(chosen[f"{part}_pull"], float), -4.99, 4.99)
                ax.hist(pulls[np.isfinite(pulls)], bins=bins, density=True, histtype="step",
                        label=method)
            ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), color="0.4", lw=0.8,
                    ls=":")
            ax.set_title(f"{label}, contrast {contrast:g}", fontsize=8)
            if row == 1:
                ax.set_xlabel("(measured - true) / error")
    axes[0, 0].legend(fontsize=6)
    return figure


def plot_magnitude_errors(runs, methods, figure=None):
    """Point-source and host magnitude errors against contrast, median and 16-84% band.

    Parameters
    ----------
    runs : `~astropy.table.QTable`
        From `evaluate_decomposition`, several methods stacked.
    methods : sequence of str
        The methods to draw, in order.

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    for ax, part, label in zip(axes, ("ps", "host"), ("point source", "host galaxy")):
        for k, method in enumerate(methods):
            chosen = runs[(runs["method"] == method) & ~np.asarray(runs["failed"])]
            contrasts = np.unique(chosen["contrast"])
            stats = np.array([np.percentile(chosen[f"{part}_dmag"].value[
                chosen["contrast"] == c], [16, 50, 84]) for c in contrasts])
            shift = 1 + 0.04 * (k - (len(methods) - 1) / 2)  # side by side on the log axis
            ax.errorbar(contrasts * shift, stats[:, 1], yerr=[stats[:, 1] - stats[:, 0],
                                                              stats[:, 2] - stats[:, 1]],
                        marker="o", capsize=3, label=method)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("contrast (point-source / host flux)")
        ax.set_ylabel(f"{label}: measured - true magnitude")
        ax.set_title(f"{label} magnitude (median, 16-84%)")
    axes[0].legend()
    return figure


def plot_psf_mismatch(summary, methods, figure=None):
    """Scatter of the magnitude errors against the width of the test PSF, per method.

    Parameters
    ----------
    summary : `~astropy.table.QTable`
        `summarize_decomposition` by ``("method", "psf_scale")``.
    """
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    for ax, part, label in zip(axes, ("ps", "host"), ("point source", "host galaxy")):
        for method in methods:
            rows = summary[summary["method"] == method]
            rows = rows[np.argsort(rows["psf_scale"])]
            ax.plot(rows["psf_scale"], rows[f"{part}_scatter"].value, marker="o", label=method)
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.set_xlabel("test PSF width / the PSF the methods are given")
        ax.set_ylabel(f"{label} magnitude scatter (mag)")
    axes[0].legend()
    return figure
