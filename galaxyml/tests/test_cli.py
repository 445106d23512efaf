# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
from astropy.table import QTable

from galaxyml.cli import main
from galaxyml.io import MultiBandCutout


def test_demo(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "--output", str(output), "--n-cutouts", "3", "--size", "48"]) == 0
    printed = capsys.readouterr().out
    assert "preview of the detected galaxies" in printed
    cutouts = sorted((output / "cutouts").glob("galaxy-*.fits"))
    assert len(cutouts) == 3
    cutout = MultiBandCutout.read(cutouts[0])
    assert cutout.bands == ("g", "r", "i") and cutout.shape == (48, 48)
    assert np.isfinite(cutout.data).all()
    assert (output / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(QTable.read(output / "catalog.ecsv")) > 10
    # The galaxies degraded and recovered by the shipped GalaxyGAN and Richardson-Lucy.
    metrics = QTable.read(output / "restoration.ecsv")
    assert set(metrics["method"]) == {"degraded", "GalaxyGAN", "Richardson-Lucy"}
    assert np.all(np.isfinite(metrics["psnr"]))
    assert (output / "restoration.png").exists()
    assert "recovered them with the shipped GalaxyGAN" in printed
    # A second run refuses to overwrite, with a clear message, unless asked.
    assert main(["demo", "--output", str(output)]) == 1
    assert "file exists" in capsys.readouterr().err
    assert main(["demo", "--output", str(output), "--n-cutouts", "3", "--overwrite"]) == 0
