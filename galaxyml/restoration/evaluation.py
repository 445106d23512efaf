# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN against classical deconvolution, cell by cell of a degradation grid."""

from collections.abc import Mapping

import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.utils.console import ProgressBar
from scipy.ndimage import binary_dilation

from ..degrade.core import background_std
from ..degrade.core import galaxygan_kernel
from ..exceptions import InvalidParameterError
from .baselines import DECONVOLUTION_METHODS
from .metrics import central_segment, flux_error, flux_noise, psnr, residual_rms, ssim

__all__ = ["ITERATION_CANDIDATES", "SEGMENT_GROWTH", "deconvolve", "tune_iterations",
           "galaxy_segments", "segment_flux_bias", "evaluate_restoration",
           "summarize_restoration", "compare_models", "plot_restoration_grid",
           "uncertainty_coverage", "fit_uncertainty_calibration", "power_law_calibration"]

#: Iteration counts tried for the iterative baselines on the training side.
ITERATION_CANDIDATES = (1, 2, 3, 5, 10, 20, 40)

#: Pixels by which the galaxy's segment is grown for the second flux measure,
#: ``flux_error_grown``.  The segment is where the noisy original lies above 2 sigma, so
#: its edge follows that image's noise, and a restoration (smoother than the original)
#: puts part of the faint edge's flux just outside it.
SEGMENT_GROWTH = 2


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


def galaxy_segments(image):
    """The galaxy's segment in a stamp and that segment grown by `SEGMENT_GROWTH` pixels.

    Parameters
    ----------
    image : array (n_bands, ny, nx)
        Nanomaggies; the segment is found in the middle band
        (`~galaxyml.restoration.central_segment`).

    Returns
    -------
    segment, grown : 2-D bool arrays, or (None, None) where no source covers the centre
    """
    segment = central_segment(_middle_band(image))
    if segment is None:
        return None, None
    return segment, binary_dilation(segment, iterations=SEGMENT_GROWTH)


