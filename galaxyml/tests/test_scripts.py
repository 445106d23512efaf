# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The scripts in scripts/ run on the embedded simulated field."""

import json
import runpy
import shutil

import numpy as np
import pytest
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
                          "--size", "64", "--mag-limit", "21", "--draws", "2", "--steps", "2",
                          "--batch-size", "2", "--checkpoint-every", "1",
                          "--checkpoint-dir", str(tmp_path / "checkpoints"),
                          "--output", str(model), "--quiet"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["model_type"] == "GalaxyGAN" and "--steps 2" in card["training"]["command"]
    assert card["mode"] == "refine" and card["stretch"]["clip_max"] > 4  # no 4-nmgy ceiling
    assert card["training"]["wall_time_minutes"] >= 0 and card["training"]["max_shift"] == 4
    # The refine mode's defaults: GAN texture down a hundredfold, flux a tenth of L1.
    assert card["training"]["l1_weight"] == 10000 and card["training"]["flux_weight"] == 1000
    # Fine-tuning starts from the model's network and stretch, with the options' weights.
    tuned = tmp_path / "tuned.keras"
    assert train["main"](["--field-dir", str(files.psfield.parent), "--field", field,
                          "--size", "64", "--mag-limit", "21", "--draws", "2", "--steps", "1",
                          "--batch-size", "2", "--checkpoint-every", "1",
                          "--initial-model", str(model), "--l2-weight", "50000",
                          "--lr-decay",
                          "--checkpoint-dir", str(tmp_path / "tuning"),
                          "--output", str(tuned), "--quiet"]) == 0
    tuned_card = json.loads(tuned.with_suffix(".json").read_text())
    assert tuned_card["l2_weight"] == 50000 and tuned_card["l1_weight"] == 10000
    assert tuned_card["training"]["initial_model"] == str(model)
    assert tuned_card["stretch"] == card["stretch"] and tuned_card["mode"] == "refine"
    assert tuned_card["training"]["steps"] == 1
    # --lr-decay: a linear fall to zero at --steps, recorded as the schedule.
    schedule = tuned_card["training"]["learning_rate"]["config"]
    assert schedule["decay_steps"] == 1 and schedule["end_learning_rate"] == 0
    assert schedule["initial_learning_rate"] == card["training"]["learning_rate"] == 2e-4
    output = tmp_path / "evaluation"
    twin = tmp_path / "twin.keras"  # the same network under another name
    shutil.copy(model, twin)
    shutil.copy(model.with_suffix(".json"), twin.with_suffix(".json"))
    assert evaluate["main"](["--model", str(model), "--name", "mine",
                             "--model", str(twin), "--name", "twin",
                             "--field-dir", str(files.psfield.parent), "--field", field,
                             "--size", "64", "--mag-limit", "21",
                             "--max-galaxies", "1", "--tune-galaxies", "1", "--samples", "2",
                             "--coverage-galaxies", "1", "--output", str(output),
                             "--update-card", "--quiet"]) == 0
    summary = QTable.read(output / "galaxygan_summary.ecsv")
    assert len(summary) == 20
    assert {"wins_mine", "flux_ok_mine", "flux_error_Richardson-Lucy",
            "psnr_RL-discrepancy"} <= set(summary.colnames)
    assert (output / "galaxygan_grid.png").exists() and (output / "galaxygan_gallery.png").exists()
    # Inference is deterministic, so the twin ties with the model in every cell.
    twins = summary.meta["head_to_head"]["twin"]
    assert twins["cells"] == 20 and twins["mean_psnr_difference"] == 0
    assert twins["psnr_higher"] == twins["ssim_higher"] == twins["flux_error_lower"] == 0
    card = json.loads(model.with_suffix(".json").read_text())
    assert len(card["metrics"]["cells"]) == 20
    assert card["uncertainty"]["scale"] > 0 and card["uncertainty"]["exponent"] >= 0
    assert card["metrics"]["name"] == "mine"
    # The flux measures' own bias and the data's own flux noise travel with the metrics.
    bias = card["metrics"]["segment_bias"]
    assert bias["galaxies"] == 1 and np.isfinite(bias["segment_mean"])
    assert all(cell["flux_noise"] > 0 for cell in card["metrics"]["cells"])
    assert 0 <= card["metrics"]["cells_flux_within_noise"] <= 20
    assert all("flux_grown_excess_se_mine" in cell for cell in card["metrics"]["cells"])
    held_out = card["uncertainty"]["held_out"]
    assert 0 <= held_out["within_1sigma"] <= held_out["within_2sigma"] <= 1


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
    assert card["mode"] == "refine" and card["error_model"]["meta"]["n_pairs"] > 0
    output = tmp_path / "evaluation"
    assert evaluate["main"](["--model", str(model), "--field-dir", str(files.psfield.parent),
                             "--fit-galaxies", "1", "--simulated", "2", "--contrasts", "0,3",
                             "--mismatch-scales", "1.5", "--mismatch-contrasts", "3",
                             "--output", str(output), "--update-card", "--quiet"]) == 0
    summary = QTable.read(output / "psfgan_summary.ecsv")
    assert len(summary) == 4 and set(summary["contrast"]) == {0.0, 3.0}
    assert {"ps_bias", "ps_scatter", "host_bias", "host_scatter", "failed_fraction",
            "detected_fraction", "ps_pull_width", "host_pull_width",
            "seconds_per_galaxy"} <= set(summary.colnames)
    mismatch = QTable.read(output / "psfgan_mismatch_summary.ecsv")
    assert sorted(set(mismatch["psf_scale"])) == [1.0, 1.5]
    for name in ("psfgan_magnitude_errors.png", "psfgan_gallery.png", "psfgan_psf_mismatch.png",
                 "psfgan_completeness.png", "psfgan_pulls.png", "psfgan_runs.ecsv",
                 "psfgan_simulated.ecsv", "psfgan_results.json"):
        assert (output / name).exists()
    card = json.loads(model.with_suffix(".json").read_text())
    results = card["metrics"]["summary"]["PSFGAN (refine generator)"]
    assert results["speedup_over_fit"] > 0
    assert 0 <= results["false_positive_rate_simulated"] <= 1
    assert results["largest_change_outside_window_nmgy"] == 0.0


