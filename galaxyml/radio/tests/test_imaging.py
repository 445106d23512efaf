# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Observed visibilities: the reader, the celestial grid, weighting, the restoring beam, image()."""
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData
from astropy.time import Time

from galaxyml.exceptions import (AllFlaggedError, InvalidParameterError, MissingFileError,
                                 UnknownPolarizationError, VisibilityReadError)
from galaxyml.radio import (CelestialGrid, CleanBeam, MeasurementOperator, SkyGrid, Visibilities,
                            dirty_beam, fit_clean_beam, image, image_products, imaging_weights,
                            read_visibilities)

_RADIO = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "radio"
M87 = _RADIO / "mojave.uvfits"
MWA = _RADIO / "1061316296.uvfits"
needs_m87 = pytest.mark.skipif(not M87.exists(), reason="the VLBA M87 visibilities of "
                               "../shared/data/radio are not available")
needs_mwa = pytest.mark.skipif(not MWA.exists(), reason="the MWA visibilities of "
                               "../shared/data/radio are not available")
CENTRE = SkyCoord(150 * u.deg, 20 * u.deg)
CELL = 2 * u.arcmin


def _direction_cosines(position, centre=CENTRE):
    """(l, m) of a position relative to a phase centre (l to the east)."""
    offset = centre.skyoffset_frame()
    lon, lat = position.transform_to(offset).lon, position.transform_to(offset).lat
    return np.cos(lat) * np.sin(lon), np.sin(lat)


def _synthetic(sources, n=3000, uv_max=800.0, noise=0.0, seed=0, elongation=1.0,
               concentration=0.5):
    """Visibilities of point sources [(SkyCoord, flux)], in the operator's sign convention.

    The (u, v) density falls with radius as r^(1 / concentration - 2): even for 0.5, and
    concentrated on short spacings, as real arrays are, above it.
    """
    rng = np.random.default_rng(seed)
    radius = uv_max * rng.uniform(0.002, 1, n) ** concentration
    angle = rng.uniform(0, 2 * np.pi, n)
    uvw = np.column_stack([radius * np.cos(angle), elongation * radius * np.sin(angle),
                           rng.normal(0, 5, n)])
    data = np.zeros(n, complex)
    for position, flux in sources:
        l, m = (float(v) for v in _direction_cosines(position))
        n_term = np.sqrt(1 - l ** 2 - m ** 2) - 1
        data += flux * np.exp(-2j * np.pi * (uvw[:, 0] * l + uvw[:, 1] * m + uvw[:, 2] * n_term))
    data += noise * (rng.normal(size=n) + 1j * rng.normal(size=n)) / np.sqrt(2)
    return Visibilities(uvw=uvw, data=data, weights=np.ones(n), frequency=np.full(n, 150.0) * u.MHz,
                        time=Time(np.full(n, 2460000.5), format="jd"),
                        antennas=np.zeros((n, 2), int), phase_centre=CENTRE, telescope="SIM",
                        source="test")


def _east_of_centre(arcmin):
    return CENTRE.directional_offset_by(90 * u.deg, arcmin * u.arcmin)


def test_celestial_grid_directions_and_wcs():
    """Pixels hold the direction cosines of their WCS positions; the centre sits on pixel N // 2."""
    grid = CelestialGrid(32, CELL, CENTRE)
    assert grid.wcs.wcs.ctype[0] == "RA---SIN" and np.allclose(grid.wcs.wcs.crpix, [17, 17])
    x, y = 5, 23
    position = grid.wcs.pixel_to_world(x, y)
    l, m = _direction_cosines(position)
    vector = grid.directions()[y * 32 + x]
    assert np.allclose(vector[:2], [l, m], atol=1e-9)
    assert np.isclose(np.linalg.norm(vector), 1)
    assert np.allclose(grid.directions()[16 * 32 + 16], [0, 0, 1])
    with pytest.raises(InvalidParameterError, match="SkyCoord"):
        CelestialGrid(32, CELL, (150, 20))


