# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN against classical deconvolution, cell by cell of a degradation grid."""

import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.utils.console import ProgressBar

from ..degrade.core import background_std
from ..degrade.core import galaxygan_kernel
from .baselines import DECONVOLUTION_METHODS
from .metrics import central_segment, flux_error, psnr, residual_rms, ssim

__all__ = ["ITERATION_CANDIDATES", "deconvolve", "tune_iterations", "evaluate_restoration",
           "summarize_restoration", "plot_restoration_grid"]

#: Iteration counts tried for the iterative baselines on the training side.
ITERATION_CANDIDATES = (1, 2, 3, 5, 10, 20, 40)


def deconvolve(method, data, fwhm, iterations):
    """Deconvolve each band of (n_bands, ny, nx) ``data`` by the known extra blur."""
    function = DECONVOLUTION_METHODS[method]
    kernel = galaxygan_kernel(fwhm)
    return np.stack([function(plane, kernel, iterations) for plane in data])


def _cells(manifest):
    return sorted({(float(f), float(s)) for f, s in zip(manifest["fwhm"].value,
                                                        manifest["sigma"])})


def tune_iterations(pairs, methods=("Richardson-Lucy", "blind"), candidates=ITERATION_CANDIDATES,
                    n_galaxies=6):
    """The iteration count of each iterative baseline that maximises its mean PSNR, per cell.

    Parameters
    ----------
    pairs : `~galaxyml.datasets.TrainingPairs`
        GalaxyGAN pairs of the training side.
    methods : sequence of str
        Iterative methods of `DECONVOLUTION_METHODS`.
    candidates : sequence of int
        Counts tried.
    n_galaxies : int
        Galaxies used per cell (the first ones of the manifest).

    Returns
    -------
    best : dict
        method -> {(fwhm, sigma): iterations}.
    """
    stretch = pairs.stretch
    manifest = pairs.manifest
    galaxies = list(dict.fromkeys(manifest["galaxy_id"]))[:n_galaxies]
    best = {method: {} for method in methods}
    for fwhm, sigma in _cells(manifest):
        rows = [k for k in range(len(manifest)) if manifest["galaxy_id"][k] in galaxies
                and np.isclose(manifest["fwhm"][k].value, fwhm)
                and np.isclose(manifest["sigma"][k], sigma)]
        linear = [pairs.linear_pair(k) for k in rows]
        for method in methods:
            scores = []
            for count in candidates:
                scores.append(np.mean([
                    psnr(stretch(target.data, warn=False),
                         stretch(deconvolve(method, condition.data, fwhm, count), warn=False))
                    for condition, target in linear]))
            best[method][(fwhm, sigma)] = int(candidates[int(np.argmax(scores))])
    return best


