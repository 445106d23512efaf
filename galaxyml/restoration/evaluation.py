# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN against classical deconvolution, cell by cell of a degradation grid."""

from collections.abc import Mapping

import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.utils.console import ProgressBar

from ..degrade.core import background_std
from ..degrade.core import galaxygan_kernel
from .baselines import DECONVOLUTION_METHODS
from .metrics import central_segment, flux_error, psnr, residual_rms, ssim

__all__ = ["ITERATION_CANDIDATES", "deconvolve", "tune_iterations", "evaluate_restoration",
           "summarize_restoration", "plot_restoration_grid", "uncertainty_coverage"]

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


def _named_models(models):
    """{name: model}: a mapping as given, or one model named 'GalaxyGAN'."""
    return dict(models) if isinstance(models, Mapping) else {"GalaxyGAN": models}


def _recover(model, conditions, manifest, samples=None):
    """The model's recoveries of the pairs' degraded images, each told its blur."""
    return model.recover(conditions, fwhm=list(manifest["fwhm"]), samples=samples)


def evaluate_restoration(models, pairs, iterations, methods=tuple(DECONVOLUTION_METHODS),
                         progress=True, keep="first"):
    """Metrics of GalaxyGAN models, the baselines and the degraded input on every pair.

    PSNR and SSIM are computed in the pairs' stretch (the paper's for pairs
    made with the defaults), whatever stretch a model uses inside.

    Parameters
    ----------
    models : `~galaxyml.gan.GalaxyGAN` or mapping
        A model (named ``GalaxyGAN``), or names -> models to compare.
    pairs : `~galaxyml.datasets.TrainingPairs`
        Held-out GalaxyGAN pairs.
    iterations : dict
        From `tune_iterations` (methods missing there run with 10).
    methods : sequence of str
        Baselines, names of `DECONVOLUTION_METHODS` (all by default).
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
        of the original noise); ``meta['models']`` lists the models' names.
    examples : dict
        (fwhm, sigma) -> {name: (n_bands, ny, nx) image} of the first pair
        of each cell; with ``keep='all'``, pair_id -> the same for every pair.
    """
    models = _named_models(models)
    stretch = pairs.stretch
    manifest = pairs.manifest
    linear = [pairs.linear_pair(k) for k in range(len(pairs))]
    conditions = [condition.data for condition, _ in linear]
    recovered = {name: _recover(model, conditions, manifest) for name, model in models.items()}
    rows, examples = [], {}
    indices = range(len(pairs))
    for k in (ProgressBar(indices) if progress else indices):
        condition, target = linear[k]
        fwhm, sigma = float(manifest["fwhm"][k].value), float(manifest["sigma"][k])
        estimates = {name: outputs[k] for name, outputs in recovered.items()}
        estimates["degraded"] = condition.data
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
    runs.meta["models"] = list(models)
    return runs, examples


def summarize_restoration(runs):
    """Means per cell and method, and whether each model beats the best baseline.

    Returns
    -------
    summary : `~astropy.table.QTable`
        One row per cell: ``fwhm``, ``sigma``, mean ``psnr_<method>``,
        ``ssim_<method>``, ``flux_error_<method>`` (of the absolute
        relative errors) and ``residual_rms_<method>`` for every method,
        ``best_baseline_psnr`` / ``best_baseline_ssim`` (the best classical
        method's name), and for each model M (``runs.meta['models']``,
        ``['GalaxyGAN']`` by default): ``margin_psnr_M`` / ``margin_ssim_M``
        (M minus the best baseline), ``wins_M`` (both margins positive)
        and, where Richardson-Lucy was run, ``flux_ok_M`` (a mean flux
        error no larger than Richardson-Lucy's).
    """
    methods = list(dict.fromkeys(runs["method"]))
    models = [m for m in runs.meta.get("models", ["GalaxyGAN"]) if m in methods]
    baselines = [m for m in methods if m not in models and m != "degraded"]
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
        for model in models:
            summary[f"margin_{metric}_{model}"] = summary[f"{metric}_{model}"] - scores.max(axis=1)
    for model in models:
        summary[f"wins_{model}"] = ((summary[f"margin_psnr_{model}"] > 0)
                                    & (summary[f"margin_ssim_{model}"] > 0))
        if "Richardson-Lucy" in methods:
            summary[f"flux_ok_{model}"] = (summary[f"flux_error_{model}"]
                                           <= summary["flux_error_Richardson-Lucy"])
    summary.meta["models"] = models
    return summary


