# Licensed under a 3-clause BSD style license - see LICENSE.rst
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from scipy.ndimage import binary_dilation

from galaxyml.exceptions import (DefaultNoiseModelWarning, FITSReadError, MixedFieldsError,
                                 UnknownBandError)
from galaxyml.datasets.simulate import fpm_hdulist
from galaxyml.io import read_fpm_mask, read_sdss_frame, sdss_noise_parameters
from galaxyml.io.writing import write_fits


def write_fpm(path, spans_per_plane, shape=(30, 40), ids=(9999, 3, 42)):
    return write_fits(fpm_hdulist(spans_per_plane, shape, ids), path)


def test_read_fpm_mask_decodes_spans(tmp_path):
    path = write_fpm(tmp_path / "fpM.fits", {"INTERP": [(2, 5, 7), (3, 5, 5)],
                                             "CR": [(10, 0, 1)], "OBJECT": [(20, 0, 39)]})
    mask = read_fpm_mask(path)
    assert mask.shape == (30, 40)
    expected = np.zeros((30, 40), bool)
    expected[2, 5:8] = expected[3, 5] = expected[10, 0:2] = True
    np.testing.assert_array_equal(mask, expected)  # OBJECT is not a default plane
    assert read_fpm_mask(path, planes=["OBJECT"])[20].all()
    with pytest.raises(ValueError, match="unknown fpM mask planes"):
        read_fpm_mask(path, planes=["NOPE"])


def test_read_simulated_frame(simulated_field):
    files = simulated_field.files
    frame = read_sdss_frame(files.frames["r"], psfield=files.psfield)
    assert frame.data.dtype == np.float32 and frame.unit == u.nanomaggy
    assert frame.shape == (256, 320)
    assert (frame.meta["run"], frame.meta["camcol"], frame.meta["field"]) == (9999, 3, 42)
    assert frame.meta["band"] == "r" and frame.meta["noise_model"] == "psField"
    assert frame.meta["exptime"].unit == u.s
    assert frame.wcs.has_celestial
    # The simulation draws noise from the SDSS model: the reconstructed
    # uncertainty must match the scatter of the empty sky.
    truth = simulated_field.truth
    empty = np.ones(frame.shape, bool)
    yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]]
    for x, y in zip(truth["x"], truth["y"]):
        empty &= np.hypot(xx - x, yy - y) > 25
    scatter = np.std(frame.data[empty])
    assert np.median(frame.uncertainty.array[empty]) == pytest.approx(scatter, rel=0.05)


def test_simulated_fpm_flags_the_interpolated_column(simulated_field):
    files = simulated_field.files
    frame = read_sdss_frame(files.frames["r"], psfield=files.psfield, fpm=files.fpm["r"])
    columns = np.flatnonzero(frame.mask.all(axis=0))
    assert len(columns) == 1
    column = columns[0]
    np.testing.assert_allclose(frame.data[:, column],
                               0.5 * (frame.data[:, column - 1] + frame.data[:, column + 1]),
                               rtol=1e-5, atol=1e-6)


def test_default_noise_model_warns(simulated_field):
    with pytest.warns(DefaultNoiseModelWarning, match="no psField given"):
        frame = read_sdss_frame(simulated_field.files.frames["g"])
    assert frame.meta["noise_model"] == "default"
    gain, dark, source = sdss_noise_parameters("g", 3, psfield=simulated_field.files.psfield)
    assert (frame.meta["gain"], frame.meta["dark_variance"]) == pytest.approx((gain, dark))


def test_psfield_of_another_field(simulated_field, tmp_path):
    other = tmp_path / "psField-other.fits"
    with fits.open(simulated_field.files.psfield) as hdul:
        hdul[0].header["FIELD"] = 43
        hdul.writeto(other)
    with pytest.raises(MixedFieldsError, match="belongs to run-camcol-field 9999-3-43"):
        read_sdss_frame(simulated_field.files.frames["r"], psfield=other)


def test_unknown_band(simulated_field, tmp_path):
    bad = tmp_path / "frame-y.fits"
    with fits.open(simulated_field.files.frames["r"]) as hdul:
        hdul[0].header["FILTER"] = "y"
        hdul.writeto(bad)
    with pytest.raises(UnknownBandError, match="unknown SDSS band 'y'"):
        read_sdss_frame(bad, psfield=simulated_field.files.psfield)
    with pytest.raises(UnknownBandError):
        sdss_noise_parameters("Q", 2)


