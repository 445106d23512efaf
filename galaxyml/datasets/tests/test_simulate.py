# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable
from photutils.aperture import CircularAperture, aperture_photometry

from galaxyml.datasets import simulate_sdss_field, source_catalog
from galaxyml.exceptions import OutputExistsError, UnknownBandError
from galaxyml.io import read_sdss_frame


def test_frame_format(simulated_field):
    files = simulated_field.files
    with fits.open(files.frames["g"]) as hdul:
        assert len(hdul) == 4
        header = hdul[0].header
        assert header["BUNIT"] == "nanomaggy" and header["FILTER"] == "g"
        assert header["FRAME"] == 42 + 8  # the g row runs 8 frames ahead, as in SDSS
        assert header["GMLOP"] == "simulate_sdss_field"
        assert hdul[1].data.shape == (320,)
        assert hdul[2].data["ALLSKY"][0].ndim == 2
    with fits.open(files.psfield) as hdul:
        assert hdul[6].data["gain"][0].shape == (5,)
        psf = np.asarray(hdul[3].data["RROWS"][0]).reshape(51, 51)  # r band
        assert psf.sum() == pytest.approx(1, rel=1e-5)


def test_seed_reproduces_the_field(tmp_path):
    kwargs = dict(bands="r", shape=(64, 64), n_galaxies=3, n_stars=2, seed=7)
    a = simulate_sdss_field(tmp_path / "a", **kwargs)
    b = simulate_sdss_field(tmp_path / "b", **kwargs)
    c = simulate_sdss_field(tmp_path / "c", **dict(kwargs, seed=8))
    np.testing.assert_array_equal(fits.getdata(a.files.frames["r"]),
                                  fits.getdata(b.files.frames["r"]))
    assert not np.array_equal(fits.getdata(a.files.frames["r"]), fits.getdata(c.files.frames["r"]))
    assert np.array_equal(a.truth["flux_r"], b.truth["flux_r"])


def test_truth_table(simulated_field):
    truth = simulated_field.truth
    assert isinstance(truth, QTable)
    assert (truth["kind"] == "galaxy").sum() == 12 and (truth["kind"] == "star").sum() == 8
    assert truth["flux_r"].unit == u.nanomaggy and truth["r_eff_disk"].unit == u.arcsec
    assert np.allclose(truth["mag_r"].value, 22.5 - 2.5 * np.log10(truth["flux_r"].value))
    back = QTable.read(simulated_field.truth_path)
    assert np.array_equal(back["flux_g"], truth["flux_g"])


def test_truth_fluxes_are_in_the_image(tmp_path):
    """Aperture photometry of isolated bright stars recovers the true fluxes."""
    field = simulate_sdss_field(tmp_path, bands="r", shape=(200, 200), n_galaxies=0, n_stars=12,
                                seed=3)
    frame = read_sdss_frame(field.files.frames["r"], psfield=field.files.psfield)
    truth = field.truth
    xy = np.c_[truth["x"], truth["y"]]
    distance = np.hypot(*(xy[:, None] - xy[None]).T)
    np.fill_diagonal(distance, np.inf)
    isolated = (distance.min(axis=0) > 25) & (truth["mag_r"].value < 19)
    assert isolated.sum() >= 3
    for row in truth[isolated]:
        aperture = CircularAperture((row["x"], row["y"]), r=10)
        measured = aperture_photometry(frame.data, aperture)["aperture_sum"][0]
        assert measured == pytest.approx(row["flux_r"].value, rel=0.02)


def test_sources_are_detected(simulated_field):
    files = simulated_field.files
    frame = read_sdss_frame(files.frames["r"], psfield=files.psfield)
    catalog = source_catalog(frame)
    assert isinstance(catalog, QTable) and catalog["flux"].unit == u.nanomaggy
    truth = simulated_field.truth
    bright = truth[truth["mag_r"].value < 19.5]
    for row in bright:
        nearest = np.min(np.hypot(catalog["x"] - row["x"], catalog["y"] - row["y"]))
        assert nearest < 2.0, row["id"]


def test_bad_arguments(tmp_path):
    with pytest.raises(UnknownBandError):
        simulate_sdss_field(tmp_path, bands="gq")
    with pytest.raises(ValueError, match="shape must be"):
        simulate_sdss_field(tmp_path, shape=(10, 10))
    simulate_sdss_field(tmp_path, bands="r", shape=(40, 40), n_galaxies=1, n_stars=1, seed=1)
    with pytest.raises(OutputExistsError):
        simulate_sdss_field(tmp_path, bands="r", shape=(40, 40), n_galaxies=1, n_stars=1, seed=1)


def test_sources_inside():
    from galaxyml.datasets import sources_inside

    catalog = QTable({"x": [5.0, 50.0, 95.0], "y": [50.0, 50.0, 50.0]})
    assert list(sources_inside(catalog, (100, 100), 20)["x"]) == [50.0]


def test_galaxy_stamps_with_compact_bulges():
    from galaxyml.datasets import simulate_galaxy_stamps
    from galaxyml.psf import GaussianPSF

    stamps, truth = simulate_galaxy_stamps(6, GaussianPSF(1.2), size=48, seed=3)
    assert len(stamps) == len(truth) == 6 and stamps[0].shape == (48, 48)
    assert np.all(truth["r_eff_bulge"] < 1.2 * u.arcsec)  # under the PSF's FWHM
    assert np.any(truth["bar_fraction"] > 0) and np.all(truth["bulge_fraction"] >= 0.2)
    flux = np.array([stamp.data.sum() for stamp in stamps])
    assert np.allclose(flux, truth["flux"].value, atol=5 * 0.031 * 48)  # 5 sigma of the sky
    again, _ = simulate_galaxy_stamps(6, GaussianPSF(1.2), size=48, seed=3)
    assert np.array_equal(again[2].data, stamps[2].data)
