# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData
from photutils.aperture import SkyCircularAperture, aperture_photometry
from photutils.centroids import centroid_com

from galaxyml.exceptions import (CutoutOffImageError, CutoutPartiallyOffImageWarning,
                                 InvalidCutoutSizeError, MissingWCSError, MixedFieldsError,
                                 UnknownBandError)
from galaxyml.io import MultiBandCutout, multiband_cutout, read_sdss_frame
from galaxyml.io import cutout as cutout_module


@pytest.fixture(scope="module")
def frames(simulated_field):
    files = simulated_field.files
    return {band: read_sdss_frame(files.frames[band], psfield=files.psfield) for band in "gri"}


@pytest.fixture(scope="module")
def bright_star(simulated_field):
    truth = simulated_field.truth
    stars = truth[(truth["kind"] == "star") & (truth["x"] > 30) & (truth["x"] < 290)
                  & (truth["y"] > 30) & (truth["y"] < 226)]
    stars.sort("flux_r", reverse=True)
    return stars[0]


def sky(row):
    return SkyCoord(row["ra"], row["dec"])


def test_cutout_shape_and_metadata(frames, bright_star):
    cutout = multiband_cutout(frames, sky(bright_star), 32)
    assert cutout.bands == ("g", "r", "i")
    assert cutout.data.shape == cutout.uncertainty.shape == cutout.mask.shape == (3, 32, 32)
    assert cutout.unit == u.nanomaggy
    assert cutout.meta["reference_band"] == "r"
    assert cutout.meta["bands"]["g"]["field"] == 42
    assert cutout.meta["position"].separation(sky(bright_star)) < 0.5 * 0.396 * u.arcsec
    assert not cutout.mask.any()
    assert "MultiBandCutout bands=gri shape=(32, 32)" in repr(cutout)


def test_bands_are_aligned_on_the_reference_grid(frames, bright_star):
    """A star sits at its true sky position in every band, though the frames are offset."""
    cutout = multiband_cutout(frames, sky(bright_star), 33)
    x_true, y_true = cutout.wcs.world_to_pixel(sky(bright_star))
    for index, band in enumerate(cutout.bands):
        x, y = centroid_com(cutout.data[index][8:25, 8:25])
        assert abs(x + 8 - x_true) < 0.05 and abs(y + 8 - y_true) < 0.05, band
    # The frames themselves are not aligned: the star is pixels apart in g and r.
    xg, yg = frames["g"].wcs.world_to_pixel(sky(bright_star))
    assert np.hypot(xg - bright_star["x"], yg - bright_star["y"]) > 0.5


def test_flux_is_preserved(frames, bright_star):
    cutout = multiband_cutout(frames, sky(bright_star), 41)
    aperture = SkyCircularAperture(sky(bright_star), r=6 * u.arcsec)
    for band, image in cutout.to_ccddata().items():
        measured = aperture_photometry(image.data, aperture, wcs=image.wcs)["aperture_sum"][0]
        assert measured == pytest.approx(bright_star[f"flux_{band}"].value, rel=0.02), band


def test_size_as_angle_and_rectangle(frames, bright_star):
    assert multiband_cutout(frames, sky(bright_star), 12.672 * u.arcsec).shape == (32, 32)
    assert multiband_cutout(frames, sky(bright_star), (20, 30)).shape == (20, 30)
    assert multiband_cutout(frames, sky(bright_star), (20, 30) * u.pix).shape == (20, 30)


@pytest.mark.parametrize("size", [0, -5, (10, 0), np.nan, 0.2, 3 * u.kg])
def test_invalid_size(frames, bright_star, size):
    with pytest.raises(InvalidCutoutSizeError):
        multiband_cutout(frames, sky(bright_star), size)


def test_pixel_position_in_reference_band(frames, bright_star):
    by_pixel = multiband_cutout(frames, (100.0, 80.0), 16)
    assert by_pixel.meta["origin"] == (92, 72)
    np.testing.assert_array_equal(by_pixel.data[1], frames["r"].data[72:88, 92:108])


def test_partly_off_image(frames):
    with pytest.warns(CutoutPartiallyOffImageWarning, match="pixels are missing and masked"):
        cutout = multiband_cutout(frames, (2.0, 3.0), 16)
    assert cutout.mask[:, 0, 0].all() and np.isnan(cutout.data[:, 0, 0]).all()
    assert not cutout.mask[1, -1, -1]
    with pytest.raises(CutoutOffImageError, match="extends beyond"):
        multiband_cutout(frames, (2.0, 3.0), 16, mode="strict")


