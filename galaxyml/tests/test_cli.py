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
    assert main(["demo", "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert "file exists" in error and error.count("\n") == 1 and "Traceback" not in error
    assert main(["demo", "--output", str(output), "--n-cutouts", "3", "--overwrite"]) == 0


def test_every_galaxyml_error_is_one_line_and_status_2(tmp_path):
    """A bad argument deep inside the library: one line on stderr, exit status 2."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "galaxyml.cli", "demo", "--output",
                           str(tmp_path / "demo"), "--size", "0"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("galaxyml: error:") and "Traceback" not in done.stderr
