# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from scipy import stats
from scipy.integrate import quad

from galaxyml.exceptions import InvalidDistributionError
from galaxyml.variability import (BendingPowerLawPSD, BrokenPowerLawERDF, BrokenPowerLawPSD,
                                  CallablePSD, LogNormalERDF, PowerLawPSD, SchechterERDF,
                                  TabulatedERDF)

ERDFS = [BrokenPowerLawERDF(), LogNormalERDF(), SchechterERDF(),
         TabulatedERDF(lambda x: np.exp(-np.abs(x + 2))),
         TabulatedERDF([1.0, 3.0, 0.5], log_lambda=[-4.0, -2.0, 0.0])]


@pytest.mark.parametrize("erdf", ERDFS, ids=lambda e: type(e).__name__)
def test_pdf_is_normalised_and_cdf_consistent(erdf):
    integral, _ = quad(erdf.pdf, erdf.log_lambda_min, erdf.log_lambda_max, limit=500)
    assert integral == pytest.approx(1, abs=1e-3)
    assert erdf.cdf(erdf.log_lambda_min) == 0 and erdf.cdf(erdf.log_lambda_max) == 1
    q = np.linspace(0.01, 0.99, 7)
    np.testing.assert_allclose(erdf.cdf(erdf.ppf(q)), q, atol=1e-6)


@pytest.mark.parametrize("erdf", ERDFS, ids=lambda e: type(e).__name__)
def test_samples_follow_the_pdf(erdf):
    draws = erdf.sample(2 ** 16, seed=5)
    assert draws.min() >= 10 ** erdf.log_lambda_min and draws.max() <= 10 ** erdf.log_lambda_max
    assert stats.kstest(np.log10(draws), erdf.cdf).pvalue > 0.01


def test_fiducial_shapes():
    bpl = BrokenPowerLawERDF()
    # Slopes of dN/dlog(lambda) far below and above the break are -delta1 and -delta2.
    low = np.log10(bpl.pdf(-4.5) / bpl.pdf(-4.0)) / -0.5
    high = np.log10(bpl.pdf(0.5) / bpl.pdf(0.0)) / 0.5
    assert low == pytest.approx(-0.47, abs=0.02) and high == pytest.approx(-2.53, abs=0.02)
    lognormal = LogNormalERDF()
    draws = np.log10(lognormal.sample(100_000, seed=1))
    assert np.mean(draws) == pytest.approx(-3.25, abs=0.01)
    assert np.std(draws) == pytest.approx(0.64, abs=0.01)
    assert lognormal.sample(10, seed=1, dtype=np.float32).dtype == np.float32


def test_seed_reproduces_draws():
    erdf = BrokenPowerLawERDF()
    assert np.array_equal(erdf.sample(100, seed=3), erdf.sample(100, seed=3))
    assert not np.array_equal(erdf.sample(100, seed=3), erdf.sample(100, seed=4))


@pytest.mark.parametrize("density, match", [
    (lambda x: x, "negative"),
    (lambda x: np.zeros_like(x), "cannot be normalised"),
    (lambda x: np.full_like(x, np.nan), "not finite"),
])
def test_bad_pdf(density, match):
    with pytest.raises(InvalidDistributionError, match=match):
        TabulatedERDF(density)


def test_bad_support_and_tables():
    with pytest.raises(InvalidDistributionError, match="support"):
        LogNormalERDF(log_lambda_min=1, log_lambda_max=-1)
    with pytest.raises(InvalidDistributionError, match="increase"):
        TabulatedERDF([1, 2, 3], log_lambda=[0, -1, 1])
    with pytest.raises(InvalidDistributionError, match="sigma"):
        LogNormalERDF(sigma=0)


def test_psds():
    nu = np.geomspace(1e-13, 1e-6, 50) * u.Hz
    bending = BendingPowerLawPSD()
    slope = np.gradient(np.log10(bending(nu)), np.log10(nu.value))
    assert slope[0] == pytest.approx(-1, abs=0.01) and slope[-1] == pytest.approx(-2, abs=0.01)
    assert bending(2e-10 * u.Hz) == pytest.approx(0.5 * 1 / 2e-10)  # half the low-slope law
    assert bending(1 / (158 * u.yr)) > 0  # any time-like frequency unit
    assert PowerLawPSD(2.0, 1.5)(4.0) == pytest.approx(2 * 4 ** -1.5)
    broken = BrokenPowerLawPSD(nu_break=1e-8 * u.Hz)
    assert broken(1e-9 * u.Hz) == pytest.approx(10.0)
    assert broken(1e-7 * u.Hz) == pytest.approx(0.01)
    assert BendingPowerLawPSD(constant=3.0)(1.0) == pytest.approx(3.0, rel=1e-3)


def test_negative_psd():
    with pytest.raises(InvalidDistributionError, match="negative or not finite"):
        CallablePSD(lambda nu: nu - 1e-8)(np.geomspace(1e-10, 1e-6, 10))
    with pytest.raises(TypeError):
        CallablePSD(3.0)
