# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.modeling.models import Sersic2D
from astropy.nddata import CCDData, StdDevUncertainty

from galaxyml.degrade import add_point_source
from galaxyml.morphology import (ConvolvedSersic2D, DecompositionErrors, fit_error_model,
                                 fit_point_source_sersic, sersic_total_flux)
from galaxyml.psf import GaussianPSF

from galaxyml.degrade.tests.test_degrade import sky_wcs

from .test_decomposition import NOISE

PSF = GaussianPSF(2.7)
HOST = {"amplitude": 0.3, "r_eff": 4.0, "n": 1.5, "ellip": 0.3, "theta": 0.5}


def agn_image(ps_flux, seed=0, shape=(64, 64)):
    """A PSF-convolved Sérsic host plus a point source at (31.4, 31.7), with noise."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    host = ConvolvedSersic2D(PSF.render(), x_0=31.4, y_0=31.7, **HOST)(xx, yy)
    image = CCDData(host + np.random.default_rng(seed).normal(0, NOISE, shape), unit="nmgy",
                    wcs=sky_wcs(shape), uncertainty=StdDevUncertainty(np.full(shape, NOISE)),
                    meta={"band": "r"})
    with_ps, _ = add_point_source(image, PSF, flux=ps_flux, position=(31.4, 31.7),
                                  photon_noise=False)
    return with_ps


def test_convolved_sersic_keeps_the_flux_and_the_profile():
    yy, xx = np.mgrid[-200:201, -200:201]
    params = dict(HOST, n=1.0)
    model = ConvolvedSersic2D(PSF.render(), x_0=0.2, y_0=-0.3, **params)
    total = sersic_total_flux(params["amplitude"], params["r_eff"], params["n"],
                              params["ellip"])
    assert model(xx, yy).sum() == pytest.approx(total, rel=5e-3)  # pixel centres off the core
    # With a delta-function PSF, away from the core it is the plain Sérsic profile.
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    plain = ConvolvedSersic2D(delta, x_0=0.2, y_0=-0.3, **params)(xx, yy)
    expected = Sersic2D(x_0=0.2, y_0=-0.3, **params)(xx, yy)
    outside = np.hypot(xx, yy) > 6
    assert np.allclose(plain[outside], expected[outside])


def test_fit_recovers_point_source_and_host():
    """On a host the model describes exactly, with the photometric errors alone (the
    shipped calibration is for real galaxies, which no Sérsic profile fits)."""
    image = agn_image(ps_flux=20.0)
    host, table = fit_point_source_sersic(image, psf=PSF, errors=DecompositionErrors())
    row = table[0]
    assert row["flags"] == 0 and row["ps_detected"]
    tolerance = max(4 * row["ps_flux_err"].value, 0.2)
    assert row["ps_flux"].value == pytest.approx(20.0, abs=tolerance)
    true_host = sersic_total_flux(HOST["amplitude"], HOST["r_eff"], HOST["n"], HOST["ellip"])
    assert row["host_sersic_flux"].value == pytest.approx(true_host, rel=0.05)
    assert row["sersic_n"] == pytest.approx(HOST["n"], abs=0.3)
    assert 0.5 < row["reduced_chi2"] < 1.5
    # The host image is the input minus the fitted point source, in the input's type.
    assert isinstance(host, CCDData) and host.unit == u.nmgy
    assert host.data.sum() == pytest.approx(image.data.sum() - row["ps_flux"].value, rel=1e-3)
    assert table.meta["method"] == "point source + Sersic fit"
    assert {"host_sersic_mag", "sky", "sersic_r_eff"} <= set(table.colnames)


def test_a_fit_that_does_not_converge_is_flagged_not_raised():
    images = [agn_image(ps_flux=5.0, seed=1), agn_image(ps_flux=5.0, seed=2)]
    hosts, table = fit_point_source_sersic(images, psf=PSF, maxiter=3)
    assert len(hosts) == 2 and len(table) == 2
    assert np.all(table["flags"] & 16)
    assert np.all(table["n_evaluations"] <= 4)


def test_a_fit_pinned_at_no_point_source_is_a_failure_not_a_magnitude():
    """A galaxy without a point source: the fit's point-source flux goes to its bound, and
    its covariance means nothing; the row is flagged failed with NaN fluxes, never
    'magnitude 43 +- 1e-7'."""
    image = agn_image(ps_flux=1e-9)
    host, table = fit_point_source_sersic(image, psf=PSF)
    row = table[0]
    if row["flags"] & 128:
        assert np.isnan(row["ps_flux"]) and not row["ps_detected"]
        assert np.array_equal(host.data, image.data.astype(np.float32))
    else:
        assert not row["ps_detected"] or row["ps_mag"].value < 30
    assert not (np.isfinite(row["ps_mag"].value) and row["ps_mag"].value > 30)


def test_the_shipped_fit_calibration_is_read():
    errors = fit_error_model()
    assert errors.ps_core > 0 and "evaluate_psfgan.py" in errors.meta["command"]
