# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from galaxyml.degrade import add_point_source, host_galaxy, sky_noise
from galaxyml.degrade.tests.test_degrade import sky_wcs
from galaxyml.exceptions import (BandMismatchError, InvalidParameterError, InvalidPSFError,
                                 PositionOffImageError, PSFError, UnknownBandError)
from galaxyml.io import MultiBandCutout
from galaxyml.morphology import (DECOMPOSITION_FLAGS, DecompositionErrors, SourceBox,
                                 decode_decomposition_flags, decomposition_table,
                                 host_photometry, place_psf, point_source_photometry,
                                 prepare_agn_images, psf_photometry, pull_width, render_psf)
from galaxyml.psf import GaussianPSF, SDSSPSFBasis
from galaxyml.sources import source_catalog, source_nearest

NOISE = 0.02
META = {"gain": 4.7, "nmgy_per_count": 0.005, "band": "r"}


def galaxy(shape=(64, 64), seed=0, meta=META):
    """An exponential disk of about 60 nmgy at (31.6, 31.2), with noise and its uncertainty."""
    yy, xx = np.indices(shape)
    disk = 2.5 * np.exp(-np.hypot((xx - 31.6) / 1.0, (yy - 31.2) / 0.8) / 3.0)
    data = disk + np.random.default_rng(seed).normal(0, NOISE, shape)
    return CCDData(data, unit="nmgy", wcs=sky_wcs(shape), meta=dict(meta),
                   uncertainty=StdDevUncertainty(np.full(shape, NOISE)))


def test_point_source_photometry_recovers_the_flux():
    psf = GaussianPSF(2.7)
    image = CCDData(np.zeros((41, 41)), unit="nmgy", meta=dict(META))
    fluxes = []
    for seed in range(20):
        with_ps, _ = add_point_source(image, psf, flux=20.0, position=(20.3, 19.6),
                                      photon_noise=False)
        noisy = with_ps.data + np.random.default_rng(seed).normal(0, NOISE, image.shape)
        result = point_source_photometry(noisy, psf, (20.0, 20.0), np.full(image.shape, NOISE))
        fluxes.append(result["flux"])
        assert result["flags"] == 0
        assert (result["x"], result["y"]) == (pytest.approx(20.3, abs=0.05),
                                              pytest.approx(19.6, abs=0.05))
    # The errors from the fit's covariance describe the scatter of the fluxes.
    assert np.mean(fluxes) == pytest.approx(20.0, abs=3 * result["flux_err"])
    assert np.std(fluxes) == pytest.approx(result["flux_err"], rel=0.5)


def test_host_photometry_is_the_truth_definition():
    image = galaxy()
    _, _, truth = host_galaxy(image)
    measured = host_photometry(image.data, image.uncertainty.array, (31.6, 31.2),
                               noise=sky_noise(image.data))
    assert measured["flux"] == pytest.approx(truth.to_value(u.nmgy))
    assert 0 < measured["flux_err"] < 0.1 * measured["flux"]
    empty = host_photometry(np.random.default_rng(1).normal(0, NOISE, (64, 64)),
                            np.full((64, 64), NOISE), (32, 32))
    assert np.isnan(empty["flux"]) and empty["flags"] == 32


def test_inputs_of_every_kind():
    image = galaxy()
    psf = GaussianPSF(2.7)
    cutout = MultiBandCutout(np.stack([image.data, image.data]), ("g", "r"), image.wcs, "nmgy",
                             uncertainty=np.full((2, 64, 64), NOISE))
    with pytest.raises(BandMismatchError, match="choose one with band="):
        prepare_agn_images(cutout, psf)
    with pytest.raises(UnknownBandError):
        prepare_agn_images(cutout, psf, band="z")
    with pytest.raises(BandMismatchError, match="trained on"):
        prepare_agn_images(cutout, psf, band="g", bands=("r",))
    (item,), single = prepare_agn_images(cutout, psf, band="r", bands=("r",))
    assert single and item.band == "r"
    assert (item.x, item.y) == (pytest.approx(31.6, abs=0.2), pytest.approx(31.2, abs=0.2))
    assert np.allclose(item.error, NOISE)
    # A batch: a 3-D array of 2-D images, errors from their scatter.
    items, single = prepare_agn_images(np.stack([image.data, image.data]), psf)
    assert not single and len(items) == 2
    assert items[0].error[0, 0] == pytest.approx(NOISE, rel=0.2)
    # The position as a sky coordinate.
    sky = image.wcs.pixel_to_world(40.0, 20.0)
    (item,), _ = prepare_agn_images(image, psf, position=sky)
    assert (item.x, item.y) == (pytest.approx(40.0), pytest.approx(20.0))


