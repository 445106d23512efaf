# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.time import Time
from astropy.timeseries import TimeSeries
from scipy import stats

from galaxyml.exceptions import InsufficientMemoryError, InvalidDistributionError
from galaxyml.variability import (BendingPowerLawPSD, BrokenPowerLawERDF, CallablePSD,
                                  LogNormalERDF, emmanoulopoulos, fit_bending_power_law,
                                  periodogram, timmer_koenig)
from galaxyml.variability.simulate import eddington_luminosity

# A bend inside the frequencies of a 2^13-point curve at 1-day steps.
PSD = BendingPowerLawPSD(nu_bend=1e-7 * u.Hz, a_low=1.0, a_high=2.5)


def test_tk_variance_is_the_psd_integral():
    n, dt = 2 ** 12, 1 * u.day
    curves = timmer_koenig(PSD, n, dt, n_curves=1000, seed=11)
    frequency = np.arange(1, n // 2 + 1) / (n * dt.to_value(u.s))
    expected = np.sum(PSD(frequency)) * frequency[0]
    assert np.mean(curves ** 2) == pytest.approx(expected, rel=0.05)
    assert np.allclose(curves.mean(axis=1), 0, atol=1e-9 * np.sqrt(expected))  # no DC power


def test_tk_periodogram_slopes_are_recovered():
    frequency, power = periodogram(timmer_koenig(PSD, 2 ** 13, 1 * u.day, n_curves=64, seed=2),
                                   1 * u.day)
    fit = fit_bending_power_law(frequency, power)
    assert fit["a_low"] == pytest.approx(1.0, abs=0.1)
    assert fit["a_high"] == pytest.approx(2.5, abs=0.1)
    assert fit["nu_bend"].to_value(u.Hz) == pytest.approx(1e-7, rel=0.3)


def test_tk_options_keep_the_variance_finite_and_the_shape():
    leak = timmer_koenig(PSD, 1000, 1 * u.day, n_curves=3, red_noise_leak=8, aliasing=4, seed=1,
                         dtype=np.float32)
    assert leak.shape == (3, 1000) and leak.dtype == np.float32 and np.isfinite(leak).all()
    # A red-noise leak adds power from below the curve's lowest frequency.
    plain = timmer_koenig(PSD, 1000, 1 * u.day, n_curves=400, seed=1)
    leaky = timmer_koenig(PSD, 1000, 1 * u.day, n_curves=400, red_noise_leak=16, seed=1)
    assert np.mean(leaky ** 2) > 1.5 * np.mean(plain ** 2)


def test_e13_output_follows_the_erdf_and_psd():
    erdf = LogNormalERDF()
    curves = emmanoulopoulos(PSD, erdf, 2 ** 16, 1 * u.day, seed=4, max_iterations=100)
    values = curves.eddington_ratio[0]
    assert stats.ks_2samp(np.log10(values), np.log10(erdf.sample(2 ** 16, seed=9))).pvalue > 0.01
    assert stats.kstest(np.log10(values), erdf.cdf).pvalue > 0.01
    assert curves.n_iterations[0] <= 100


def test_e13_ensemble_slopes():
    """E13 matches the PSD where the PDF lets it: exactly-ish for a mildly skewed one.

    For strongly skewed ERDFs (the fiducial ones span several dex) the PDF
    is exact and the PSD of lambda flattens, as Emmanoulopoulos et al. note.
    """
    mild = LogNormalERDF(log_lambda_star=-2.0, sigma=0.1)
    curves = emmanoulopoulos(PSD, mild, 2 ** 13, 1 * u.day, n_curves=32, seed=3)
    frequency, power = periodogram(curves.eddington_ratio, 1 * u.day)
    fit = fit_bending_power_law(frequency, power)
    assert fit["a_low"] == pytest.approx(1.0, abs=0.1)
    assert fit["a_high"] == pytest.approx(2.5, abs=0.1)


def test_e13_convergence_report():
    small = emmanoulopoulos(PSD, LogNormalERDF(), 1024, 1 * u.day, n_curves=3, rtol=1e-3,
                            max_iterations=500, seed=8)
    assert small.converged.all() and (small.n_iterations < 500).all()
    capped = emmanoulopoulos(PSD, LogNormalERDF(), 2 ** 14, 1 * u.day, rtol=0.0,
                             max_iterations=5, seed=8)
    # rtol = 0 can only be met by an exact fixed point: never claimed at the cap.
    assert capped.n_iterations[0] == 5 and not capped.converged[0]


def test_seeds_reproduce_exactly():
    a = emmanoulopoulos(PSD, LogNormalERDF(), 512, 1 * u.day, n_curves=2, seed=21)
    b = emmanoulopoulos(PSD, LogNormalERDF(), 512, 1 * u.day, n_curves=2, seed=21)
    c = emmanoulopoulos(PSD, LogNormalERDF(), 512, 1 * u.day, n_curves=2, seed=22)
    assert np.array_equal(a.eddington_ratio, b.eddington_ratio)
    assert not np.array_equal(a.eddington_ratio, c.eddington_ratio)
    rng = np.random.default_rng(5)
    first, second = timmer_koenig(PSD, 64, 1, seed=rng), timmer_koenig(PSD, 64, 1, seed=rng)
    assert not np.array_equal(first, second)  # a shared generator moves on


def test_light_curve_outputs():
    curves = emmanoulopoulos(PSD, BrokenPowerLawERDF(), 256, 100 * u.day, seed=1)
    assert curves.time[-1] == 255 * 100 * u.day
    magnitude = curves.magnitude()
    lam = curves.eddington_ratio[0]
    np.testing.assert_allclose(magnitude[0, 5] - magnitude[0, 2], -2.5 * np.log10(lam[5] / lam[2]))
    series = curves.to_timeseries(black_hole_mass=1e8 * u.Msun, bolometric_correction=10)
    assert isinstance(series, TimeSeries) and len(series) == 256
    assert series["magnitude"].unit == u.mag and series["luminosity"].unit == u.erg / u.s
    assert eddington_luminosity(1 * u.Msun).value == pytest.approx(1.26e38, rel=0.01)
    assert series["luminosity"][0].value == pytest.approx(lam[0] * 1.26e46 / 10, rel=0.01)


def test_to_timeseries_spans_gyr():
    # 4096 steps of 1e6 days: 11 Gyr, beyond any calendar ERFA can write
    curves = emmanoulopoulos(PSD, BrokenPowerLawERDF(), 4096, 1e6 * u.day, seed=1,
                             max_iterations=5)
    relative = curves.to_timeseries()
    assert relative.time[-1].to(u.Gyr).value == pytest.approx(4095e6 / 365.25e9)
    absolute = curves.to_timeseries(start=Time("2000-01-01", scale="tt"))
    assert absolute.time.format == "jd"
    assert absolute.time[-1].jd == pytest.approx(2451544.5 + 4095e6)
    short = curves.__class__(curves.values[:, :10], curves.dt)
    assert short.to_timeseries(start=Time("2000-01-01", scale="tt")).time.format == "iso"


def test_e13_without_fftw_is_the_same(monkeypatch):
    import builtins

    fftw = emmanoulopoulos(PSD, BrokenPowerLawERDF(), 512, 100 * u.day, n_curves=2, seed=3)
    real_import = builtins.__import__

    def no_pyfftw(name, *args, **kwargs):
        if name.startswith("pyfftw"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyfftw)
    pocketfft = emmanoulopoulos(PSD, BrokenPowerLawERDF(), 512, 100 * u.day, n_curves=2, seed=3)
    assert np.allclose(fftw.values, pocketfft.values)
    assert np.array_equal(fftw.n_iterations, pocketfft.n_iterations)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dt=0 * u.day), "time step must be a positive"),
    (dict(dt=-1 * u.day), "time step must be a positive"),
    (dict(n_points=0), "n_points must be an integer >= 2"),
    (dict(n_points=2.5), "n_points must be an integer"),
    (dict(red_noise_leak=0), "red_noise_leak"),
    (dict(dtype=np.int32), "dtype must be float32 or float64"),
])
def test_bad_arguments(kwargs, match):
    arguments = dict(psd=PSD, n_points=64, dt=1 * u.day)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        timmer_koenig(**arguments)