def test_evaluate_mergers(training_field, tmp_path):
    from galaxyml.datasets.tests.test_galaxyzoo import galaxyzoo_directory

    pytest.importorskip("statmorph")
    evaluate = runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate_mergers.py"))
    galaxyzoo = galaxyzoo_directory(tmp_path / "gz", n=30, mergers=10)
    files = training_field[0].files
    output, model = tmp_path / "evaluation", tmp_path / "merger.keras"
    arguments = ["--galaxyzoo", str(galaxyzoo), "--field-dir", str(files.psfield.parent),
                 "--field", f"{files.run}-{files.camcol}-{files.field}", "--input-size", "32",
                 "--steps", "2", "--frozen-steps", "1", "--batch-size", "4",
                 "--galaxyzoo-sizes", "6,all", "--simulated-sizes", "6,all",
                 "--simulated-per-class", "8", "--mag-range", "12,22", "--seeds", "0,1",
                 "--output", str(output), "--quiet"]
    assert evaluate["main"](arguments + ["--save-model", str(model)]) == 0
    scores = QTable.read(output / "merger_scores.ecsv")
    assert set(scores["data"]) == {"Galaxy Zoo 1", "simulated (real field)"}
    assert {"CNN scratch", "CNN transfer", "CAS (asymmetry)", "Gini-M20 (merger statistic)",
            "logistic regression (CAS + Gini-M20)"} <= set(scores["method"])
    curves = QTable.read(output / "merger_learning_curves.ecsv")
    # 2 data sets x 2 sizes x 2 seeds x 2 methods; the smallest set is half mergers.
    assert len(curves) == 16
    assert set(curves["n_train"][curves["data"] == "Galaxy Zoo 1"]) == {6, 18}
    assert set(curves["n_train_mergers"][curves["n_train"] == 6]) == {3}
    targets = json.loads((output / "merger_targets.json").read_text())["targets"]
    assert set(targets) == {"Galaxy Zoo 1", "simulated (real field)"}
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["model_type"] == "MergerClassifier" and "--steps 2" in card["training"]["command"]
    assert 0 <= card["metrics"]["auc"] <= 1 and "balanced" in card["decision_threshold_rule"]
    card["decision_threshold"] = -1.0
    model.with_suffix(".json").write_text(json.dumps(card))
    assert evaluate["main"](arguments + ["--recard-model", str(model)]) == 0
    assert json.loads(model.with_suffix(".json").read_text())["decision_threshold"] >= 0
    for name in ("roc_galaxy_zoo_1.png", "gallery_simulated__real_field.png",
                 "merger_learning_curves.png"):
        assert (output / name).exists()
    # A rerun finds every training in the cache and gives the same curves.
    assert evaluate["main"](arguments) == 0
    again = QTable.read(output / "merger_learning_curves.ecsv")
    assert np.array_equal(again["auc"], curves["auc"])


def test_simulate_fields_then_batch(tmp_path, capsys):
    from galaxyml.cli import main as galaxyml_main

    script = runpy.run_path(str(REPO_ROOT / "scripts" / "simulate_fields.py"))
    fields = tmp_path / "fields"
    assert script["main"](["--n-fields", "2", "--shape", "128", "160", "--n-galaxies", "8",
                           "--output", str(fields)]) == 0
    table = QTable.read(fields / "fields.ecsv")
    assert list(table["field"]) == [1, 2]
    assert galaxyml_main(["batch", str(fields / "fields.ecsv"), "--mirror", str(fields),
                          "--output", str(tmp_path / "run"), "--no-download"]) == 0
    assert "2 fields: 2 done, 0 failed, 0 missing" in capsys.readouterr().out


def test_batch_on_slurm_with_a_local_cluster(simulated_field, tmp_path, monkeypatch):
    """The script's cluster is faked by a LocalCluster: what it hands to run_batch works."""
    jobqueue = pytest.importorskip("dask_jobqueue")
    distributed = pytest.importorskip("distributed")
    started = {}

    class FakeSLURMCluster(distributed.LocalCluster):
        def __init__(self, **kwargs):
            started.update(kwargs)
            super().__init__(n_workers=0, threads_per_worker=1, processes=True,
                             dashboard_address=":0")

        def scale(self, jobs=0, **kwargs):
            started.setdefault("scaled", []).append(jobs)
            return super().scale(jobs, **kwargs)

    monkeypatch.setattr(jobqueue, "SLURMCluster", FakeSLURMCluster)
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "batch_on_slurm.py"))
    files = simulated_field.files
    assert script["main"]([str(files.psfield.parent), "--jobs", "1", "--memory", "2GB",
                           "--output", str(tmp_path / "run"), "--tasks", "catalog"]) == 0
    assert 1 in started.pop("scaled")
    assert started == {"cores": 1, "processes": 1, "memory": "2GB", "walltime": "02:00:00",
                       "queue": None}
    manifest = QTable.read(tmp_path / "run" / "manifest.ecsv")
    assert list(manifest["state"]) == ["done"]
