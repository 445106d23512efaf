# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData
from astropy.table import QTable

from galaxyml.exceptions import (AntennaTableError, InvalidBitWidthError, InvalidSparsityError,
                                 NonFiniteDataError, ShapeMismatchError)
from galaxyml.radio import (MeasurementOperator, SkyGrid, add_visibility_noise, antenna_table,
                            baselines, dirty_beam, dirty_image, evaluate_iht, hogbom_clean,
                            lofar_station_layout, niht, plot_iht_comparison, quantized_niht,
                            relative_error, simulate_sky, summarize_iht, support_recovery)


@pytest.fixture(scope="module")
def station():
    antennas = lofar_station_layout(32, radius=25 * u.m, seed=1)
    return MeasurementOperator(antennas, 60 * u.MHz, SkyGrid(24, 2.5 * u.deg))


@pytest.fixture(scope="module")
def observation(station):
    sky, catalog = simulate_sky(station.grid, n_point=6, n_gaussian=0, seed=4)
    noisy, _ = add_visibility_noise(station.visibilities(sky), snr=3.0, seed=5)
    return sky, catalog, noisy, station.real_data(noisy)


def test_antenna_tables():
    layout = lofar_station_layout(48, radius=30 * u.m, min_spacing=2 * u.m, seed=0)
    positions = np.column_stack([layout["east"].value, layout["north"].value])
    distances = np.hypot(*(positions[:, None] - positions[None]).transpose(2, 0, 1))
    assert distances[np.triu_indices(48, 1)].min() >= 2.0
    assert np.hypot(*positions.T).max() <= 30.0
    vectors, pairs = baselines(layout)
    assert vectors.shape == (48 * 47 // 2, 3) and vectors.unit == u.m
    assert np.allclose(vectors[0].value, positions[pairs[0, 1]].tolist() + [0]
                       - np.r_[positions[pairs[0, 0]], 0])
    with pytest.raises(AntennaTableError, match="lacks the columns"):
        antenna_table(QTable({"east": [0.0, 1.0], "north": [0.0, 1.0]}))
    with pytest.raises(AntennaTableError, match="share a position"):
        antenna_table({"east": [0.0, 1.0, 0.0], "north": [0.0, 1.0, 0.0], "up": [0, 0, 0]})


def test_measurement_operator_formula(station):
    """Phi[(p, q), k] = exp(-2 pi i (u l + v m + w (n - 1))) and its real form."""
    grid = station.grid
    k = 5 * grid.shape[1] + 17
    azimuth, elevation = grid.wcs.wcs_pix2world(17, 5, 0)
    az, el = np.radians(azimuth), np.radians(elevation)
    direction = np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])
    vectors, _ = baselines(station.antennas)
    uvw = (vectors / station.wavelength).decompose().value   # zenith: u = E, v = N, w = U
    l, m, n = direction
    expected = np.exp(-2j * np.pi * (uvw[:, 0] * l + uvw[:, 1] * m + uvw[:, 2] * (n - 1)))
    assert np.allclose(station.complex_matrix(columns=[k])[:, 0], expected)
    real = station.columns([k])[:, 0]
    assert np.allclose(real, np.r_[expected.real, expected.imag], atol=1e-6)
    assert np.allclose(station.matrix()[:, k], real)
    assert station.shape == (2 * len(vectors), grid.n_pixels)
    sky = np.zeros(grid.shape)
    sky.flat[k] = 2.0
    assert np.allclose(station.visibilities(sky), 2 * expected)


def test_grid_wcs_and_horizon():
    grid = SkyGrid(16, 1 * u.deg, pointing=(30 * u.deg, 60 * u.deg))
    assert tuple(grid.wcs.wcs.ctype) == ("ALON-SIN", "ALAT-SIN")
    centre = grid.wcs.wcs_pix2world(7.5, 7.5, 0)
    assert np.allclose(centre, (30, 60))
    image = grid.to_ccddata(np.arange(256.0))
    assert image.shape == (16, 16) and image.unit == u.Jy
    with pytest.raises(ValueError, match="horizon"):
        SkyGrid(64, 3 * u.deg, pointing=(0 * u.deg, 30 * u.deg))
    with pytest.raises(ShapeMismatchError):
        grid.to_ccddata(np.ones(10))


