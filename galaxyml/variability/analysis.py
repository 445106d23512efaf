# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Structure functions, magnitude differences, periodograms and PSD fits."""

import numpy as np
import scipy.fft
from astropy import units as u
from astropy.table import QTable
from scipy.optimize import least_squares

from ..exceptions import (InvalidParameterError, InvalidShapeError, NonFiniteDataError,
                          ShapeMismatchError)

__all__ = ["structure_function", "structure_function_pairs", "magnitude_differences",
           "periodogram", "fit_bending_power_law", "ensemble_structure_function"]


def _as_curves(values):
    values = np.asarray(values, dtype=float)
    if values.ndim not in (1, 2) or values.shape[-1] < 2:
        raise InvalidShapeError(f"curves must have shape (n_points,) or (n_curves, n_points) with "
                                f"n_points >= 2, not {values.shape}")
    if not np.all(np.isfinite(values)):
        raise NonFiniteDataError("curves contain NaN or infinite values")
    return np.atleast_2d(values)


def squared_differences_all_lags(curves):
    """Sum over t of [m(t + k dt) - m(t)]^2 for every lag k = 0 ... n-1, in O(n log n).

    Expands the square: two cumulative sums of m^2 and one linear
    autocorrelation (an FFT zero-padded to twice the length, so that there
    is no wrap-around).
    """
    curves = _as_curves(curves)
    curves = curves - curves.mean(axis=-1, keepdims=True)  # smaller numbers, less cancellation
    n = curves.shape[-1]
    size = scipy.fft.next_fast_len(2 * n, real=True)
    spectrum = scipy.fft.rfft(curves, n=size, axis=-1, workers=-1)
    autocorrelation = scipy.fft.irfft(np.abs(spectrum) ** 2, n=size, axis=-1, workers=-1)[:, :n]
    cumulative = np.concatenate([np.zeros((curves.shape[0], 1)),
                                 np.cumsum(curves ** 2, axis=-1)], axis=-1)
    lags = np.arange(n)
    head = cumulative[:, n - lags]                  # sum of m_j^2, j < n - k
    tail = cumulative[:, [n]] - cumulative[:, lags]  # sum of m_j^2, j >= k
    return np.clip(head + tail - 2 * autocorrelation, 0, None)


def structure_function(magnitudes, dt, n_bins=40, reliable_fraction=0.1):
    """Structure function of regularly sampled curves, binned in log(lag).

    SF(dt) = sqrt(<[m(t + dt) - m(t)]^2>), computed at every lag with FFTs
    (`squared_differences_all_lags`) and averaged over the pairs of each
    logarithmic bin of lag.

    Parameters
    ----------
    magnitudes : array-like, shape (n_points,) or (n_curves, n_points)
        Magnitudes (or any quantity) at a regular step.
    dt : `~astropy.units.Quantity`
        The step (a float is taken in days).
    n_bins : int
        Logarithmic lag bins from ``dt`` to the curve's span (fewer where
        bins would be narrower than one step at short lags).
    reliable_fraction : float
        Lags longer than this fraction of the span are flagged unreliable:
        few independent pairs, and periodic simulations (no red-noise leak)
        wrap around.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``dt`` (pair-weighted mean lag of the bin), ``sf`` (one column per
        curve for several curves), ``n_pairs`` and ``reliable``.
    """
    dt = u.Quantity(dt, u.day)
    curves = _as_curves(magnitudes)
    n = curves.shape[-1]
    sums = squared_differences_all_lags(curves)[:, 1:]
    lags = np.arange(1, n)
    pairs = n - lags
    edges = np.unique(np.round(np.geomspace(1, n, n_bins + 1)).astype(int))
    starts = edges[:-1] - 1  # lag k sits at index k - 1
    bin_pairs = np.add.reduceat(pairs, starts)
    sf = np.sqrt(np.add.reduceat(sums, starts, axis=-1) / bin_pairs)
    mean_lag = np.add.reduceat(lags * pairs, starts) / bin_pairs
    table = QTable()
    table["dt"] = mean_lag * dt
    table["sf"] = sf.T if sf.shape[0] > 1 else sf[0]
    table["n_pairs"] = bin_pairs
    table["reliable"] = mean_lag <= reliable_fraction * (n - 1)
    return table


