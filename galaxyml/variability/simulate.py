# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Light-curve simulation: Timmer and Koenig (1995) and Emmanoulopoulos et al. (2013)."""

from dataclasses import dataclass
from functools import partial

import erfa
import numpy as np
import scipy.fft
from astropy import constants as const
from astropy import units as u
from astropy.time import Time, TimeDelta
from astropy.timeseries import TimeSeries

from ..exceptions import InvalidParameterError, QuantityMismatchError
from ..utils._memory import require_memory

__all__ = ["LightCurves", "timmer_koenig", "emmanoulopoulos", "eddington_luminosity"]

# Frequencies are evaluated and the spectrum scaled in blocks of this many
# values, so that no full-length temporary is made for long simulations.
_BLOCK = 1 << 20


def check_memory(n_bytes, what):
    """Raise `~galaxyml.exceptions.InsufficientMemoryError` before a too large allocation."""
    require_memory(n_bytes, what, "use fewer or shorter curves, float32, or a smaller "
                   "red-noise-leak factor")


def _positive_int(value, name, minimum=1):
    if int(value) != value or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _time_step(dt):
    dt = u.Quantity(dt, u.day)
    if not dt.isscalar or not dt.value > 0 or not np.isfinite(dt.value):
        raise InvalidParameterError(f"the time step must be a positive time, not {dt}")
    return dt


def _real_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InvalidParameterError(f"dtype must be float32 or float64, not {dtype}")
    return dtype


def _gaussian_series(psd, n_fine, dt_fine_s, n_curves, rng, dtype):
    """TK: random Fourier amplitudes and phases, then one inverse FFT (n_curves, n_fine)."""
    half = n_fine // 2 + 1
    complex_dtype = np.complex64 if dtype == np.float32 else np.complex128
    spectrum = np.empty((n_curves, half), complex_dtype)
    for first in range(0, half, _BLOCK):
        k = np.arange(first, min(first + _BLOCK, half))
        spectrum[:, first:first + k.size] = _spectrum_coefficients(
            psd, k, n_fine, dt_fine_s, rng, dtype, n_curves)
    return scipy.fft.irfft(spectrum, n=n_fine, axis=-1, overwrite_x=True, workers=-1)


def _spectrum_coefficients(psd, k, n_fine, dt_fine_s, rng, dtype, n_curves=1):
    """Random TK Fourier coefficients X_k of ``n_curves`` real series of n_fine points.

    E|X_k|^2 = P(f_k) n / (2 dt), so that the variance of the series is the
    integral of the PSD; X_0 = 0 (the mean is set elsewhere) and the Nyquist
    coefficient of an even-length series is real.  Shape (k.size,) for one
    curve, else (n_curves, k.size).
    """
    complex_dtype = np.complex64 if dtype == np.float32 else np.complex128
    coefficients = np.empty((n_curves, k.size), complex_dtype)
    rng.standard_normal(out=coefficients.view(dtype), dtype=dtype)
    power = np.zeros(k.size)
    nonzero = k > 0
    power[nonzero] = psd(k[nonzero] / (n_fine * dt_fine_s))
    coefficients *= np.sqrt(power * n_fine / (4 * dt_fine_s)).astype(dtype)
    nyquist = 2 * k == n_fine
    coefficients[:, nyquist] = np.sqrt(2) * coefficients[:, nyquist].real
    return coefficients[0] if n_curves == 1 else coefficients