def test_niht_recovers_a_sparse_sky(station, observation):
    sky, catalog, _, data = observation
    result = niht(station, data, sparsity=6, positive=True)
    assert result.converged
    assert relative_error(result.x, sky) < 0.1
    assert support_recovery(result.x, catalog, station.grid.shape) == 1.0
    assert result.image.shape == station.grid.shape and result.image.wcs is not None
    assert result.residual_norms[-1] < result.residual_norms[0]
    assert result.bits == 32 and result.matrix_nbytes == 4 * np.prod(station.shape)


@pytest.mark.parametrize("bits", [None, 4])
def test_niht_image_writes_to_fits(station, observation, tmp_path, bits):
    data = observation[3]
    result = (niht(station, data, sparsity=6) if bits is None
              else quantized_niht(station, data, sparsity=6, bits=bits, seed=0))
    path = tmp_path / "sky.fits"
    result.image.write(path)
    back = CCDData.read(path)
    assert np.array_equal(back.data, result.image.data)
    assert back.header["BITS"] == result.bits and back.header["NITER"] == result.iterations
    assert back.wcs.has_celestial


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_niht_close_to_float(station, observation, bits):
    sky, catalog, _, data = observation
    reference = relative_error(niht(station, data, sparsity=6, positive=True).x, sky)
    errors = [relative_error(quantized_niht(station, data, sparsity=6, bits=bits, seed=seed,
                                            positive=True).x, sky) for seed in range(3)]
    assert np.mean(errors) < 1.25 * reference + 0.01
    result = quantized_niht(station.matrix(), data, sparsity=6, bits=bits, positive=True)
    # Codes at b bits plus one float32 scale per row.
    assert result.matrix_nbytes == np.prod(station.shape) * bits // 8 + 4 * station.shape[0]
    assert result.image is None


def test_two_bit_niht_still_finds_sources(station, observation):
    sky, catalog, _, data = observation
    result = quantized_niht(station, data, sparsity=6, bits=2, positive=True)
    assert support_recovery(result.x, catalog, station.grid.shape) >= 0.8


def test_solver_bad_input(station, observation):
    _, _, _, data = observation
    matrix = station.matrix()
    with pytest.raises(InvalidSparsityError):
        niht(matrix, data, sparsity=0)
    with pytest.raises(InvalidSparsityError):
        niht(matrix, data, sparsity=matrix.shape[1] + 1)
    with pytest.raises(ShapeMismatchError, match="rows"):
        niht(matrix, data[:-1], sparsity=3)
    bad = data.copy()
    bad[3] = np.nan
    with pytest.raises(NonFiniteDataError):
        niht(matrix, bad, sparsity=3)
    with pytest.raises(NonFiniteDataError):
        quantized_niht(matrix, bad, sparsity=3, bits=4)
    with pytest.raises(InvalidBitWidthError):
        quantized_niht(matrix, data, sparsity=3, bits=3)


def test_dirty_image_and_clean(station, observation):
    sky, catalog, noisy, _ = observation
    single = np.zeros(station.grid.shape)
    single[12, 12] = 1.0
    dirty = dirty_image(station, station.visibilities(single))
    assert dirty.unit == u.Jy / u.beam
    assert dirty.data[12, 12] == pytest.approx(1.0, rel=1e-4)
    beam = dirty_beam(station)
    ny, nx = station.grid.shape
    assert np.allclose(dirty.data, beam[ny - 1 - 12:2 * ny - 1 - 12, nx - 1 - 12:2 * nx - 1 - 12],
                       atol=1e-5)
    result = hogbom_clean(station, noisy)
    assert result.iterations > 0
    assert support_recovery(result.model.data, catalog, station.grid.shape) >= 0.8
    assert relative_error(result.model.data, sky) < 1.0
    assert result.restored.wcs is not None


def test_evaluation_table_and_figure(station):
    runs, examples = evaluate_iht(station, n_skies=2, bits=(32, 4), n_point=5, n_gaussian=1,
                                  progress=False)
    assert set(runs["method"]) == {"NIHT float32", "NIHT 4-bit", "CLEAN"}
    summary = summarize_iht(runs)
    four = summary[summary["method"] == "NIHT 4-bit"][0]
    assert four["memory_reduction"] == pytest.approx(8.0, rel=0.02)
    assert {"truth", "dirty", "CLEAN", "NIHT float32"} <= set(examples)
    figure = plot_iht_comparison(summary, examples)
    assert len(figure.axes) >= 6
