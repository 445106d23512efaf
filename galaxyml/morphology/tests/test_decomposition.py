# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from galaxyml.degrade import add_point_source, host_galaxy, sky_noise
from galaxyml.degrade.tests.test_degrade import sky_wcs
from galaxyml.exceptions import (BandMismatchError, InvalidPSFError, PositionOffImageError,
                                 PSFError, UnknownBandError)
from galaxyml.io import MultiBandCutout
from galaxyml.morphology import (DECOMPOSITION_FLAGS, SourceBox, decode_decomposition_flags,
                                 decomposition_table, host_photometry, point_source_photometry,
                                 prepare_agn_images)
from galaxyml.psf import GaussianPSF, SDSSPSFBasis

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
    rows = [{"ps_flux": 10.0, "ps_flux_err": 1.0, "host_flux": -2.0, "host_flux_err": 0.5,
             "x": 31.0, "y": 30.0, "flags": 16, "extra": 3.0}]
    table = decomposition_table(rows, [item], "test")
    assert table["ps_mag"][0].value == pytest.approx(22.5 - 2.5)
    assert table["ps_mag_err"][0].value == pytest.approx(2.5 / np.log(10) * 0.1)
    assert np.isnan(table["host_mag"][0].value)
    assert table["flags"][0] == 16 | 64
    assert "sky_centroid" in table.colnames and table["extra"][0] == 3.0
    assert decode_decomposition_flags(table["flags"][0]) == [DECOMPOSITION_FLAGS[16],
                                                             DECOMPOSITION_FLAGS[64]]