def test_truncated_frame(simulated_field, tmp_path):
    truncated = tmp_path / "frame-r-truncated.fits"
    truncated.write_bytes(simulated_field.files.frames["r"].read_bytes()[:100_000])
    with pytest.raises(FITSReadError, match="frame-r-truncated.fits"):
        read_sdss_frame(truncated)


def test_header_values_that_are_not_numbers(simulated_field, tmp_path):
    bad = tmp_path / "frame-r-exptime.fits"
    with fits.open(simulated_field.files.frames["r"]) as hdul:
        hdul[0].header["EXPTIME"] = "53.9  ?"
        hdul.writeto(bad)
    with pytest.raises(FITSReadError, match="frame-r-exptime.fits: EXPTIME = .* is not a "
                                            "number"):
        read_sdss_frame(bad, psfield=simulated_field.files.psfield)


@pytest.mark.parametrize("rows, message", [("many", "must be integers"),
                                           (10 ** 6, "out of bounds"), (0, "out of bounds")])
def test_absurd_fpm_shape(tmp_path, rows, message):
    path = write_fpm(tmp_path / "fpM.fits", {"INTERP": [(2, 5, 7)]})
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["MASKROWS"] = rows
        hdul[0].header["MASKCOLS"] = 10 ** 6 if rows == 10 ** 6 else 40
    with pytest.raises(FITSReadError, match=f"fpM.fits: .*{message}"):
        read_fpm_mask(path)


def test_input_is_never_modified(simulated_field, tmp_path):
    copy = Path(shutil.copy(simulated_field.files.frames["i"], tmp_path / "frame-i.fits"))
    before = copy.read_bytes()
    read_sdss_frame(copy, psfield=simulated_field.files.psfield)
    assert copy.read_bytes() == before


# --- the real field 2583-2-136 ------------------------------------------------------------

def empty_sky(frame):
    """Pixels far from every detected source, the fpM mask and the frame edges."""
    from photutils.segmentation import detect_sources

    _, median, std = sigma_clipped_stats(frame.data, sigma=3)
    segments = detect_sources(frame.data - median, 2 * std, n_pixels=5)
    occupied = binary_dilation(segments.data > 0, iterations=5) | frame.mask
    occupied[:, :10] = occupied[:, -10:] = occupied[:10] = occupied[-10:] = True
    return ~occupied


@pytest.mark.parametrize("band", "gri")
def test_real_frame_uncertainty_matches_empty_sky(sdss_frames, band):
    frame = sdss_frames[band]
    empty = empty_sky(frame)
    _, _, scatter = sigma_clipped_stats(frame.data[empty], sigma=3)
    predicted = np.median(frame.uncertainty.array[empty])
    assert predicted == pytest.approx(scatter, rel=0.15)


def test_real_frame_metadata(sdss_frames, sdss_field_dir):
    for band, frame in sdss_frames.items():
        # FRAME differs per band (the filter rows are two frames apart): all are field 136.
        assert (frame.meta["run"], frame.meta["camcol"], frame.meta["field"]) == (2583, 2, 136)
        assert frame.meta["rerun"] == "301" and frame.meta["band"] == band
        assert frame.meta["exptime"].to_value(u.s) == pytest.approx(53.907456)
        assert frame.meta["noise_model"] == "psField"
        assert frame.shape == (1489, 2048)
    assert sdss_frames["r"].meta["gain"] == pytest.approx(4.6)
    assert sdss_frames["r"].meta["nmgy_per_count"] == pytest.approx(0.00546689)
    # The default table agrees with this field's psField.
    for band in "ugriz":
        with pytest.warns(DefaultNoiseModelWarning):
            default = sdss_noise_parameters(band, 2)[:2]
        psfield = sdss_field_dir / "psField-002583-2-0136.fits"
        exact = sdss_noise_parameters(band, 2, psfield=psfield)
        assert default == pytest.approx(exact[:2], rel=1e-6)


def test_real_fpm_mask_covers_saturated_stars(sdss_frames, sdss_field_dir):
    frame = sdss_frames["r"]
    saturated = read_fpm_mask(sdss_field_dir / "fpM-002583-r2-0136.fits", planes=["SATUR"])
    assert 0 < saturated.sum() < 0.01 * saturated.size
    # Saturated pixels (cores of bright stars and their bleed trails) are
    # hundreds of times brighter than the sky noise.
    assert np.median(frame.data[saturated]) > 300 * np.median(frame.uncertainty.array)
    assert frame.mask.sum() >= saturated.sum()
