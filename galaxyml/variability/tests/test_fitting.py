# Licensed under a 3-clause BSD style license - see LICENSE.rst
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from scipy import stats

from galaxyml.exceptions import InvalidParameterError, MissingColumnError
from galaxyml.variability import (FluxPDF, PowerLawPSD, fit_light_curve, fit_pdf, fit_psd,
                                  periodogram, read_light_curve, timmer_koenig)
from galaxyml.variability.fitting import _fractional_periodogram, _Sampling

_SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lightcurves"
NGC4051 = _SHARED / "NGC4051.dat" if (_SHARED / "NGC4051.dat").exists() else None


def _red_noise_table(n=512, index=2.0, amplitude=5e-8, dt=100.0, seed=3, keep=None):
    """A light curve of known power-law PSD in (rms/mean)^2 per Hz, with Gaussian errors."""
    rng = np.random.default_rng(seed)
    relative = timmer_koenig(PowerLawPSD(amplitude, index), n, dt * u.s, red_noise_leak=10,
                             seed=rng)[0]
    error = np.full(n, 0.5)
    flux = 100 * (1 + relative) + error * rng.standard_normal(n)
    table = Table({"time": np.arange(n) * dt, "flux": flux, "error": error})
    return table if keep is None else table[keep]


def test_read_light_curve_file(tmp_path):
    path = tmp_path / "curve.dat"
    table = _red_noise_table(64)
    table[::-1].write(path, format="ascii.basic")
    curve = read_light_curve(path)
    assert curve.colnames == ["time", "flux", "error"]
    assert curve["time"].unit == u.s
    assert np.all(np.diff(curve["time"]) > 0)  # sorted
    assert np.allclose(curve["flux"].value, table["flux"])


def test_read_light_curve_other_names():
    table = Table({"mjd": np.arange(40.0), "rate": np.ones(40), "rate_err": np.ones(40)})
    curve = read_light_curve(table, time_unit=u.day)
    assert curve["time"].unit == u.day


@pytest.mark.parametrize("change, error, match", [
    (lambda t: t.remove_columns(["flux", "error"]), MissingColumnError, "needs time"),
    (lambda t: t["error"].__setitem__(3, 0), InvalidParameterError, "positive"),
    (lambda t: t["flux"].__setitem__(3, np.nan), InvalidParameterError, "non-finite"),
    (lambda t: t["time"].__setitem__(3, t["time"][2]), InvalidParameterError, "repeated"),
    (lambda t: t.remove_rows(slice(10, None)), InvalidParameterError, "at least 32"),
])
def test_read_light_curve_bad_input(change, error, match):
    table = _red_noise_table(64)
    change(table)
    with pytest.raises(error, match=match):
        read_light_curve(table)


def test_flux_pdf_matches_scipy():
    pdf = FluxPDF("mixture", {"weight": 0.3, "shape": 4.0, "scale": 2.0, "sigma": 0.4,
                              "median": 12.0})
    x = np.linspace(0.5, 40, 50)
    expected = (0.3 * stats.gamma(4.0, scale=2.0).pdf(x)
                + 0.7 * stats.lognorm(0.4, scale=12.0).pdf(x))
    assert np.allclose(pdf.pdf(x), expected)
    draws = pdf.sample(20000, seed=1)
    assert abs(draws.mean() - pdf.mean()) < 4 * pdf.std() / np.sqrt(draws.size)


def test_fit_pdf_errors_are_calibrated():
    truth = FluxPDF("gamma", {"shape": 3.0, "scale": 2.0})
    pulls = []
    for seed in range(60):
        fit = fit_pdf(truth.sample(400, seed=seed), "gamma")
        pulls.append([(fit.params[name] - truth.params[name]) / fit.errors[name]
                      for name in ("shape", "scale")])
    width = np.std(pulls, axis=0)
    assert np.all((width > 0.7) & (width < 1.3)), width
    assert np.all(np.abs(np.mean(pulls, axis=0)) < 0.5)


def test_fit_pdf_rejects_non_positive_flux():
    with pytest.raises(InvalidParameterError, match="positive"):
        fit_pdf(np.linspace(-1, 1, 100))
    with pytest.raises(InvalidParameterError, match="unknown PDF model"):
        fit_pdf(np.linspace(1, 2, 100), "weibull")


def test_periodogram_contiguous_is_the_fft_one():
    table = read_light_curve(_red_noise_table(256))
    sampling = _Sampling.of(table["time"])
    flux = table["flux"].value
    expected = periodogram(flux / flux.mean(), sampling.dt)[1]
    assert np.allclose(_fractional_periodogram(sampling, flux)[0], expected)


@pytest.mark.parametrize("gaps", [False, True])
def test_fit_psd_recovers_a_power_law(gaps):
    keep = None
    if gaps:  # two gaps and an irregular start
        keep = np.r_[0:100, 130:300, 320:512]
    table = read_light_curve(_red_noise_table(512, keep=keep))
    fit = fit_psd(table, "power_law", n_simulations=40, n_bootstrap=8, seed=1)
    assert abs(fit.params["index"] - 2.0) < 3 * fit.errors["index"] + 0.1
    assert 0 < fit.errors["index"] < 0.5
    assert 0 <= fit.probability <= 1
    assert fit.psd.constant == pytest.approx(2 * 100 * 0.5 ** 2 / np.mean(table["flux"].value)
                                             ** 2, rel=1e-6)


def test_light_curve_model_simulates_the_observed_sampling():
    keep = np.r_[0:150, 200:400]
    model = fit_light_curve(_red_noise_table(400, keep=keep), psd_model="power_law",
                            pdf_model="lognormal", n_simulations=20, n_bootstrap=0)
    curves = model.simulate(20, seed=4)
    assert curves.shape == (20, len(keep))
    assert curves.quantity == "flux"
    assert np.allclose(curves.time.to_value(u.s), model.table["time"].to_value(u.s) - 0)
    assert np.array_equal(curves.error, model.table["error"].value)
    again = model.simulate(20, seed=4)
    assert np.array_equal(curves.values, again.values)
    data = model.table["flux"].value
    assert stats.ks_2samp(data, curves.values.ravel()).pvalue > 0.01
    series = curves.to_timeseries(0)
    assert set(series.colnames) == {"time", "flux", "error", "magnitude"}
    with pytest.raises(AttributeError, match="hold flux"):
        curves.eddington_ratio


@pytest.mark.skipif(NGC4051 is None, reason="the NGC 4051 light curve of ../shared/data/"
                    "lightcurves is not available")
def test_ngc4051_pdf_is_delcgens():
    # DELCgen's example: kappa, theta, ln mu, ln sigma, weight = 5.67, 5.96, 2.14, 0.31, 0.82
    pdf = fit_pdf(read_light_curve(NGC4051)["flux"])
    assert pdf.params["shape"] == pytest.approx(5.67, abs=0.05)
    assert pdf.params["scale"] == pytest.approx(5.96, abs=0.05)
    assert np.log(pdf.params["median"]) == pytest.approx(2.14, abs=0.01)
    assert pdf.params["sigma"] == pytest.approx(0.31, abs=0.01)
    assert pdf.params["weight"] == pytest.approx(0.82, abs=0.01)
