# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The scripts in scripts/ run on the embedded simulated field."""

import json
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


def test_evaluate_iht(tmp_path):
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate_iht.py"))
    output = tmp_path / "iht"
    assert script["main"](["--n-antennas", "24", "--radius", "20", "--frequency", "60",
                           "--grid", "16", "--pixel-scale", "3", "--n-skies", "1",
                           "--n-point", "4", "--n-gaussian", "1", "--bits", "32,4",
                           "--output", str(output)]) == 0
    summary = QTable.read(output / "iht_summary.ecsv")
    assert list(summary["method"]) == ["NIHT float32", "NIHT 4-bit", "CLEAN"]
    assert (output / "iht_runs.ecsv").exists() and (output / "iht_comparison.png").exists()


def test_train_and_evaluate_galaxygan(simulated_field, tmp_path):
    train = runpy.run_path(str(REPO_ROOT / "scripts" / "train_galaxygan.py"))
    evaluate = runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate_galaxygan.py"))
    files = simulated_field.files
    field = f"{files.run}-{files.camcol}-{files.field}"
    model = tmp_path / "gan.keras"
    assert train["main"](["--field-dir", str(files.psfield.parent), "--field", field,
                          "--size", "64", "--mag-limit", "21", "--steps", "2",
                          "--batch-size", "2", "--checkpoint-every", "1",
                          "--checkpoint-dir", str(tmp_path / "checkpoints"),
                          "--output", str(model), "--quiet"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["model_type"] == "GalaxyGAN" and "--steps 2" in card["training"]["command"]
    output = tmp_path / "evaluation"
    assert evaluate["main"](["--model", str(model), "--field-dir", str(files.psfield.parent),
                             "--max-galaxies", "1", "--tune-galaxies", "1", "--output",
                             str(output), "--quiet"]) == 0
    summary = QTable.read(output / "galaxygan_summary.ecsv")
    assert len(summary) == 20 and "gan_wins" in summary.colnames
    assert (output / "galaxygan_grid.png").exists() and (output / "galaxygan_gallery.png").exists()


def test_train_and_evaluate_psfgan(simulated_field, tmp_path):
    train = runpy.run_path(str(REPO_ROOT / "scripts" / "train_psfgan.py"))
    evaluate = runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate_psfgan.py"))
    files = simulated_field.files
    field = f"{files.run}-{files.camcol}-{files.field}"
    model = tmp_path / "psfgan.keras"
    assert train["main"](["--field-dir", str(files.psfield.parent), "--field", field,
                          "--pairs-per-galaxy", "2", "--psf-scale", "0.8,1.2", "--steps", "2",
                          "--batch-size", "2", "--checkpoint-every", "1",
                          "--checkpoint-dir", str(tmp_path / "checkpoints"),
                          "--output", str(model), "--quiet"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["model_type"] == "PSFGAN" and "--steps 2" in card["training"]["command"]
    assert card["training"]["psf_scale"] == [0.8, 1.2] and card["stretch"]["clip_max"] > 0
    output = tmp_path / "evaluation"
    assert evaluate["main"](["--model", str(model), "--field-dir", str(files.psfield.parent),
                             "--max-galaxies", "1", "--realisations", "1", "--contrasts",
                             "1,3", "--mismatch-scales", "1.5", "--mismatch-contrasts", "3",
                             "--output", str(output), "--update-card", "--quiet"]) == 0
    summary = QTable.read(output / "psfgan_summary.ecsv")
    assert len(summary) == 4 and set(summary["contrast"]) == {1.0, 3.0}
    assert {"ps_bias", "ps_scatter", "host_bias", "host_scatter", "failed_fraction",
            "seconds_per_galaxy"} <= set(summary.colnames)
    mismatch = QTable.read(output / "psfgan_mismatch_summary.ecsv")
    assert sorted(set(mismatch["psf_scale"])) == [1.0, 1.5]
    for name in ("psfgan_magnitude_errors.png", "psfgan_gallery.png", "psfgan_psf_mismatch.png",
                 "psfgan_runs.ecsv", "psfgan_targets.json"):
        assert (output / name).exists()
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["metrics"]["targets"]["speedup_end_to_end"] > 0
