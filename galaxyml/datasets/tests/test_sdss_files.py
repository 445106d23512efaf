# Licensed under a 3-clause BSD style license - see LICENSE.rst
import shutil

import pytest

from galaxyml.datasets import conf, local_field_files, sdss_field_files, sdss_file_urls
from galaxyml.datasets.sdss import DATA_DIR_VARIABLE
from galaxyml.exceptions import InvalidParameterError, SDSSDataNotFoundError, UnknownBandError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def local_field(tmp_path):
    """Empty files named as in ../shared: per-field directory, '.fits' names."""
    root = tmp_path / "sdss"
    field = root / "2583-2-136"
    for band in "gri":
        touch(field / f"frame-{band}-002583-2-0136.fits.bz2")
        touch(field / f"fpM-002583-{band}2-0136.fits")
    touch(field / "psField-002583-2-0136.fits")
    return root


def test_found_in_data_dirs(local_field):
    files = sdss_field_files(2583, 2, 136, bands="rig", data_dirs=[local_field], download=False)
    assert list(files.frames) == ["g", "r", "i"]  # SDSS order
    assert files.frames["r"].name == "frame-r-002583-2-0136.fits.bz2"
    assert files.psfield.name == "psField-002583-2-0136.fits"
    assert files.fpm["g"].name == "fpM-002583-g2-0136.fits"
    assert (files.run, files.camcol, files.field, files.rerun) == (2583, 2, 136, 301)


def test_local_field_files_by_name(local_field):
    """A field named as scripts and model cards name it, from its own directory."""
    files = local_field_files("2583-2-136", "r", local_field / "2583-2-136")
    assert files.frames["r"].name == "frame-r-002583-2-0136.fits.bz2"
    with pytest.raises(InvalidParameterError, match="RUN-CAMCOL-FIELD"):
        local_field_files("2583/2/136", "r", local_field)


def test_found_through_environment_and_config(local_field, monkeypatch):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(local_field))
    assert sdss_field_files(2583, 2, 136, bands="r", download=False).psfield.exists()
    monkeypatch.delenv(DATA_DIR_VARIABLE)
    with conf.set_temp("sdss_data_dirs", [str(local_field)]):
        assert sdss_field_files(2583, 2, 136, bands="r", download=False).psfield.exists()


def test_archive_layout_and_names(tmp_path):
    """The archive's own tree and names (.fit, .fit.gz) are found too."""
    objcs = tmp_path / "photo" / "redux" / "301" / "2583" / "objcs" / "2"
    frames = tmp_path / "photoObj" / "frames" / "301" / "2583" / "2"
    touch(frames / "frame-r-002583-2-0136.fits.bz2")
    touch(objcs / "psField-002583-2-0136.fit")
    touch(objcs / "fpM-002583-r2-0136.fit.gz")
    files = sdss_field_files(2583, 2, 136, bands="r", data_dirs=[tmp_path], download=False)
    assert files.fpm["r"].name.endswith(".fit.gz")


def test_not_found_without_download(tmp_path):
    with pytest.raises(SDSSDataNotFoundError, match="frame-u-002583-2-0136.fits.bz2 is not in"):
        sdss_field_files(2583, 2, 136, bands="u", data_dirs=[tmp_path], download=False)


def test_unknown_band(tmp_path):
    with pytest.raises(UnknownBandError, match="unknown SDSS band 'y'"):
        sdss_field_files(2583, 2, 136, bands="gy", data_dirs=[tmp_path], download=False)


def test_urls():
    urls = sdss_file_urls(2583, 2, 136, "r")
    assert urls["frame"].endswith("/photoObj/frames/301/2583/2/frame-r-002583-2-0136.fits.bz2")
    assert urls["psField"].endswith("/photo/redux/301/2583/objcs/2/psField-002583-2-0136.fit")
    assert urls["fpM"].endswith("/photo/redux/301/2583/objcs/2/fpM-002583-r2-0136.fit.gz")


def test_read_the_real_field(sdss_field_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(sdss_field_dir, root / "2583-2-136",
                    ignore=shutil.ignore_patterns("frame-[ugz]*", "fpM-*-[ugz]2-*"))
    frames = sdss_field_files(2583, 2, 136, bands="ri", data_dirs=[root], download=False).read()
    assert frames["r"].meta["noise_model"] == "psField"
    assert frames["i"].mask.any()  # the fpM mask was applied


@pytest.mark.remote_data
def test_download_from_the_archive(tmp_path):
    files = sdss_field_files(2583, 2, 136, bands="r", data_dirs=[tmp_path], download=True,
                             show_progress=False)
    frame = files.read()["r"]
    assert frame.meta["field"] == 136 and frame.shape == (1489, 2048)