def test_point_source_lands_on_its_sky_position():
    """A source 10' east and one 6' north come back at their RA and Dec, at their flux."""
    east, north = _east_of_centre(10), CENTRE.directional_offset_by(0 * u.deg, 6 * u.arcmin)
    vis = _synthetic([(east, 2.0), (north, 1.0)])
    dirty = image(vis, method="dirty", shape=32, cell=CELL)
    assert isinstance(dirty, CCDData) and dirty.unit == u.Jy / u.beam
    for position, flux in ((east, 2.0), (north, 1.0)):
        x, y = (int(round(float(v))) for v in dirty.wcs.world_to_pixel(position))
        box = dirty.data[y - 1:y + 2, x - 1:x + 2]
        assert box.max() == pytest.approx(flux, rel=0.1)
    # East is to the left: the brightest pixel lies at x < the centre.
    py, px = np.unravel_index(np.argmax(dirty.data), dirty.shape)
    assert px == 16 - 5 and py == 16


def test_weighting_natural_and_uniform():
    """Uniform weights flatten the (u, v) density: a sharper beam than natural weighting."""
    vis = _synthetic([(CENTRE, 1.0)], n=4000, concentration=2.0)
    grid = CelestialGrid(32, CELL, CENTRE)
    natural = imaging_weights(vis, grid, "natural")
    uniform = imaging_weights(vis, grid, "uniform")
    assert np.array_equal(natural, vis.weights)
    assert uniform.std() / uniform.mean() > 0.3
    beams = {w: fit_clean_beam(dirty_beam(MeasurementOperator.from_visibilities(vis, grid, w)),
                               CELL) for w in ("natural", "uniform")}
    assert beams["uniform"].major < 0.9 * beams["natural"].major
    with pytest.raises(InvalidParameterError, match="weighting"):
        imaging_weights(vis, grid, "briggs")
    with pytest.raises(InvalidParameterError, match="CelestialGrid"):
        MeasurementOperator.from_visibilities(vis, SkyGrid(32, CELL))


@pytest.mark.parametrize("position_angle", [0, 30, 90, 150])
def test_clean_beam_fit_recovers_an_elliptical_gaussian(position_angle):
    """The fit returns the axes and the position angle (east of north) the beam was drawn with."""
    truth = CleanBeam(6 * u.arcmin, 3 * u.arcmin, position_angle * u.deg)
    kernel = truth.kernel(CELL, (31, 31))
    fitted = fit_clean_beam(kernel, CELL)
    assert fitted.major.to_value(u.arcmin) == pytest.approx(6, rel=0.02)
    assert fitted.minor.to_value(u.arcmin) == pytest.approx(3, rel=0.02)
    difference = (fitted.position_angle - truth.position_angle + 90 * u.deg) % (180 * u.deg)
    assert abs(difference.to_value(u.deg) - 90) < 1


def test_clean_beam_orientation_on_the_sky():
    """A beam elongated east-west (PA 90) is wide along x, where RA runs."""
    kernel = CleanBeam(6 * u.arcmin, 2 * u.arcmin, 90 * u.deg).kernel(CELL, (21, 21))
    assert kernel[10, 10 + 2] > kernel[10 + 2, 10]
    # The north-south elongated beam of an array short in v.
    vis = _synthetic([(CENTRE, 1.0)], elongation=0.4)
    beam = fit_clean_beam(dirty_beam(MeasurementOperator.from_visibilities(
        vis, CelestialGrid(32, CELL, CENTRE))), CELL)
    assert abs(beam.position_angle.to_value(u.deg) % 180 - 0) < 10 or \
        abs(beam.position_angle.to_value(u.deg) % 180 - 180) < 10


@pytest.mark.parametrize("method,bits", [("clean", None), ("niht", None), ("niht", 4)])
def test_image_recovers_fluxes_and_writes(method, bits, tmp_path):
    """CLEAN and NIHT (float and 4-bit) recover point-source fluxes; the image writes to FITS."""
    south_west = CENTRE.directional_offset_by(200 * u.deg, 12 * u.arcmin)
    sources = [(_east_of_centre(10), 2.0), (south_west, 1.0)]
    grid = CelestialGrid(32, CELL, CENTRE)
    # Put the sources on pixel centres, the model a sparse solver can hold exactly.
    sources = [(grid.wcs.pixel_to_world(*np.round(grid.wcs.world_to_pixel(p))), f)
               for p, f in sources]
    vis = _synthetic(sources, noise=0.5)
    options = {"threshold": 0.05} if method == "clean" else {"sparsity": 4}
    if bits:
        options["seed"] = 1
    result = image_products(vis, method=method, bits=bits, shape=32, cell=CELL, **options)
    for position, flux in sources:
        x, y = (int(round(float(v))) for v in grid.wcs.world_to_pixel(position))
        assert result.model.data[y - 1:y + 2, x - 1:x + 2].sum() == pytest.approx(flux, rel=0.1)
    noise = 0.5 / np.sqrt(len(vis))
    assert result.residual.data.std() < 3 * noise
    assert result.restored.data.max() == pytest.approx(2.0, rel=0.1)
    path = tmp_path / "image.fits"
    result.restored.write(path)
    back = CCDData.read(path)
    assert back.header["BMAJ"] == pytest.approx(result.beam.major.to_value(u.deg))
    assert back.header["METHOD"] == method and back.header["BITS"] == (bits or 32)
    assert back.wcs.wcs.ctype[0] == "RA---SIN"
    assert back.wcs.pixel_to_world(16, 16).separation(CENTRE) < 1 * u.arcsec
    if bits:
        packed = 2 * len(vis) * grid.n_pixels * bits // 8
        assert packed <= result.matrix_nbytes <= 1.01 * packed   # and one scale per row


