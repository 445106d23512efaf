# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy.io import fits

from galaxyml import __version__
from galaxyml.exceptions import OutputExistsError
from galaxyml.io import atomic_output, provenance_header, write_fits


def test_provenance_header():
    header = provenance_header("testing", inputs=["/data/a.fits", "/data/b.fits"])
    assert header["GMLVERS"] == __version__
    assert header["GMLOP"] == "testing"
    assert header["GMLNINP"] == 2
    assert header["GMLIN2"] == "b.fits"
    assert "galaxyml input 1: /data/a.fits" in str(header["HISTORY"])


def test_development_versions_fit_in_the_header(tmp_path, monkeypatch):
    """A setuptools_scm version of a dirty checkout is long; its card must stay valid."""
    monkeypatch.setattr("galaxyml.__version__", "0.1.dev18+g687d57cd1.d20261121")
    header = provenance_header("testing")
    write_fits(fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2)), header=header)]),
               tmp_path / "out.fits")    # warnings are errors in the test suite
    assert fits.getheader(tmp_path / "out.fits")["GMLVERS"].endswith(".d20261121")


def test_write_fits_refuses_existing_and_inputs(tmp_path):
    hdul = fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2)))])
    path = write_fits(hdul, tmp_path / "out.fits")
    assert path.exists()
    with pytest.raises(OutputExistsError, match="out.fits: file exists"):
        write_fits(hdul, path)
    write_fits(hdul, path, overwrite=True)
    with pytest.raises(OutputExistsError, match="refusing to overwrite an input"):
        write_fits(hdul, path, inputs=[path], overwrite=True)


def test_write_fits_compresses_by_suffix(tmp_path):
    path = write_fits(fits.HDUList([fits.PrimaryHDU(np.ones((3, 3)))]), tmp_path / "c.fits.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(fits.getdata(path), np.ones((3, 3)))


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "result.fits"
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_output(target, overwrite=True) as temporary:
            temporary.write_bytes(b"half a fi")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"previous result"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["result.fits"]  # no partial file left