def test_entirely_off_image(frames):
    with pytest.raises(CutoutOffImageError, match="lies entirely off the r image"):
        multiband_cutout(frames, (5000.0, 5000.0), 16)
    far_away = SkyCoord(10, 40, unit="deg")
    with pytest.raises(CutoutOffImageError):
        multiband_cutout(frames, far_away, 16)


def test_unknown_reference_band(frames):
    with pytest.raises(UnknownBandError, match="reference band 'z' is not among"):
        multiband_cutout(frames, (100, 100), 16, reference_band="z")
    cutout = multiband_cutout(frames, (100, 100), 16)
    with pytest.raises(UnknownBandError, match="band 'u' is not in this cutout"):
        cutout["u"]


def test_mixed_fields(frames):
    other = frames["g"].copy()
    other.meta = dict(other.meta, field=43)
    with pytest.raises(MixedFieldsError, match="g: 9999-3-43"):
        multiband_cutout({"g": other, "r": frames["r"]}, (100, 100), 16)


def test_missing_wcs(frames):
    bare = CCDData(frames["g"].data, unit="nmgy")
    with pytest.raises(MissingWCSError, match="band 'g'"):
        multiband_cutout({"g": bare, "r": frames["r"]}, (100, 100), 16)


def test_nan_pixels_are_masked_in_every_band(frames, bright_star):
    g = frames["g"].copy()
    x, y = g.wcs.world_to_pixel(sky(bright_star))
    g.data[int(round(float(y))), int(round(float(x)))] = np.nan
    g.mask[int(round(float(y))), int(round(float(x)))] = True
    cutout = multiband_cutout({"g": g, "r": frames["r"]}, sky(bright_star), 21)
    assert 1 <= cutout.mask[0].sum() <= 4  # the pixels that the bad one contributes to
    assert np.isfinite(cutout.data[0][~cutout.mask[0]]).all()


def test_plain_fits_images(simulated_field, bright_star):
    """Frames read as plain images (no SDSS metadata) cut the same way."""
    from galaxyml.io import read_image

    images = {band: read_image(simulated_field.files.frames[band]) for band in "gr"}
    cutout = multiband_cutout(images, sky(bright_star), 16)
    assert cutout.uncertainty is None
    assert cutout.meta["bands"]["g"]["exptime"].unit == u.s  # EXPTIME is a string in SDSS
    assert cutout.meta["bands"]["g"]["run"] == 9999