def segment_flux_bias(clean, noise, draws=5, seed=0):
    """The flux error that a perfect, noise-free restoration scores, from the segment alone.

    The flux measures compare fluxes in the segment of the noisy original,
    whose pixels are in it because they lie above 2 sigma: the segment
    picks up the noise that happens to be positive along its edge, and a
    restoration without that noise comes out short even when it is exact.
    This adds white noise to a noise-free galaxy ``clean``, finds the
    segments of the noisy copy as `evaluate_restoration` does, and returns
    the relative error of ``clean``'s flux in them: the measure's own bias.

    Parameters
    ----------
    clean : array (n_bands, ny, nx)
        A noise-free image of a galaxy in nanomaggies (in practice a good
        restoration, the best stand-in real data offer).
    noise : float
        Standard deviation of the noise added to the middle band.
    draws : int
        Noise realisations.
    seed : int or `numpy.random.Generator`

    Returns
    -------
    bias : dict
        ``segment`` and ``grown``: arrays of the relative errors, one per
        draw whose copy has a central segment.
    """
    rng = np.random.default_rng(seed)
    clean = np.asarray(clean, float)
    band = _middle_band(clean)
    bias = {"segment": [], "grown": []}
    for _ in range(int(draws)):
        noisy = clean.copy()
        noisy[clean.shape[0] // 2] = band + rng.normal(0.0, noise, band.shape)
        for key, region in zip(bias, galaxy_segments(noisy)):
            if region is not None:
                bias[key].append(flux_error(_middle_band(noisy), band, region))
    return {key: np.array(values) for key, values in bias.items()}


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
        ``flux_error`` (in the galaxy's segment), ``flux_error_grown`` (in
        that segment grown by `SEGMENT_GROWTH` pixels), ``residual_rms`` (in
        units of the original noise), ``flux_noise`` (the degraded image's own
        relative flux noise in the grown segment, `~galaxyml.restoration.flux_noise`:
        the same for every method of a pair); ``meta['models']`` lists the
        models' names.
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
        reference = _middle_band(target.data)
        segments = galaxy_segments(target.data)
        noise = background_std(reference)
        data_flux_noise = (np.nan if segments[1] is None else
                           flux_noise(reference, segments[1], background_std(
                               _middle_band(condition.data))))
        stretched_target = stretch(target.data, warn=False)
        for name, estimate in estimates.items():
            stretched = stretch(estimate, warn=False)
            flux_errors = [np.nan if region is None else
                           flux_error(reference, _middle_band(estimate), region)
                           for region in segments]
            rows.append((int(manifest["pair_id"][k]), int(manifest["galaxy_id"][k]), fwhm, sigma,
                         name, psnr(stretched_target, stretched), ssim(stretched_target, stretched),
                         *flux_errors, residual_rms(target.data, estimate, noise),
                         data_flux_noise))
        key = int(manifest["pair_id"][k]) if keep == "all" else (fwhm, sigma)
        examples.setdefault(key, dict(estimates, original=target.data))
    runs = QTable(rows=rows, names=["pair_id", "galaxy_id", "fwhm", "sigma", "method", "psnr",
                                    "ssim", "flux_error", "flux_error_grown", "residual_rms",
                                    "flux_noise"])
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
        ``ssim_<method>``, ``flux_error_<method>`` and
        ``flux_error_grown_<method>`` (of the absolute relative errors,
        the second where ``runs`` has it) and ``residual_rms_<method>`` for
        every method, ``flux_noise`` (where ``runs`` has it: the degraded
        data's own relative flux noise in the grown segment, a floor for the
        flux errors),
        ``best_baseline_psnr`` / ``best_baseline_ssim`` (the best classical
        method's name), and for each model M (``runs.meta['models']``,
        ``['GalaxyGAN']`` by default): ``margin_psnr_M`` / ``margin_ssim_M``
        (M minus the best baseline), ``wins_M`` (both margins positive)
        and, where Richardson-Lucy was run, ``flux_ok_M`` and
        ``flux_grown_ok_M`` (a mean flux error no larger than
        Richardson-Lucy's, in the segment and in the grown segment) with
        ``flux_excess_M`` / ``flux_grown_excess_M`` and their standard errors
        ``flux_excess_se_M`` / ``flux_grown_excess_se_M`` (the mean over the
        cell's pairs of M's absolute flux error minus Richardson-Lucy's on
        the same pair: how far a shortfall is from chance), and
        with ``flux_noise``, ``flux_within_noise_M`` (a mean flux error in the
        grown segment no larger than the data's own flux noise).
    """
    methods = list(dict.fromkeys(runs["method"]))
    models = [m for m in runs.meta.get("models", ["GalaxyGAN"]) if m in methods]
    baselines = [m for m in methods if m not in models and m != "degraded"]
    cells = sorted({(float(f), float(s)) for f, s in zip(runs["fwhm"].value, runs["sigma"])})
    summary = QTable()
    summary["fwhm"] = [f for f, _ in cells] * u.arcsec
    summary["sigma"] = [s for _, s in cells]
    metrics = [metric for metric in ("psnr", "ssim", "flux_error", "flux_error_grown",
                                     "residual_rms") if metric in runs.colnames]

    in_cells = [np.isclose(runs["fwhm"].value, fwhm) & np.isclose(runs["sigma"], sigma)
                for fwhm, sigma in cells]

    def cell_means(metric, method):
        values = []
        for in_cell in in_cells:
            data = np.asarray(runs[metric][in_cell & (runs["method"] == method)], float)
            values.append(np.nanmean(np.abs(data)) if metric.startswith("flux_error")
                          else np.nanmean(data))
        return values

    def absolute_errors(metric, method, in_cell):
        """pair_id -> |error| of ``method`` in the cell."""
        rows = runs[in_cell & (runs["method"] == method)]
        return dict(zip(rows["pair_id"], np.abs(np.asarray(rows[metric], float))))

    def paired_excess(metric, model):
        """Per cell, the mean and standard error of |model's error| - |RL's| by pair."""
        means, errors = [], []
        for in_cell in in_cells:
            ours = absolute_errors(metric, model, in_cell)
            theirs = absolute_errors(metric, "Richardson-Lucy", in_cell)
            excess = np.array([ours[pair] - theirs[pair] for pair in ours if pair in theirs])
            excess = excess[np.isfinite(excess)]
            means.append(excess.mean() if excess.size else np.nan)
            errors.append(excess.std(ddof=1) / np.sqrt(excess.size) if excess.size > 1
                          else np.nan)
        return means, errors

    for metric in metrics:
        for method in methods:
            summary[f"{metric}_{method}"] = cell_means(metric, method)
    if "flux_noise" in runs.colnames:  # one value per pair, repeated for every method
        summary["flux_noise"] = cell_means("flux_noise", methods[0])
    for metric in ("psnr", "ssim"):
        scores = np.column_stack([summary[f"{metric}_{m}"] for m in baselines])
        summary[f"best_baseline_{metric}"] = [baselines[i] for i in np.argmax(scores, axis=1)]
        for model in models:
            summary[f"margin_{metric}_{model}"] = summary[f"{metric}_{model}"] - scores.max(axis=1)
    for model in models:
        summary[f"wins_{model}"] = ((summary[f"margin_psnr_{model}"] > 0)
                                    & (summary[f"margin_ssim_{model}"] > 0))
        if "Richardson-Lucy" in methods:
            for metric, check in (("flux_error", "flux_ok"),
                                  ("flux_error_grown", "flux_grown_ok")):
                if metric in metrics:
                    summary[f"{check}_{model}"] = (summary[f"{metric}_{model}"]
                                                   <= summary[f"{metric}_Richardson-Lucy"])
                    excess = check.replace("_ok", "_excess")
                    (summary[f"{excess}_{model}"],
                     summary[f"{excess}_se_{model}"]) = paired_excess(metric, model)
        if "flux_noise" in summary.colnames:
            summary[f"flux_within_noise_{model}"] = (summary[f"flux_error_grown_{model}"]
                                                     <= summary["flux_noise"])
    summary.meta["models"] = models
    return summary


def compare_models(summary, first, second):
    """One model against another, cell by cell of a `summarize_restoration` table.

    Parameters
    ----------
    summary : `~astropy.table.QTable`
        The output of `summarize_restoration` with both models.
    first, second : str
        The models' names.

    Returns
    -------
    comparison : dict
        ``cells``; ``psnr_higher``, ``ssim_higher`` and ``flux_error_lower``:
        the cells where ``first``'s mean is strictly better than
        ``second``'s; ``mean_psnr_difference`` (dB) and
        ``mean_ssim_difference``: ``first`` minus ``second``, averaged over
        the cells.
    """
    for name in (first, second):
        if f"psnr_{name}" not in summary.colnames:
            raise InvalidParameterError(f"the summary has no model named {name!r}; it has "
                                        f"{summary.meta.get('models')}")
    difference = {metric: np.asarray(summary[f"{metric}_{first}"], float)
                  - np.asarray(summary[f"{metric}_{second}"], float)
                  for metric in ("psnr", "ssim", "flux_error")}
    return {"cells": len(summary),
            "psnr_higher": int(np.sum(difference["psnr"] > 0)),
            "ssim_higher": int(np.sum(difference["ssim"] > 0)),
            "flux_error_lower": int(np.sum(difference["flux_error"] < 0)),
            "mean_psnr_difference": float(np.mean(difference["psnr"])),
            "mean_ssim_difference": float(np.mean(difference["ssim"]))}


def uncertainty_coverage(model, pairs, samples=10, scale=None):
    """How often the true pixels lie within 1 and 2 sigma of a model's sampled recovery.

    Each degraded image of ``pairs`` is recovered with ``samples`` dropout
    draws; sigma is the model's calibrated uncertainty
    (`~galaxyml.gan.ImageToImageModel.calibrated_uncertainty` of their
    per-pixel spread), times ``scale``.  For a calibrated Gaussian
    uncertainty the fractions are 0.683 and 0.954.

    Parameters
    ----------
    model : `~galaxyml.gan.GalaxyGAN`
    pairs : `~galaxyml.datasets.TrainingPairs`
    samples : int
        Dropout draws per image.
    scale : float, optional
        Multiply the uncertainty by this (by default nothing more than the
        model's own calibration is applied).

    Returns
    -------
    coverage : dict
        ``within_1sigma``, ``within_2sigma`` (fractions of all pixels),
        ``within_1sigma_galaxy``, ``within_2sigma_galaxy`` (of the pixels in
        the galaxies' segments), ``scale_68`` (the factor on sigma that
        would put 68.3% of all pixels within 1 sigma) and ``n_pixels``.
    """
    residuals, sigmas, targets = _sampled_residuals(model, pairs, samples)
    segments = [galaxy_segments(target)[0] for target in targets]
    z = [np.abs(r) / np.maximum(s * (1.0 if scale is None else scale), np.finfo(np.float32).tiny)
         for r, s in zip(residuals, sigmas)]
    z_all = np.concatenate([values.ravel() for values in z])
    galaxy = [values[:, segment].ravel() for values, segment in zip(z, segments)
              if segment is not None]
    z_galaxy = np.concatenate(galaxy) if galaxy else np.array([np.nan])
    return {"within_1sigma": float(np.mean(z_all <= 1)),
            "within_2sigma": float(np.mean(z_all <= 2)),
            "within_1sigma_galaxy": float(np.mean(z_galaxy <= 1)),
            "within_2sigma_galaxy": float(np.mean(z_galaxy <= 2)),
            "scale_68": float(np.quantile(z_all, 0.6827)), "n_pixels": int(z_all.size)}


def fit_uncertainty_calibration(model, pairs, samples=10):
    """Fit the calibration ``sigma = scale * spread ** exponent`` of a model's dropout spread.

    The dropout spread grows with the error, but not in proportion: a
    spread ten times larger (a galaxy's core against the sky) marks an
    error only a few times larger.  So the exponent is the slope of a
    least-squares line through ``log(abs(recovered - true))`` against ``log(spread)``,
    and the scale puts 68.3% of the true pixels within 1 sigma
    (`power_law_calibration`).  The fit is made on top of the model's
    current calibration and composed with it.

    Parameters
    ----------
    model : `~galaxyml.gan.GalaxyGAN`
    pairs : `~galaxyml.datasets.TrainingPairs`
        Training pairs (not the ones the calibration will be judged on).
    samples : int
        Dropout draws per image.

    Returns
    -------
    calibration : dict
        ``scale`` and ``exponent``, for the model card's ``uncertainty``
        (spreads in nanomaggies).
    """
    residuals, sigmas, _ = _sampled_residuals(model, pairs, samples)
    scale, exponent = power_law_calibration(np.concatenate([r.ravel() for r in residuals]),
                                            np.concatenate([s.ravel() for s in sigmas]))
    old_scale, old_exponent = model.uncertainty_calibration
    return {"scale": float(scale * old_scale ** exponent),
            "exponent": float(exponent * old_exponent)}


def power_law_calibration(residual, spread):
    """``(scale, exponent)`` such that ``scale * spread ** exponent`` is a 1-sigma error.

    The exponent is the slope of the least-squares line through
    ``log(abs(residual))`` against ``log(spread)`` (pixels where either is
    zero left out), floored at 0: a spread that falls as the error grows carries no
    usable information.  The scale puts 68.3% of the residuals within
    1 sigma.

    Parameters
    ----------
    residual, spread : array
        Errors of an estimate, and the spreads meant to predict them.

    Raises
    ------
    InvalidParameterError
        Fewer than two pixels where both are non-zero.
    """
    residual, spread = np.abs(np.ravel(residual)), np.ravel(spread)
    usable = (residual > 0) & (spread > 0)
    if usable.sum() < 2:
        raise InvalidParameterError("fewer than two pixels with a non-zero spread and "
                                    "residual to fit the uncertainty's calibration on")
    exponent = max(float(np.polyfit(np.log(spread[usable]), np.log(residual[usable]), 1)[0]),
                   0.0)
    scale = float(np.quantile(residual[usable] / spread[usable] ** exponent, 0.6827))
    return scale, exponent


def _sampled_residuals(model, pairs, samples):
    """Per pair: recovered - true (n_bands, ny, nx), the calibrated uncertainty of
    ``samples`` dropout draws, and the true image."""
    linear = [pairs.linear_pair(k) for k in range(len(pairs))]
    outputs = _recover(model, [condition.data for condition, _ in linear], pairs.manifest,
                       samples=samples)
    residuals = [mean - target.data for (_, target), (mean, _) in zip(linear, outputs)]
    return residuals, [std for _, std in outputs], [target.data for _, target in linear]


def _middle_band(data):
    """The middle band of (n_bands, ny, nx) data: where the galaxy's segment is found."""
    return data[data.shape[0] // 2]


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