def test_image_rejects_bad_arguments():
    vis = _synthetic([(CENTRE, 1.0)], n=200)
    with pytest.raises(InvalidParameterError, match="method"):
        image(vis, method="mem", shape=16, cell=CELL)
    with pytest.raises(InvalidParameterError, match="bits"):
        image(vis, method="clean", bits=4, shape=16, cell=CELL)
    with pytest.raises(AllFlaggedError, match="no visibility"):
        vis.select(uv_max=0.1)
    assert len(vis.select(uv_max=400)) < len(vis)


def test_reader_errors(tmp_path):
    with pytest.raises(MissingFileError, match="no visibility file"):
        read_visibilities(tmp_path / "absent.uvfits")
    junk = tmp_path / "junk.uvfits"
    junk.write_bytes(b"SIMPLE  =                    T" + b" " * 3000)
    with pytest.raises(VisibilityReadError):
        read_visibilities(junk)


@needs_m87
def test_read_m87(tmp_path):
    """The VLBA file: Stokes I from RR and LL, wavelengths per IF, the phase centre, truncation."""
    vis = read_visibilities(M87, unit="Jy")
    assert vis.telescope == "VLBA" and vis.source == "1228+126"
    assert vis.phase_centre.ra.deg == pytest.approx(187.7059, abs=1e-3)
    assert len(vis) == 5946 and np.all(vis.weights > 0)
    assert set(np.unique(vis.frequency.to_value(u.MHz)).round(2)) == {8104.46, 8112.46}
    assert 2.2e8 < vis.uv_distance.max() < 2.4e8
    single = read_visibilities(M87, polarization="rr")
    assert single.polarization == "RR" and len(single) >= len(vis)
    with pytest.raises(UnknownPolarizationError, match="XX"):
        read_visibilities(M87, polarization="XX")
    from galaxyml.io import conf

    with conf.set_temp("max_fits_bytes", 100_000):
        with pytest.raises(VisibilityReadError, match="max_fits_bytes"):
            read_visibilities(M87)
    truncated = tmp_path / "truncated.uvfits"
    truncated.write_bytes(M87.read_bytes()[:300_000])
    with pytest.raises(VisibilityReadError, match="truncated"):
        read_visibilities(truncated)


@needs_m87
def test_m87_jet_points_west(tmp_path):
    """M87's jet runs west-north-west of the core (PA about -70 deg): CLEAN puts its flux there."""
    vis = read_visibilities(M87, unit="Jy")
    result = image_products(vis, method="clean", shape=64, cell=0.4 * u.mas, threshold=0.01,
                            max_iter=2000)
    model = result.model.data
    yy, xx = np.indices(model.shape)
    assert model[xx > 36].sum() > 0.3 and model[xx < 28].sum() < 0.05
    assert result.residual.data.std() < 0.01
    assert result.restored.header["OBJECT"] == "1228+126"