def test_negative_psd_is_refused():
    with pytest.raises(InvalidDistributionError, match="negative"):
        timmer_koenig(CallablePSD(lambda nu: -np.ones_like(nu)), 64, 1 * u.day)


def test_too_long_is_refused_before_allocating():
    with pytest.raises(InsufficientMemoryError, match=r"needs about [\d.]+ GiB"):
        timmer_koenig(PSD, 2 ** 40, 1 * u.day)
    with pytest.raises(InsufficientMemoryError, match="E13"):
        emmanoulopoulos(PSD, LogNormalERDF(), 2 ** 36, 1 * u.day)


def test_red_noise_leak_segment_is_the_full_inverse_fft():
    """The pruned synthesis of a segment equals the segment of the whole long series."""
    import scipy.fft

    from galaxyml.variability.simulate import (_segment_of_long_series,
                                               _spectrum_coefficients)

    for n_segment, leak, start in ((1000, 7, 1234), (512, 8, 3000)):
        n_fine, dt_s = n_segment * leak, 86400.0
        segment = _segment_of_long_series(PSD, n_segment, leak, dt_s, start,
                                          np.random.default_rng(1), np.float64)
        # The same coefficients, drawn in the same order, into one full spectrum.
        rng, spectrum, q = np.random.default_rng(1), np.zeros(n_fine // 2 + 1, complex), \
            np.arange(n_segment)
        for r in range(leak):
            k = q * leak + r
            k = k[k <= n_fine // 2]
            spectrum[k] = _spectrum_coefficients(PSD, k, n_fine, dt_s, rng, np.float64)
        full = scipy.fft.irfft(spectrum, n=n_fine)
        np.testing.assert_allclose(segment, full[start:start + n_segment], rtol=0,
                                   atol=1e-12 * np.std(full))