def structure_function_pairs(time, magnitudes, bins, errors=None):
    """Structure function of an irregularly sampled curve from all pairs of points.

    Parameters
    ----------
    time : `~astropy.units.Quantity` or `~astropy.time.Time`
        Observation times.
    magnitudes : array-like
        Magnitudes at those times.
    bins : `~astropy.units.Quantity`
        Edges of the lag bins.
    errors : array-like, optional
        Magnitude errors; their contribution, 2 sigma^2 per pair on average,
        is subtracted from SF^2.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``dt`` (bin centre, geometric), ``sf``, ``sf_error`` (from the
        scatter of the squared differences) and ``n_pairs``.
    """
    if hasattr(time, "jd"):
        time = (time - time[0]).to(u.day)
    time = u.Quantity(time, u.day)
    magnitudes = np.asarray(magnitudes, dtype=float)
    if time.shape != magnitudes.shape or time.ndim != 1:
        raise ShapeMismatchError("time and magnitudes must be one-dimensional and of the same "
                                 "length")
    order = np.argsort(time)
    t, m = time[order].to_value(u.day), magnitudes[order]
    variance = None if errors is None else np.asarray(errors, float)[order] ** 2
    edges = u.Quantity(bins, u.day).to_value(u.day)
    n_bins = edges.size - 1
    counts, sums, squares = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins)
    noise = np.zeros(n_bins)
    for i in range(t.size - 1):  # one row of the pair matrix at a time: O(n) memory
        lag = t[i + 1:] - t[i]
        which = np.digitize(lag, edges) - 1
        keep = (which >= 0) & (which < n_bins)
        d2 = (m[i + 1:] - m[i])[keep] ** 2
        counts += np.bincount(which[keep], minlength=n_bins)
        sums += np.bincount(which[keep], d2, minlength=n_bins)
        squares += np.bincount(which[keep], d2 ** 2, minlength=n_bins)
        if variance is not None:
            noise += np.bincount(which[keep], (variance[i + 1:] + variance[i])[keep],
                                 minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums - noise) / counts
        spread = np.sqrt(np.clip(squares / counts - (sums / counts) ** 2, 0, None) / counts)
        sf = np.sqrt(np.clip(mean, 0, None))
        sf_error = np.where(sf > 0, spread / (2 * sf), np.nan)
    table = QTable()
    table["dt"] = np.sqrt(edges[:-1] * edges[1:]) * u.day
    table["sf"] = sf
    table["sf_error"] = sf_error
    table["n_pairs"] = counts.astype(int)
    return table


def magnitude_differences(magnitudes, dt, lags):
    """Distribution of m(t + lag) - m(t) at chosen lags of regularly sampled curves.

    Returns
    -------
    differences : dict
        Lag (`~astropy.units.Quantity`) -> array of all differences (over
        every curve) at the nearest multiple of ``dt``.
    """
    dt = u.Quantity(dt, u.day)
    curves = _as_curves(magnitudes)
    n = curves.shape[-1]
    result = {}
    for lag in np.atleast_1d(u.Quantity(lags, u.day)):
        steps = int(round((lag / dt).decompose().value))
        if steps < 1 or steps >= n:
            raise InvalidParameterError(f"lag {lag} is outside the curves' range of lags "
                                        f"({dt} to {(n - 1) * dt})")
        result[lag] = (curves[:, steps:] - curves[:, :-steps]).ravel()
    return result