def test_frames_are_read_once(frames, simulated_field, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("a frame was read again")

    monkeypatch.setattr(cutout_module, "read_sdss_frame", no_reading)
    monkeypatch.setattr(cutout_module, "read_image", no_reading)
    for x in range(40, 200, 40):
        multiband_cutout(frames, (x, 100.0), 16)


def test_paths_are_read(simulated_field, monkeypatch):
    calls = []
    original = cutout_module.read_sdss_frame
    monkeypatch.setattr(cutout_module, "read_sdss_frame",
                        lambda path: calls.append(path) or original(path))
    with pytest.warns(Warning):  # no psField: default noise model
        cutout = multiband_cutout({b: simulated_field.files.frames[b] for b in "gr"}, (90, 90), 8)
    assert len(calls) == 2 and cutout.shape == (8, 8)


def test_write_and_read_back_losslessly(frames, bright_star, tmp_path):
    with pytest.warns(CutoutPartiallyOffImageWarning):
        cutout = multiband_cutout(frames, (5.0, 100.0), 24)  # with NaNs and a mask
    path = cutout.write(tmp_path / "cutout.fits")
    back = MultiBandCutout.read(path)
    assert back.bands == cutout.bands and back.unit == cutout.unit
    np.testing.assert_array_equal(back.data, cutout.data)
    np.testing.assert_array_equal(back.uncertainty, cutout.uncertainty)
    np.testing.assert_array_equal(back.mask, cutout.mask)
    yy, xx = np.mgrid[:24, :24]
    for before, after in zip(cutout.wcs.pixel_to_world_values(xx, yy),
                             back.wcs.pixel_to_world_values(xx, yy)):
        np.testing.assert_allclose(before, after, rtol=0, atol=1e-12)
    assert back.meta["origin"] == cutout.meta["origin"]
    assert back.meta["reference_band"] == "r"
    assert back.meta["position"].separation(cutout.meta["position"]) < 1e-9 * u.deg
    for band in cutout.bands:
        for key, value in cutout.meta["bands"][band].items():
            assert u.allclose(back.meta["bands"][band][key], value) if key == "exptime" \
                else back.meta["bands"][band][key] == value
    ccd = back.to_ccddata()["i"]
    assert ccd.meta["band"] == "i" and ccd.unit == u.nanomaggy
    from astropy.io import fits
    header = fits.getheader(path)
    assert header["GMLOP"] == "multiband_cutout" and header["GMLNINP"] == 3


def test_write_never_overwrites(frames, tmp_path):
    cutout = multiband_cutout(frames, (100.0, 100.0), 8)
    path = cutout.write(tmp_path / "c.fits")
    from galaxyml.exceptions import OutputExistsError
    with pytest.raises(OutputExistsError, match="file exists"):
        cutout.write(path)
    source = cutout.meta["bands"]["r"]["filename"]
    with pytest.raises(OutputExistsError, match="refusing to overwrite an input"):
        cutout.write(source, overwrite=True)


# --- the real field 2583-2-136 ------------------------------------------------------------

@pytest.fixture(scope="module")
def real_catalog(sdss_frames):
    """Isolated sources of the r frame, away from the edges and the globular cluster M2."""
    from scipy.spatial import cKDTree

    from galaxyml.datasets import source_catalog

    catalog = source_catalog(sdss_frames["r"], deblend=False)
    ny, nx = sdss_frames["r"].shape
    x, y = catalog["x"], catalog["y"]
    cluster = catalog[np.argmax(catalog["area"])]  # M2 is by far the largest segment
    neighbour = cKDTree(np.c_[x, y]).query(np.c_[x, y], k=2)[0][:, 1]
    keep = ((x > 100) & (x < nx - 100) & (y > 100) & (y < ny - 100) & (neighbour > 25)
            & (np.hypot(x - cluster["x"], y - cluster["y"]) > 500))
    return catalog[keep]


def test_real_photometry_agrees_with_frames(sdss_frames, real_catalog):
    """Aperture magnitudes of bright galaxies on cutouts equal those on the frames."""
    galaxies = real_catalog[(real_catalog["fwhm"] > 5 * u.pix)
                            & (real_catalog["area"] < 5000 * u.pix ** 2)][:6]
    assert len(galaxies) == 6
    for row in galaxies:
        cutout = multiband_cutout(sdss_frames, row["sky_centroid"], 128)
        aperture = SkyCircularAperture(row["sky_centroid"], r=6 * u.arcsec)
        for band in "gri":
            frame, stamp = sdss_frames[band], cutout[band]
            on_frame = aperture_photometry(frame.data, aperture, wcs=frame.wcs)["aperture_sum"][0]
            on_cutout = aperture_photometry(stamp.data, aperture, wcs=stamp.wcs)["aperture_sum"][0]
            assert abs(2.5 * np.log10(on_cutout / on_frame)) < 0.01, (row["id"], band)


def test_real_cutout_wcs_places_sources_correctly(sdss_frames, real_catalog):
    """The five brightest isolated stars: same sky position on frames and cutouts."""
    stars = real_catalog[(real_catalog["fwhm"] < 4.5 * u.pix)
                         & (real_catalog["fwhm"] > 2.5 * u.pix)][:5]
    half = 8
    for row in stars:
        cutout = multiband_cutout(sdss_frames, row["sky_centroid"], 41)
        for band in "gri":
            frame, stamp = sdss_frames[band], cutout[band]
            on_frame = _sky_centroid(frame, row["sky_centroid"], half)
            on_cutout = _sky_centroid(stamp, on_frame, half)
            offset = on_frame.separation(on_cutout).arcsec / 0.396
            assert offset < 0.05, (row["id"], band, offset)


def _sky_centroid(image, position, half):
    x, y = image.wcs.world_to_pixel(position)
    ix, iy = int(round(float(x))), int(round(float(y)))
    cx, cy = centroid_com(image.data[iy - half:iy + half + 1, ix - half:ix + half + 1])
    return image.wcs.pixel_to_world(cx + ix - half, cy + iy - half)


def test_real_cutout_uncertainty_matches_empty_sky(sdss_frames):
    """On a patch of empty sky the reference band's uncertainty is its scatter."""
    from astropy.stats import sigma_clipped_stats

    cutout = multiband_cutout(sdss_frames, (1500.0, 300.0), 200)
    data, sigma = cutout.data[1], cutout.uncertainty[1]
    _, _, scatter = sigma_clipped_stats(data[~cutout.mask[1]], sigma=2.5)
    assert np.median(sigma) == pytest.approx(scatter, rel=0.15)