def uncertainty_coverage(model, pairs, samples=10, scale=None):
    """How often the true pixels lie within 1 and 2 sigma of a model's sampled recovery.

    Each degraded image of ``pairs`` is recovered with ``samples`` dropout
    draws; sigma is their per-pixel spread (times ``scale``).  For a
    calibrated Gaussian uncertainty the fractions are 0.683 and 0.954.

    Parameters
    ----------
    model : `~galaxyml.gan.GalaxyGAN`
    pairs : `~galaxyml.datasets.TrainingPairs`
    samples : int
        Dropout draws per image.
    scale : float, optional
        Multiply the spread by this; by default the model's own
        ``uncertainty_scale`` is already applied and nothing more.

    Returns
    -------
    coverage : dict
        ``within_1sigma``, ``within_2sigma`` (fractions of all pixels),
        ``within_1sigma_galaxy``, ``within_2sigma_galaxy`` (of the pixels in
        the galaxies' segments), ``scale_68`` (the factor on sigma that
        would put 68.3% of all pixels within 1 sigma) and ``n_pixels``.
    """
    linear = [pairs.linear_pair(k) for k in range(len(pairs))]
    outputs = _recover(model, [condition.data for condition, _ in linear], pairs.manifest,
                       samples=samples)
    z_all, z_galaxy = [], []
    for (_, target), (mean, std) in zip(linear, outputs):
        spread = std * (1.0 if scale is None else scale)
        z = np.abs(mean - target.data) / np.maximum(spread, np.finfo(np.float32).tiny)
        z_all.append(z.ravel())
        segment = central_segment(target.data[target.data.shape[0] // 2])
        if segment is not None:
            z_galaxy.append(z[:, segment].ravel())
    z_all = np.concatenate(z_all)
    z_galaxy = np.concatenate(z_galaxy) if z_galaxy else np.array([np.nan])
    return {"within_1sigma": float(np.mean(z_all <= 1)),
            "within_2sigma": float(np.mean(z_all <= 2)),
            "within_1sigma_galaxy": float(np.mean(z_galaxy <= 1)),
            "within_2sigma_galaxy": float(np.mean(z_galaxy <= 2)),
            "scale_68": float(np.quantile(z_all, 0.6827)), "n_pixels": int(z_all.size)}


def plot_restoration_grid(summary, figure=None):
    """PSNR and SSIM of every method against the degradation grid.

    One panel per FWHM, with the noise factor on the x axis.
    """
    import matplotlib.pyplot as plt

    methods = [name[len("psnr_"):] for name in summary.colnames if name.startswith("psnr_")]
    models = summary.meta.get("models", ["GalaxyGAN"])
    fwhms = sorted(set(summary["fwhm"].value))
    figure = figure or plt.figure(figsize=(3.2 * len(fwhms), 6), layout="constrained")
    axes = figure.subplots(2, len(fwhms), squeeze=False, sharey="row")
    for column, fwhm in enumerate(fwhms):
        rows = summary[np.isclose(summary["fwhm"].value, fwhm)]
        for row, metric in enumerate(("psnr", "ssim")):
            ax = axes[row, column]
            for method in methods:
                ax.plot(rows["sigma"], rows[f"{metric}_{method}"], "o-", label=method,
                        lw=2.5 if method in models else 1.2)
            ax.set_xscale("log")
            ax.set_xlabel("noise factor sigma")
            ax.set_title(f"FWHM {fwhm:g} arcsec", fontsize=9)
            if column == 0:
                ax.set_ylabel("PSNR [dB]" if metric == "psnr" else "SSIM")
    axes[0, -1].legend(fontsize=8)
    return figure
