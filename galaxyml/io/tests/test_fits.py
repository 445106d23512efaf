# Licensed under a 3-clause BSD style license - see LICENSE.rst
import bz2
import gzip

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from galaxyml.exceptions import (FITSReadError, MissingWCSError, NoImageHDUError,
                                 NonFinitePixelsWarning)
from galaxyml.io import read_image, wcs_pixel_scale


def make_wcs(shape=(40, 50)):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    return wcs


def image_hdu(data=None, bunit="nanomaggy", wcs=True):
    data = np.arange(40 * 50, dtype=np.float32).reshape(40, 50) if data is None else data
    header = make_wcs(data.shape).to_header() if wcs else fits.Header()
    if bunit:
        header["BUNIT"] = bunit
    return fits.PrimaryHDU(data, header=header)


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "tile"])
def test_read_image_compressions(tmp_path, compression):
    hdu = image_hdu()
    path = tmp_path / "image.fits"
    if compression == "tile":
        fits.HDUList([fits.PrimaryHDU(),
                      fits.CompImageHDU(hdu.data, header=hdu.header,
                                        compression_type="GZIP_1")]).writeto(path)
    else:
        hdu.writeto(path)
        raw = path.read_bytes()
        if compression == "gzip":
            path = tmp_path / "image.fits.gz"
            path.write_bytes(gzip.compress(raw))
        elif compression == "bzip2":
            path = tmp_path / "image.fits.bz2"
            path.write_bytes(bz2.compress(raw))
    image = read_image(path)
    np.testing.assert_array_equal(image.data, hdu.data)
    assert image.unit == u.nanomaggy
    assert image.wcs.has_celestial
    assert not image.mask.any()
    assert image.meta["FILENAME"] == str(path)


def test_read_image_unit_and_planes(tmp_path):
    data = np.ones((40, 50), dtype=np.int16)
    sigma = np.full((40, 50), 0.5, dtype=np.float32)
    mask = np.zeros((40, 50), dtype=np.uint8)
    mask[3, 4] = 1
    path = tmp_path / "planes.fits"
    fits.HDUList([image_hdu(data, bunit=None), fits.ImageHDU(sigma, name="ERR"),
                  fits.ImageHDU(mask, name="MASK")]).writeto(path)
    image = read_image(path, unit="adu", uncertainty_hdu="ERR", mask_hdu="MASK")
    assert image.data.dtype == np.float32  # integers become float
    assert image.unit == u.adu
    np.testing.assert_array_equal(image.uncertainty.array, sigma)
    assert image.mask[3, 4] and image.mask.sum() == 1
    assert read_image(path).unit == u.dimensionless_unscaled


def test_read_image_selects_hdu_by_name(tmp_path):
    path = tmp_path / "ext.fits"
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1])])
    science = fits.ImageHDU(image_hdu().data, header=image_hdu().header, name="SCI")
    fits.HDUList([fits.PrimaryHDU(), table, science]).writeto(path)
    assert read_image(path).shape == (40, 50)  # first 2-D image found
    assert read_image(path, hdu="SCI").shape == (40, 50)
    with pytest.raises(NoImageHDUError, match="HDU 1 is not a two-dimensional image"):
        read_image(path, hdu=1)
    with pytest.raises(NoImageHDUError, match="there is no HDU 'NOPE'"):
        read_image(path, hdu="NOPE")


def test_truncated_file(tmp_path):
    path = tmp_path / "good.fits"
    image_hdu().writeto(path)
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(FITSReadError, match="truncated.fits: cannot be read as FITS"):
        read_image(truncated)


def test_truncated_bz2_file(tmp_path):
    path = tmp_path / "good.fits"
    image_hdu().writeto(path)
    truncated = tmp_path / "truncated.fits.bz2"
    truncated.write_bytes(bz2.compress(path.read_bytes())[:500])
    with pytest.raises(FITSReadError, match="truncated.fits.bz2"):
        read_image(truncated)


def test_corrupt_file(tmp_path):
    path = tmp_path / "noise.fits"
    path.write_bytes(np.random.default_rng(0).bytes(5760))
    with pytest.raises(FITSReadError, match="noise.fits"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.fits"):
        read_image(tmp_path / "nothere.fits")


def test_no_image_hdu(tmp_path):
    path = tmp_path / "table.fits"
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with pytest.raises(NoImageHDUError, match="table.fits: no HDU holds a two-dimensional image"):
        read_image(path)


def test_no_celestial_wcs(tmp_path):
    path = tmp_path / "nowcs.fits"
    image_hdu(wcs=False).writeto(path)
    with pytest.raises(MissingWCSError, match="nowcs.fits: the image has no celestial WCS"):
        read_image(path)


def test_non_finite_pixels_are_masked(tmp_path):
    data = np.ones((40, 50), dtype=np.float32)
    data[1, 2] = np.nan
    data[5, 6] = np.inf
    path = tmp_path / "nan.fits"
    image_hdu(data).writeto(path)
    with pytest.warns(NonFinitePixelsWarning, match="2 NaN or infinite pixels are masked"):
        image = read_image(path)
    assert image.mask[1, 2] and image.mask[5, 6] and image.mask.sum() == 2
    assert np.isnan(image.data[1, 2])  # the value is kept, the mask says it is bad


def test_wcs_pixel_scale():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    assert wcs_pixel_scale(wcs).to_value(u.arcsec / u.pix) == pytest.approx(0.396)
    assert wcs_pixel_scale(None, default=1 * u.arcsec / u.pix) == 1 * u.arcsec / u.pix
    with pytest.raises(MissingWCSError):
        wcs_pixel_scale(WCS(naxis=2))