def test_bad_inputs_raise_clear_errors():
    image = galaxy()
    with pytest.raises(PositionOffImageError, match="outside the image"):
        prepare_agn_images(image, GaussianPSF(2.7), position=(70.0, 10.0))
    with pytest.raises(InvalidPSFError, match="sums to"):
        prepare_agn_images(image, -np.ones((5, 5)))
    with pytest.raises(InvalidPSFError, match="NaN"):
        prepare_agn_images(image, np.full((5, 5), np.nan))
    with pytest.raises(PSFError, match="no PSF was given"):
        prepare_agn_images(image)


def test_nan_pixels_are_inpainted_masked_and_flagged():
    image = galaxy()
    image.data[30:33, 30:33] = np.nan
    (item,), _ = prepare_agn_images(image, GaussianPSF(2.7), position=(31.6, 31.2))
    assert np.all(np.isfinite(item.data)) and item.mask[31, 31]
    assert item.data[31, 31] > 0.5  # filled from the bright neighbours, never zero
    assert item.flags & 4
    host = item.wrap(item.data)
    assert host.mask[31, 31] and not host.mask[0, 0]


def test_psf_from_the_psfield_at_the_frame_position(simulated_field):
    files = simulated_field.files
    frame = files.read("r")["r"]
    assert frame.meta["psfield"] == str(files.psfield)
    box = (slice(100, 164), slice(150, 214))
    cutout = MultiBandCutout(frame.data[box][None], ("r",), frame.wcs[box], "nmgy",
                             meta={"origin": (150, 100), "bands": {"r": frame.meta}})
    (item,), _ = prepare_agn_images(cutout, position=(30.0, 20.0))
    expected = SDSSPSFBasis(files.psfield, "r").at(120.0, 180.0)
    assert np.allclose(item.psf.array, expected.array)
    assert item.psf.meta["row"] == 120.0 and item.psf.meta["col"] == 180.0


def test_source_box_shifts_and_pads():
    box = SourceBox((100, 100), 50.2, 49.8, 64)
    assert box.slices == (slice(18, 82), slice(19, 83)) and box.flags == 0
    edge = SourceBox((100, 100), 5.0, 50.0, 64)
    assert edge.slices[1] == slice(0, 64) and edge.flags == 2
    small = SourceBox((40, 48), 20.0, 24.0, 64)
    assert small.padding is not None and small.flags == 2
    image = np.arange(40 * 48, dtype=float).reshape(40, 48)
    cut = small.cut(image)
    assert cut.shape == (64, 64) and np.array_equal(small.crop(cut), image)


def test_table_columns_units_and_flags():
    image = galaxy()
    (item,), _ = prepare_agn_images(image, GaussianPSF(2.7))
    rows = [{"ps_flux": 10.0, "ps_flux_err": 1.0, "ps_snr": 10.0, "ps_detected": True,
             "ps_flux_upper": np.nan, "host_flux": -2.0, "host_flux_err": 0.5,
             "host_core_flux": 1.0, "x": 31.0, "y": 30.0, "flags": 16, "extra": 3.0}]
    table = decomposition_table(rows, [item], "test")
    assert table["ps_mag"][0].value == pytest.approx(22.5 - 2.5)
    assert table["ps_mag_err"][0].value == pytest.approx(2.5 / np.log(10) * 0.1)
    assert np.isnan(table["host_mag"][0].value)
    assert table["flags"][0] == 16 | 64
    assert "sky_centroid" in table.colnames and table["extra"][0] == 3.0
    assert decode_decomposition_flags(table["flags"][0]) == [DECOMPOSITION_FLAGS[16],
                                                             DECOMPOSITION_FLAGS[64]]