def _segment_of_long_series(psd, n_segment, leak, dt_fine_s, start, rng, dtype):
    """Points start ... start + n_segment - 1 of a TK series of n_segment * leak points.

    Only the segment is synthesised (a pruned inverse FFT): with k = q leak + r,
    x(s + j) = (1/N) Re sum_r e^{2 pi i (s + j) r / N} sum_q w_k X_k e^{2 pi i (s + j) q / n},
    that is ``leak`` inverse FFTs of the segment's length, in O(n_segment) memory
    instead of O(N).  w_k = 2 counts the negative frequencies of a real series.
    """
    n_fine = n_segment * leak
    q = np.arange(n_segment)
    shift = np.exp(2j * np.pi * start * q / n_segment)  # evaluate at s + j, not j
    step = np.exp(2j * np.pi * (start + q) / n_fine)
    twiddle = np.ones(n_segment, complex)
    total = np.zeros(n_segment, complex)
    for r in range(leak):
        k = q * leak + r
        k = k[k <= n_fine // 2]  # the non-negative frequencies of this residue
        weights = np.where((k == 0) | (2 * k == n_fine), 1.0, 2.0)
        terms = np.zeros(n_segment, complex)
        terms[:k.size] = weights * shift[:k.size] * _spectrum_coefficients(
            psd, k, n_fine, dt_fine_s, rng, dtype)
        total += twiddle * scipy.fft.ifft(terms, workers=-1)
        twiddle *= step
    return (total.real * n_segment / n_fine).astype(dtype)


def timmer_koenig(psd, n_points, dt, n_curves=1, red_noise_leak=1, aliasing=1, seed=None,
                  dtype=np.float64):
    """Gaussian light curves with a given power spectrum (Timmer and Koenig 1995).

    Each Fourier coefficient gets a random amplitude and phase (real and
    imaginary parts normal with variance P(f) N / (4 dt)); an inverse FFT
    gives a real series whose variance is the integral of the PSD.

    Parameters
    ----------
    psd : `~galaxyml.variability.PSD` or callable
        One-sided power spectral density of frequency (Hz).
    n_points : int
        Points per curve.
    dt : `~astropy.units.Quantity`
        Time step (a float is taken in days).
    n_curves : int
        Number of independent curves.
    red_noise_leak : int
        Simulate a series this many times longer and cut a random segment,
        so that power below the lowest frequency of the curve leaks into it
        as in real data (1 gives a periodic curve).
    aliasing : int
        Simulate at a step ``dt / aliasing`` and average into bins of ``dt``,
        so that power above the Nyquist frequency aliases as in binned data.
    seed : int or `numpy.random.Generator`, optional
        All random draws come from this generator.
    dtype : {float64, float32}
        float32 halves the memory.

    Returns
    -------
    curves : `~numpy.ndarray`, shape (n_curves, n_points)
        Zero-mean Gaussian curves.
    """
    n_points = _positive_int(n_points, "n_points", 2)
    n_curves = _positive_int(n_curves, "n_curves")
    red_noise_leak = _positive_int(red_noise_leak, "red_noise_leak")
    aliasing = _positive_int(aliasing, "aliasing")
    dtype = _real_dtype(dtype)
    dt_s = _time_step(dt).to_value(u.s)
    rng = np.random.default_rng(seed)

    segment = n_points * aliasing
    dt_fine_s = dt_s / aliasing
    # Whole series of the segment's length (spectrum and series) live together;
    # a long red-noise-leak series is never held, only its segment.
    bytes_per_curve = 6 * segment * max(dtype.itemsize, 8)
    check_memory(bytes_per_curve + n_curves * n_points * dtype.itemsize,
                 f"a Timmer-Koenig simulation of {n_curves} x {segment} points")
    curves = np.empty((n_curves, n_points), dtype)
    if red_noise_leak == 1:
        # Short curves are simulated together, in chunks of about 256 MiB.
        chunk = int(max(1, min(n_curves, (256 << 20) // bytes_per_curve)))
        for first in range(0, n_curves, chunk):
            count = min(chunk, n_curves - first)
            series = _gaussian_series(psd, segment, dt_fine_s, count, rng, dtype)
            curves[first:first + count] = series.reshape(count, n_points, aliasing).mean(axis=2)
        return curves
    for row in range(n_curves):
        start = int(rng.integers(0, segment * (red_noise_leak - 1) + 1))
        series = _segment_of_long_series(psd, segment, red_noise_leak, dt_fine_s, start, rng,
                                         dtype)
        curves[row] = series.reshape(n_points, aliasing).mean(axis=1)
    return curves


def emmanoulopoulos(psd, erdf, n_points, dt, n_curves=1, rtol=1e-3, max_iterations=200,
                    red_noise_leak=1, aliasing=1, seed=None, dtype=np.float64):
    """Light curves with a given PSD and Eddington-ratio distribution (E13).

    The method of Emmanoulopoulos, McHardy and Papadakis (2013): the target
    amplitude spectrum is that of a Timmer-Koenig realisation of the PSD;
    starting from Eddington ratios drawn from the ERDF in random order, each
    iteration imposes the target amplitudes on the current Fourier phases
    (spectral adjustment), then puts the sorted ERDF draws in the rank order
    of the result (amplitude adjustment).  The values always follow the ERDF
    exactly; the PSD is matched approximately.  A curve has converged when
    the relative change of an iteration, ``||x_new - x|| / ||x||``, falls below
    ``rtol``; a curve still changing at ``max_iterations`` is reported as not
    converged.

    Parameters
    ----------
    psd : `~galaxyml.variability.PSD` or callable
        Power spectral density of frequency (Hz); its normalisation is
        irrelevant, the ERDF sets the values.
    erdf : `~galaxyml.variability.ERDF`
        Distribution of the Eddington ratio.
    n_points, dt, n_curves, red_noise_leak, aliasing, seed, dtype
        As for `timmer_koenig`.
    rtol : float
        Convergence tolerance on the relative change (0 runs every iteration).
    max_iterations : int
        Iteration cap.

    Returns
    -------
    curves : `LightCurves`
        Eddington ratios with the convergence report.
    """
    n_points = _positive_int(n_points, "n_points", 2)
    n_curves = _positive_int(n_curves, "n_curves")
    max_iterations = _positive_int(max_iterations, "max_iterations")
    dtype = _real_dtype(dtype)
    dt = _time_step(dt)
    if not rtol >= 0:
        raise InvalidParameterError(f"rtol must be non-negative, not {rtol}")
    check_memory(8 * n_curves * n_points * dtype.itemsize,
                 f"an E13 simulation of {n_curves} x {n_points} points")
    rng = np.random.default_rng(seed)
    target = np.abs(scipy.fft.rfft(
        timmer_koenig(psd, n_points, dt, n_curves, red_noise_leak, aliasing, rng, dtype),
        axis=-1, workers=-1))
    values = np.sort(erdf.sample((n_curves, n_points), seed=rng, dtype=dtype), axis=-1)
    current = rng.permuted(values, axis=-1)

    forward, backward = _real_fft_pair(n_points, dtype)
    converged = np.zeros(n_curves, bool)
    iterations = np.zeros(n_curves, int)
    for iteration in range(1, max_iterations + 1):
        for row in np.flatnonzero(~converged):
            converged[row] = _e13_iteration(current[row], target[row], values[row], rtol,
                                            forward, backward)
            iterations[row] = iteration
        if converged.all():
            break
    return LightCurves(current, dt, converged=converged, n_iterations=iterations)


def _e13_iteration(curve, target, values, rtol, forward, backward):
    """One E13 iteration of one curve, in place; whether its relative change is below ``rtol``.

    Spectral adjustment: the target amplitudes with the curve's phases.
    Amplitude adjustment: the sorted ``values`` in the rank order of the
    result (plain fancy indexing: ``np.put_along_axis`` costs as much again
    as the argsort, the floor of an iteration).
    """
    spectrum = forward(curve)
    modulus = np.abs(spectrum)
    spectrum *= np.divide(target, modulus, out=np.zeros_like(modulus), where=modulus > 0)
    updated = np.empty_like(curve)
    updated[np.argsort(backward(spectrum))] = values
    change = updated - curve
    converged = np.dot(change, change) < rtol ** 2 * np.dot(curve, curve)
    curve[:] = updated
    return converged


def _real_fft_pair(n_points, dtype=np.float64):
    """(rfft, irfft) of real series of ``n_points``: FFTW plans when pyFFTW is installed.

    E13 spends its iterations in these two transforms and an argsort; on
    series of about 1e5 points FFTW is several times faster than scipy's
    pocketfft (the ``fast`` extra installs it).  Neither changes its input;
    FFTW's output is its own buffer, overwritten by the next call.
    """
    try:
        import pyfftw.builders
    except ImportError:
        return (partial(scipy.fft.rfft, workers=1),
                partial(scipy.fft.irfft, n=n_points, workers=1))
    complex_dtype = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    forward = pyfftw.builders.rfft(np.empty(n_points, dtype), threads=1,
                                   planner_effort="FFTW_ESTIMATE")
    backward = pyfftw.builders.irfft(np.empty(n_points // 2 + 1, complex_dtype), n=n_points,
                                     threads=1, planner_effort="FFTW_ESTIMATE")
    return forward, backward


def eddington_luminosity(black_hole_mass):
    """L_Edd = 4 pi G M m_p c / sigma_T (about 1.26e38 erg/s per solar mass)."""
    mass = u.Quantity(black_hole_mass, u.Msun)
    return (4 * np.pi * const.G * mass * const.m_p * const.c / const.sigma_T).to(u.erg / u.s)


@dataclass
class LightCurves:
    """Light curves: simulated Eddington ratios, or fluxes like an observed curve's.

    Attributes
    ----------
    values : `~numpy.ndarray`, shape (n_curves, n_points)
        lambda(t) of each curve (``quantity`` "eddington_ratio"), or fluxes
        (``quantity`` "flux", `~galaxyml.variability.LightCurveModel.simulate`).
    dt : `~astropy.units.Quantity`
        Time step (of the grid the curves were simulated on).
    converged : `~numpy.ndarray` of bool, optional
        Whether each E13 curve converged within the iteration cap.
    n_iterations : `~numpy.ndarray` of int, optional
        E13 iterations each curve used.
    quantity : str
        What ``values`` holds: "eddington_ratio" or "flux".
    sampled_time : `~astropy.units.Quantity`, optional
        Times since the first point, where the curves are read at observed
        times rather than every ``dt``.
    error : `~numpy.ndarray`, optional
        The 1-sigma error of each point (an observed curve's).
    """

    values: np.ndarray
    dt: u.Quantity
    converged: np.ndarray = None
    n_iterations: np.ndarray = None
    quantity: str = "eddington_ratio"
    sampled_time: u.Quantity = None
    error: np.ndarray = None

    @property
    def eddington_ratio(self):
        """lambda(t) of each curve (the ``values`` of Eddington-ratio curves)."""
        if self.quantity != "eddington_ratio":
            raise QuantityMismatchError(f"these light curves hold {self.quantity}, not "
                                        "Eddington ratios: use .values")
        return self.values

    @property
    def shape(self):
        """(n_curves, n_points)."""
        return self.values.shape

    @property
    def time(self):
        """Time since the start of the curves."""
        if self.sampled_time is not None:
            return self.sampled_time
        return np.arange(self.shape[1]) * self.dt

    def magnitude(self, reference=None):
        """Magnitudes relative to a reference value, -2.5 log10(values / reference).

        With fixed black-hole mass and bolometric correction, magnitude
        differences between two times are -2.5 log10(lambda2 / lambda1).
        ``reference`` defaults to each curve's median.
        """
        if reference is None:
            reference = np.median(self.values, axis=-1, keepdims=True)
        return -2.5 * np.log10(self.values / reference)

    def luminosity(self, black_hole_mass, bolometric_correction=1.0):
        """Luminosity lambda L_Edd(M) / k_bol, in erg/s."""
        return (self.eddington_ratio * eddington_luminosity(black_hole_mass)
                / bolometric_correction)

    def to_timeseries(self, index=0, start=None, black_hole_mass=None,
                      bolometric_correction=1.0):
        """One curve as an `~astropy.timeseries.TimeSeries`.

        Parameters
        ----------
        index : int
            Which curve.
        start : `~astropy.time.Time`, optional
            The time of the first point.  By default the times are relative
            to it (a `~astropy.time.TimeDelta` column, valid for any span,
            Gyr included).  With ``start``, times are absolute; a span that
            leaves the calendar ERFA can write (beyond a few hundred thousand
            years) is given as Julian dates.
        black_hole_mass, bolometric_correction
            For a ``luminosity`` column (erg/s) of Eddington-ratio curves.

        Returns
        -------
        series : `~astropy.timeseries.TimeSeries`
            Columns ``eddington_ratio`` or ``flux`` (and ``error`` where
            known), ``magnitude`` (relative to the median), and
            ``luminosity`` when ``black_hole_mass`` is given.
        """
        offsets = TimeDelta(self.time.to(u.day))
        if start is None:
            times = offsets
        else:
            times = Time(start) + offsets
            times.format = "jd" if not _calendar_writable(times) else Time(start).format
        series = TimeSeries(time=times)
        series[self.quantity] = self.values[index]
        if self.error is not None:
            series["error"] = self.error
        series["magnitude"] = self.magnitude()[index] * u.mag
        if black_hole_mass is not None:
            series["luminosity"] = self.luminosity(black_hole_mass, bolometric_correction)[index]
        return series


def _calendar_writable(times):
    """Whether ERFA can write the first and last times as calendar dates."""
    try:
        times[[0, -1]].isot
    except (erfa.ErfaError, ValueError):
        return False
    return True