@needs_mwa
def test_read_mwa_flags_and_measurement_set(tmp_path):
    """The MWA file flags every visibility; ignore_flags reads them; a Measurement Set reads too."""
    with pytest.raises(AllFlaggedError, match="ignore_flags"):
        read_visibilities(MWA)
    vis = read_visibilities(MWA, ignore_flags=True)
    assert len(vis) == 16002 and np.all(vis.weights == 1) and vis.unit == u.dimensionless_unscaled
    assert vis.frequency[0].to_value(u.MHz) == pytest.approx(167.075)
    pytest.importorskip("casacore", reason="writing a Measurement Set needs python-casacore")
    import pyuvdata

    uvdata = pyuvdata.UVData.from_file(MWA)
    uvdata.select(polarizations=["xx", "yy"], bls=[(uvdata.ant_1_array[i], uvdata.ant_2_array[i])
                                                   for i in range(0, 400, 4)])
    ms = tmp_path / "mwa.ms"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyuvdata notes the data are not in Jy
        uvdata.write_ms(str(ms))
    from_ms = read_visibilities(ms, ignore_flags=True)
    assert len(from_ms) > 0 and from_ms.phase_centre.separation(vis.phase_centre) < 1 * u.arcsec
    shutil.rmtree(ms)


def test_image_noise_matches_the_rms_of_a_noise_image():
    """The noise from integration differences is the RMS of a dirty image of pure noise."""
    rng = np.random.default_rng(3)
    n_baselines, n_times, sigma = 400, 6, 2.0
    uvw = np.repeat(np.column_stack([rng.uniform(-800, 800, (n_baselines, 2)),
                                     np.zeros(n_baselines)]), n_times, axis=0)
    n = len(uvw)
    antennas = np.repeat(np.column_stack([np.arange(n_baselines), np.arange(n_baselines) + 1]),
                         n_times, axis=0)
    times = Time(2460000.5 + np.tile(np.arange(n_times), n_baselines) / 86400, format="jd")
    weights = np.full(n, 1 / sigma ** 2)
    noise = sigma * (rng.normal(size=n) + 1j * rng.normal(size=n)) / np.sqrt(2)
    vis = Visibilities(uvw=uvw, data=noise + 5.0, weights=weights,
                       frequency=np.full(n, 150.0) * u.MHz, time=times, antennas=antennas,
                       phase_centre=CENTRE)
    expected = sigma / np.sqrt(2 * n)
    assert vis.image_noise().to_value(u.Jy / u.beam) == pytest.approx(expected, rel=0.1)
    pure_noise = Visibilities(uvw=uvw, data=noise, weights=weights, frequency=vis.frequency,
                              time=times, antennas=antennas, phase_centre=CENTRE)
    rms = image(pure_noise, method="dirty", shape=48, cell=CELL).data.std()
    assert rms == pytest.approx(vis.image_noise().value, rel=0.15)


def test_niht_too_large_for_memory_is_refused(monkeypatch):
    from galaxyml.exceptions import InsufficientMemoryError
    from galaxyml.utils import _memory

    monkeypatch.setattr(_memory, "_available_memory", lambda: 10_000)
    vis = _synthetic([(CENTRE, 1.0)], n=200)
    with pytest.raises(InsufficientMemoryError, match="NIHT's 400 x 256 matrix"):
        image(vis, method="niht", shape=16, cell=CELL)


def test_niht_carried_residual_is_the_exact_one():
    """NIHT carries A x between iterations: its residual must equal y - A x recomputed."""
    from galaxyml.lowprec import quantize
    from galaxyml.radio import niht, quantized_niht

    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(300, 200)).astype(np.float32)
    truth = np.zeros(200)
    truth[rng.choice(200, 12, replace=False)] = rng.uniform(1, 3, 12)
    y = matrix @ truth + rng.normal(0, 0.05, 300)
    for max_iter in (2, 4, 8, 16, 40):  # while the support still changes
        result = niht(matrix, y, 12, max_iter=max_iter, tol=0)
        exact = np.linalg.norm(y - matrix.astype(float) @ result.x)
        assert result.residual_norms[-1] == pytest.approx(exact, rel=1e-5)
    assert np.linalg.norm(result.x - truth) < 0.05 * np.linalg.norm(truth)
    # Without double sampling the residual uses the one quantized matrix.
    result = quantized_niht(matrix, y, 12, bits=8, y_bits=8, scale="row",
                            double_sampling=False, seed=3, max_iter=7, tol=0)
    matrix_seed, data_seed = np.random.SeedSequence(3).generate_state(2)  # as quantized_niht
    quantized = quantize(matrix, 8, scale="row", seed=matrix_seed).dequantize(np.float64)
    y_quantized = quantize(y, 8, seed=data_seed).dequantize(np.float64)
    exact = np.linalg.norm(y_quantized - quantized @ result.x)
    assert result.residual_norms[-1] == pytest.approx(exact, rel=1e-4)