def test_an_undetected_point_source_gets_an_upper_limit_not_a_magnitude():
    rows = [{"ps_flux": 1.0, "ps_flux_err": 1.0, "ps_snr": 1.0, "ps_detected": False,
             "ps_flux_upper": 6.0, "host_flux": 20.0, "host_flux_err": 0.5,
             "host_core_flux": 1.0, "x": 31.0, "y": 30.0, "flags": 0}]
    (item,), _ = prepare_agn_images(galaxy(), GaussianPSF(2.7))
    table = decomposition_table(rows, [item], "test")
    assert np.isnan(table["ps_mag"][0].value) and np.isnan(table["ps_mag_err"][0].value)
    assert table["ps_flux_upper"][0].value == 6.0 and table["flags"][0] == 0
    assert table["host_mag"][0].value == pytest.approx(22.5 - 2.5 * np.log10(20.0))


def test_errors_are_calibrated_on_known_truth():
    """Residuals drawn with known extra terms: calibrate finds them, and the pulls come out
    of unit width where the photometric errors alone are far too small."""
    rng = np.random.default_rng(0)
    n = 4000
    core, ps_true = rng.uniform(1, 10, n), rng.uniform(0, 100, n)
    host_true = rng.uniform(10, 50, n)
    sigma_ps = np.sqrt(0.1 ** 2 + (0.3 * core) ** 2 + (0.02 * ps_true) ** 2)
    sigma_host = np.sqrt(0.2 ** 2 + (0.1 * core) ** 2 + (0.05 * host_true) ** 2)
    table = QTable({"ps_flux": (ps_true + rng.normal(size=n) * sigma_ps) * u.nmgy,
                    "ps_flux_err": np.full(n, 0.1) * u.nmgy,
                    "host_flux": (host_true + rng.normal(size=n) * sigma_host) * u.nmgy,
                    "host_flux_err": np.full(n, 0.2) * u.nmgy,
                    "host_core_flux": core * u.nmgy})
    table["ps_flux"][:20] = 1e4 * u.nmgy  # failures do not set the width
    errors = DecompositionErrors.calibrate(table, ps_true, host_true)
    assert errors.ps_core == pytest.approx(0.3, rel=0.1)
    assert errors.ps_relative == pytest.approx(0.02, rel=0.2)
    assert errors.host_relative == pytest.approx(0.05, rel=0.1)
    pulls = (table["ps_flux"].value - ps_true) / errors.ps_error(0.1, core, table["ps_flux"].value)
    assert pull_width(pulls) == pytest.approx(1.0, abs=0.05)
    assert DecompositionErrors.from_dict(errors.to_dict()).ps_core == errors.ps_core
    with pytest.raises(InvalidParameterError):
        DecompositionErrors(ps_core=-1)


def test_batch_psf_photometry_has_unit_pulls_and_finds_the_position():
    psf = GaussianPSF(1.4)
    kernel = render_psf(psf)
    rng = np.random.default_rng(2)
    n = 200
    positions = np.c_[rng.uniform(30, 33, n), rng.uniform(30, 33, n)]
    fluxes = rng.uniform(5, 50, n)
    clean = place_psf((64, 64), [kernel] * n, positions, fluxes)
    fit = psf_photometry(clean + rng.normal(0, NOISE, clean.shape), np.full(clean.shape, NOISE),
                         [kernel] * n, np.round(positions) + 0.4)
    assert fit.ok.all() and np.abs(fit.x - positions[:, 0]).max() < 0.05
    assert np.std((fit.flux - fluxes) / fit.flux_err) == pytest.approx(1.0, abs=0.12)
    # An image without usable pixels is not ok, and raises nothing.
    empty = psf_photometry(np.zeros((1, 64, 64)), np.full((1, 64, 64), np.inf), [kernel],
                           [(32.0, 32.0)])
    assert not empty.ok[0]


def test_nearest_source_is_that_of_the_full_catalogue():
    """source_nearest deblends only near the position, and finds what the whole
    catalogue's nearest source is."""
    image = galaxy()
    image.data[10:14, 50:54] += 1.0  # a second source
    full = source_catalog(image)
    expected = full[np.argmin(np.hypot(full["x"] - 31.5, full["y"] - 31.5))]
    found = source_nearest(image)
    assert found["x"] == pytest.approx(expected["x"])
    assert found["kron_flux"].value == pytest.approx(expected["kron_flux"].value)
    assert source_nearest(image, (52.0, 12.0))["x"] == pytest.approx(51.5, abs=0.3)


def test_a_psf_on_other_pixels_is_refused():
    image = galaxy()
    with pytest.raises(PSFError, match="arcsec per pixel"):
        prepare_agn_images(image, GaussianPSF(2.7, pixel_scale=0.168 * u.arcsec))