def periodogram(curves, dt):
    """One-sided periodogram, normalised so that its integral is the variance.

    Returns
    -------
    frequency : `~astropy.units.Quantity`
        k / (n dt) for k = 1 ... n/2, in Hz.
    power : `~numpy.ndarray`
        ``2 dt |X_k|^2 / n``, per curve (shape (n_curves, n/2) or (n/2,)),
        in units of the curve squared per Hz.
    """
    dt_s = u.Quantity(dt, u.day).to_value(u.s)
    values = np.asarray(curves, dtype=float)
    n = values.shape[-1]
    spectrum = scipy.fft.rfft(values - values.mean(axis=-1, keepdims=True), axis=-1, workers=-1)
    power = 2 * dt_s * np.abs(spectrum[..., 1:n // 2 + 1]) ** 2 / n
    return np.arange(1, n // 2 + 1) / (n * dt_s) * u.Hz, power


def fit_bending_power_law(frequency, power, n_bins=30):
    """Fit a bending power law to a periodogram, in log-log space.

    The periodogram (averaged over curves if several) is averaged in
    logarithmic frequency bins, and log10 P = log10[A nu^-a_low /
    (1 + (nu/nu_bend)^(a_high - a_low))] is fitted by least squares.

    Returns
    -------
    parameters : dict
        ``a_low``, ``a_high``, ``nu_bend`` (Quantity, Hz) and ``amplitude``.
    """
    nu = u.Quantity(frequency, u.Hz).to_value(u.Hz)
    mean_power = np.atleast_2d(power).mean(axis=0)
    edges = np.geomspace(nu[0], nu[-1] * 1.0001, n_bins + 1)
    which = np.digitize(nu, edges) - 1
    counts = np.bincount(which, minlength=n_bins)[:n_bins]
    filled = counts > 0
    log_nu = (np.bincount(which, np.log10(nu), minlength=n_bins)[:n_bins][filled]
              / counts[filled])
    log_power = np.log10(np.bincount(which, mean_power, minlength=n_bins)[:n_bins][filled]
                         / counts[filled])

    def model(p, x):
        log_a, log_bend, a_low, a_high = p
        return log_a - a_low * x - np.log10(1 + 10 ** ((x - log_bend) * (a_high - a_low)))

    start = [log_power[0] + log_nu[0], np.median(log_nu), 1.0, 2.0]
    fit = least_squares(lambda p: model(p, log_nu) - log_power, start)
    log_a, log_bend, a_low, a_high = fit.x
    return {"a_low": a_low, "a_high": a_high, "nu_bend": 10 ** log_bend * u.Hz,
            "amplitude": 10 ** log_a}


def ensemble_structure_function(psd, erdf, dt=100 * u.day, n_points=2 ** 16, n_curves=8,
                                n_bins=40, seed=None, **e13_options):
    """Structure function of an ensemble of E13 light curves in magnitudes.

    This is the set-up of Sartori et al. (2018): one cadence whose span
    reaches the longest lags wanted (reliable lags reach about a tenth of
    n_points x dt: 2^24 points at 100-day steps span 4.6 Myr; Gyr lags need
    steps of 10^5 days or more).  E13
    imposes the whole ERDF on every curve, so the curves must span the
    time-scales over which an AGN samples its ERDF: short, finely sampled
    E13 curves would vary too much at short lags.  Shorter lags are the
    domain of observed structure functions, which
    `~galaxyml.variability.plot_structure_function` overlays.

    Parameters
    ----------
    psd, erdf
        The PSD and ERDF (see `~galaxyml.variability.emmanoulopoulos`).
    dt : `~astropy.units.Quantity`
        Time step.
    n_points, n_curves : int
        Points per curve and curves in the ensemble.
    n_bins : int
        Logarithmic lag bins.
    seed : int or `numpy.random.Generator`, optional
        Seed of all the draws.
    **e13_options
        Passed to `~galaxyml.variability.emmanoulopoulos`.

    Returns
    -------
    table : `~astropy.table.QTable`
        As `structure_function`, with ``sf`` per curve; ``meta`` holds the
        fraction of curves whose E13 iterations converged.
    """
    from .simulate import emmanoulopoulos

    curves = emmanoulopoulos(psd, erdf, n_points, dt, n_curves=n_curves, seed=seed,
                             **e13_options)
    table = structure_function(curves.magnitude(), dt, n_bins=n_bins)
    table.meta["converged_fraction"] = float(np.mean(curves.converged))
    return table