def evaluate_restoration(model, pairs, iterations, methods=("Richardson-Lucy", "Wiener", "blind"),
                         progress=True, keep="first"):
    """Metrics of GalaxyGAN, the baselines and the degraded input on every pair.

    Parameters
    ----------
    model : `~galaxyml.gan.GalaxyGAN`
    pairs : `~galaxyml.datasets.TrainingPairs`
        Held-out GalaxyGAN pairs.
    iterations : dict
        From `tune_iterations` (methods missing there run with 10).
    methods : sequence of str
        Baselines.
    progress : bool
    keep : {'first', 'all'}
        Which images to return: those of each cell's first pair, or of
        every pair.

    Returns
    -------
    runs : `~astropy.table.QTable`
        One row per pair and method: ``pair_id``, ``galaxy_id``, ``fwhm``,
        ``sigma``, ``method``, ``psnr``, ``ssim`` (stretched),
        ``flux_error`` (in the galaxy's segment), ``residual_rms`` (in units
        of the original noise).
    examples : dict
        (fwhm, sigma) -> {name: (n_bands, ny, nx) image} of the first pair
        of each cell; with ``keep='all'``, pair_id -> the same for every pair.
    """
    stretch = pairs.stretch
    manifest = pairs.manifest
    linear = [pairs.linear_pair(k) for k in range(len(pairs))]
    recovered = model.recover([condition.data for condition, _ in linear])
    rows, examples = [], {}
    indices = range(len(pairs))
    for k in (ProgressBar(indices) if progress else indices):
        condition, target = linear[k]
        fwhm, sigma = float(manifest["fwhm"][k].value), float(manifest["sigma"][k])
        estimates = {"GalaxyGAN": recovered[k], "degraded": condition.data}
        for method in methods:
            count = iterations.get(method, {}).get((fwhm, sigma), 10)
            estimates[method] = deconvolve(method, condition.data, fwhm, count)
        reference = target.data[target.data.shape[0] // 2]
        segment = central_segment(reference)
        noise = background_std(reference)
        stretched_target = stretch(target.data, warn=False)
        for name, estimate in estimates.items():
            stretched = stretch(estimate, warn=False)
            rows.append((int(manifest["pair_id"][k]), int(manifest["galaxy_id"][k]), fwhm, sigma,
                         name, psnr(stretched_target, stretched), ssim(stretched_target, stretched),
                         np.nan if segment is None else flux_error(
                             reference, estimate[target.data.shape[0] // 2], segment),
                         residual_rms(target.data, estimate, noise)))
        key = int(manifest["pair_id"][k]) if keep == "all" else (fwhm, sigma)
        examples.setdefault(key, dict(estimates, original=target.data))
    runs = QTable(rows=rows, names=["pair_id", "galaxy_id", "fwhm", "sigma", "method", "psnr",
                                    "ssim", "flux_error", "residual_rms"])
    runs["fwhm"].unit = u.arcsec
    runs["psnr"].unit = u.dB
    return runs, examples


def summarize_restoration(runs):
    """Means per cell and method, and whether GalaxyGAN beats the best baseline.

    Returns
    -------
    summary : `~astropy.table.QTable`
        One row per cell: ``fwhm``, ``sigma``, mean ``psnr_<method>`` and
        ``ssim_<method>`` for every method, ``best_baseline_psnr`` /
        ``best_baseline_ssim`` (the best classical method's name),
        ``gan_margin_psnr`` / ``gan_margin_ssim`` (GalaxyGAN minus the best
        baseline) and ``gan_wins`` (both margins positive).
    """
    methods = list(dict.fromkeys(runs["method"]))
    baselines = [m for m in methods if m not in ("GalaxyGAN", "degraded")]
    cells = sorted({(float(f), float(s)) for f, s in zip(runs["fwhm"].value, runs["sigma"])})
    summary = QTable()
    summary["fwhm"] = [f for f, _ in cells] * u.arcsec
    summary["sigma"] = [s for _, s in cells]
    for metric in ("psnr", "ssim", "flux_error", "residual_rms"):
        for method in methods:
            values = []
            for fwhm, sigma in cells:
                chosen = ((runs["method"] == method) & np.isclose(runs["fwhm"].value, fwhm)
                          & np.isclose(runs["sigma"], sigma))
                data = np.asarray(runs[metric][chosen], float)
                values.append(np.nanmean(np.abs(data)) if metric == "flux_error"
                              else np.nanmean(data))
            summary[f"{metric}_{method}"] = values
    for metric in ("psnr", "ssim"):
        scores = np.column_stack([summary[f"{metric}_{m}"] for m in baselines])
        summary[f"best_baseline_{metric}"] = [baselines[i] for i in np.argmax(scores, axis=1)]
        summary[f"gan_margin_{metric}"] = summary[f"{metric}_GalaxyGAN"] - scores.max(axis=1)
    summary["gan_wins"] = (summary["gan_margin_psnr"] > 0) & (summary["gan_margin_ssim"] > 0)
    return summary


def plot_restoration_grid(summary, figure=None):
    """PSNR and SSIM of every method against the degradation grid.

    One panel per FWHM, with the noise factor on the x axis.
    """
    import matplotlib.pyplot as plt

    methods = [name[len("psnr_"):] for name in summary.colnames if name.startswith("psnr_")]
    fwhms = sorted(set(summary["fwhm"].value))
    figure = figure or plt.figure(figsize=(3.2 * len(fwhms), 6), layout="constrained")
    axes = figure.subplots(2, len(fwhms), squeeze=False, sharey="row")
    for column, fwhm in enumerate(fwhms):
        rows = summary[np.isclose(summary["fwhm"].value, fwhm)]
        for row, metric in enumerate(("psnr", "ssim")):
            ax = axes[row, column]
            for method in methods:
                ax.plot(rows["sigma"], rows[f"{metric}_{method}"], "o-", label=method,
                        lw=2.5 if method == "GalaxyGAN" else 1.2)
            ax.set_xscale("log")
            ax.set_xlabel("noise factor sigma")
            ax.set_title(f"FWHM {fwhm:g} arcsec", fontsize=9)
            if column == 0:
                ax.set_ylabel("PSNR [dB]" if metric == "psnr" else "SSIM")
    axes[0, -1].legend(fontsize=8)
    return figure
