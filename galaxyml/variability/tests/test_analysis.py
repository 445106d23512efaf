# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from galaxyml.variability import (BendingPowerLawPSD, magnitude_differences,
                                  plot_structure_function, structure_function,
                                  structure_function_pairs, timmer_koenig)
from galaxyml.variability.analysis import squared_differences_all_lags


def brute_force_sums(x):
    return np.array([np.sum((x[k:] - x[:x.size - k]) ** 2) for k in range(x.size)])


def test_fft_sums_equal_brute_force():
    rng = np.random.default_rng(0)
    for x in (rng.normal(size=257), 3 + np.cumsum(rng.normal(size=300))):
        np.testing.assert_allclose(squared_differences_all_lags(x)[0], brute_force_sums(x),
                                   rtol=1e-10, atol=1e-10)


def test_binned_structure_function_equals_brute_force():
    x = np.cumsum(np.random.default_rng(1).normal(size=500))
    table = structure_function(x, 2 * u.day, n_bins=10)
    sums = brute_force_sums(x)[1:]
    pairs = 500 - np.arange(1, 500)
    edges = np.unique(np.round(np.geomspace(1, 500, 11)).astype(int))
    for row, (lo, hi) in zip(table, zip(edges[:-1], edges[1:])):
        expected = np.sqrt(sums[lo - 1:hi - 1].sum() / pairs[lo - 1:hi - 1].sum())
        assert row["sf"] == pytest.approx(expected, rel=1e-10)
    assert table["dt"].unit == u.day and table["dt"][0] == 2 * u.day
    assert table["reliable"][0] and not table["reliable"][-1]


def test_ensemble_structure_function_and_pairs_estimator():
    curves = timmer_koenig(BendingPowerLawPSD(nu_bend=1e-7 * u.Hz), 2000, 1 * u.day,
                           n_curves=3, seed=2)
    table = structure_function(curves, 1 * u.day, n_bins=15)
    assert table["sf"].shape == (len(table), 3)
    # The pair estimator on a regular cadence gives the same numbers.
    bins = np.geomspace(0.5, 1999.5, 12) * u.day
    pairs = structure_function_pairs(np.arange(2000) * u.day, curves[0], bins)
    sums = squared_differences_all_lags(curves[0])[0]  # every lag separately
    lag = np.arange(2000)
    for row, lo, hi in zip(pairs, bins[:-1].value, bins[1:].value):
        inside = (lag > lo) & (lag < hi)
        expected = np.sqrt(sums[inside].sum() / (2000 - lag[inside]).sum())
        assert row["sf"] == pytest.approx(expected, rel=1e-9)
        assert row["n_pairs"] == (2000 - lag[inside]).sum()


def test_pairs_estimator_on_irregular_sampling_with_errors():
    rng = np.random.default_rng(3)
    time = np.sort(rng.uniform(0, 3000, 400)) * u.day
    noise = 0.05
    magnitudes = rng.normal(0, noise, 400)  # white noise only: SF is sqrt(2) sigma
    table = structure_function_pairs(time, magnitudes, np.geomspace(1, 3000, 8) * u.day)
    assert np.allclose(table["sf"], np.sqrt(2) * noise, rtol=0.15)
    corrected = structure_function_pairs(time, magnitudes, np.geomspace(1, 3000, 8) * u.day,
                                         errors=np.full(400, noise))
    assert np.all(corrected["sf"] < 0.3 * table["sf"])


def test_magnitude_differences():
    x = np.arange(10.0)[None].repeat(2, axis=0)
    differences = magnitude_differences(x, 1 * u.day, [2, 5] * u.day)
    assert np.all(differences[2 * u.day] == 2) and differences[5 * u.day].size == 10
    with pytest.raises(ValueError, match="outside the curves' range of lags"):
        magnitude_differences(x, 1 * u.day, 10 * u.day)


def test_bad_curves():
    with pytest.raises(ValueError, match="NaN"):
        structure_function([1.0, np.nan, 2.0], 1 * u.day)
    with pytest.raises(ValueError, match="n_points >= 2"):
        structure_function([1.0], 1 * u.day)


def test_plot_structure_function():
    import matplotlib.pyplot as plt

    curves = timmer_koenig(BendingPowerLawPSD(nu_bend=1e-7 * u.Hz), 1024, 1 * u.day,
                           n_curves=8, seed=1)
    table = structure_function(curves, 1 * u.day)
    observed = QTable({"dt": [10, 100] * u.day, "sf": [0.1, 0.2], "error": [0.01, 0.02],
                       "label": ["survey A", "survey B"]})
    ax = plot_structure_function([table], observations=observed)
    assert ax.get_xscale() == "log" and len(ax.collections) >= 1
    assert {text.get_text() for text in ax.get_legend().get_texts()} >= {"survey A", "survey B"}
    plt.close("all")


def test_ensemble_structure_function():
    from galaxyml.variability import BrokenPowerLawERDF, ensemble_structure_function

    table = ensemble_structure_function(BendingPowerLawPSD(), BrokenPowerLawERDF(),
                                        dt=1e4 * u.day, n_points=2 ** 12, n_curves=3,
                                        n_bins=12, seed=1)
    assert table["sf"].shape == (len(table), 3)
    assert 0 <= table.meta["converged_fraction"] <= 1
    assert table["dt"][0] == 1e4 * u.day
