# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The scripts in scripts/ run on the embedded simulated field."""

import runpy

from astropy.table import QTable

from galaxyml.conftest import REPO_ROOT
from galaxyml.io import MultiBandCutout


def test_cut_sdss_stamps(simulated_field, tmp_path):
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "cut_sdss_stamps.py"))
    files = simulated_field.files
    output = tmp_path / "stamps"
    assert script["main"]([str(files.run), str(files.camcol), str(files.field),
                           "--data-dir", str(files.psfield.parent), "--no-download",
                           "--size", "32", "--n-stamps", "2", "--min-fwhm", "4",
                           "--output", str(output)]) == 0
    table = QTable.read(output / "stamps.ecsv")
    assert len(table) == 2
    stamp = MultiBandCutout.read(output / table["file"][0])
    assert stamp.shape == (32, 32) and stamp.bands == ("g", "r", "i")
    assert (output / "preview.png").exists()
