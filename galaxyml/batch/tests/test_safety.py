# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A batch never deletes what galaxyml did not write, and one galaxy's failure costs one galaxy."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.table import QTable

from galaxyml.batch import (FIELD_MARKER, OUTPUT_MARKER, PRESETS, batch_config, blank_values,
                            output_lock, read_fields, run_batch)
from galaxyml.batch import tasks as batch_tasks
from galaxyml.cli import main
from galaxyml.datasets import SELECTION_FLAGS, simulate_sdss_field
from galaxyml.exceptions import (InvalidParameterError, OutputExistsError, OutputLockedError,
                                 UnknownBandError)

FIELD = (9999, 4, 60)
NAME = "9999-4-60"
CONFIG = {"catalog": {"mag_range": [14.0, 20.0], "max_galaxies": 4}, "chunk_size": 2}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """One small simulated g, r, i field."""
    path = tmp_path_factory.mktemp("mirror")
    simulate_sdss_field(path, bands="gri", shape=(256, 320), n_galaxies=20, n_stars=6,
                        run=FIELD[0], camcol=FIELD[1], field=FIELD[2], seed=FIELD[2])
    return path


def _run(mirror, output, **kwargs):
    options = dict(tasks="catalog,cutouts", config=CONFIG, download=False, quiet=True)
    return run_batch([FIELD], mirror=mirror, output=output, **{**options, **kwargs})


def _tree(path):
    """Every file under ``path`` with its bytes."""
    return {item: item.read_bytes() for item in sorted(path.rglob("*")) if item.is_file()}


def test_frames_in_a_fields_layout_survive_an_output_over_them(mirror, tmp_path):
    # The frames stored as fields/RUN-CAMCOL-FIELD/, a layout galaxyml searches, and the
    # output directory given as their parent: the batch is refused and nothing is touched.
    data = tmp_path / "data"
    shutil.copytree(mirror, data / "fields" / NAME)
    before = _tree(data)
    for fields, output in ((data, data), (data / "fields", data), (data, data / "fields" / NAME)):
        with pytest.raises(OutputExistsError, match="overlaps the input directory"):
            run_batch(fields, output=output, config=CONFIG, download=False, quiet=True)
    with pytest.raises(OutputExistsError, match="overlaps the input directory"):
        _run(data / "fields" / NAME, data)  # as a mirror too
    assert _tree(data) == before


def test_a_directory_of_user_files_is_refused(mirror, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "catalog.ecsv").write_text("my own catalogue\n")
    (output / "manifest.ecsv").write_text("my own manifest\n")
    with pytest.raises(OutputExistsError, match=r"holds files galaxyml did not write "
                                                r"\(catalog.ecsv, manifest.ecsv\)"):
        _run(mirror, output)
    assert (output / "catalog.ecsv").read_text() == "my own catalogue\n"
    assert sorted(path.name for path in output.iterdir()) == ["catalog.ecsv", "manifest.ecsv"]


def test_links_out_of_the_output_are_refused(mirror, tmp_path):
    precious = tmp_path / "precious"
    (precious / NAME).mkdir(parents=True)
    (precious / NAME / "notes.txt").write_text("keep me")
    output = tmp_path / "out"
    output.mkdir()
    (output / OUTPUT_MARKER).touch()
    (output / "fields").symlink_to(precious)
    with pytest.raises(OutputExistsError, match="is a link or a file"):
        _run(mirror, output)
    (output / "fields").unlink()
    # A field's own directory linked elsewhere: the field fails, the link's target stays.
    (output / "fields").mkdir()
    (output / "fields" / NAME).symlink_to(precious / NAME)
    manifest, catalog = _run(mirror, output)
    assert manifest["state"][0] == "failed" and "not written by galaxyml" in manifest["message"][0]
    assert (precious / NAME / "notes.txt").read_text() == "keep me" and len(catalog) == 0


def test_a_field_directory_galaxyml_did_not_write_is_kept(mirror, tmp_path):
    output = tmp_path / "out"
    _run(mirror, output, tasks="catalog")  # claims the directory
    shutil.rmtree(output / "fields" / NAME)
    (output / "fields" / NAME).mkdir()
    (output / "fields" / NAME / "mine.fits").write_text("user data")
    manifest, _ = _run(mirror, output, tasks="catalog")
    assert manifest["state"][0] == "failed"
    assert f"{output / 'fields' / NAME} exists and was not written by galaxyml" in \
        manifest["message"][0]
    assert (output / "fields" / NAME / "mine.fits").read_text() == "user data"
    # Galaxyml's own unfinished directory (its marker, no field.json) is replaced.
    (output / "fields" / NAME / "mine.fits").unlink()
    (output / "fields" / NAME / FIELD_MARKER).touch()
    manifest, catalog = _run(mirror, output, tasks="catalog")
    assert manifest["state"][0] == "done" and len(catalog) > 0


def test_stale_staging_is_removed_only_when_marked(mirror, tmp_path):
    output = tmp_path / "out"
    _run(mirror, output, tasks="catalog")
    ours = output / "fields" / f".{NAME}.partial-0000aaaa"
    theirs = output / "fields" / f".{NAME}.partial-0000bbbb"
    for directory in (ours, theirs):
        directory.mkdir()
    (ours / FIELD_MARKER).touch()
    _run(mirror, output, tasks="catalog")
    assert not ours.exists() and theirs.is_dir()


def test_a_second_run_stops_naming_the_first(mirror, tmp_path):
    output = tmp_path / "out"
    _run(mirror, output, tasks="catalog")
    with output_lock(output):
        with pytest.raises(OutputLockedError, match=f"in use by another galaxyml batch "
                                                    f"\\(process {os.getpid()} on"):
            _run(mirror, output, tasks="catalog")
    _run(mirror, output, tasks="catalog")  # the lock goes with its holder


def test_a_corrupt_run_record_is_one_clear_error(mirror, tmp_path):
    output = tmp_path / "out"
    _run(mirror, output, tasks="catalog")
    (output / "run.json").write_text("{not json")
    with pytest.raises(InvalidParameterError, match="run.json is corrupt"):
        _run(mirror, output, tasks="catalog")


def test_one_galaxy_failing_in_a_task_costs_that_galaxy(mirror, tmp_path, monkeypatch):
    reference_manifest, reference = _run(mirror, tmp_path / "reference",
                                         tasks="catalog,morphology")
    victim = int(reference["galaxy"][1])
    morphology = batch_tasks._TASK_RUNNERS["morphology"]

    def failing(cutouts, rows, settings, writer):
        if victim in list(rows["id"]):
            raise IndexError("arrays used as indices must be of integer (or boolean) type")
        return morphology(cutouts, rows, settings, writer)

    monkeypatch.setitem(batch_tasks._TASK_RUNNERS, "morphology", failing)
    manifest, catalog = _run(mirror, tmp_path / "out", tasks="catalog,morphology")
    assert manifest["state"][0] == "done" and len(catalog) == len(reference)
    hit = catalog["galaxy"] == victim
    assert catalog["errors"][hit][0] == ("morphology: IndexError: arrays used as indices must "
                                         "be of integer (or boolean) type")
    assert np.isnan(catalog["asymmetry"][hit][0]) and catalog["morphology_flags"][hit][0] == -1
    for name in ("asymmetry", "gini", "morphology_flags"):  # the others are measured as before
        assert np.array_equal(catalog[name][~hit], reference[name][~hit], equal_nan=True)
    assert blank_values("morphology")["lotz_merger"] is False


def test_a_fitter_crash_costs_one_size_measurement(monkeypatch):
    from galaxyml.psf import _fwhm

    image = np.zeros((40, 40))
    yy, xx = np.mgrid[:40, :40]
    for x0, y0 in ((10, 10), (30, 30)):
        image += np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.5 ** 2))
    fit = _fwhm.fit_fwhm

    def crashes_at_the_second(data, xypos, **kwargs):
        if any(np.allclose(position, (30, 30)) for position in xypos):
            raise IndexError("a bug in the fitter")
        return fit(data, xypos=xypos, **kwargs)

    monkeypatch.setattr(_fwhm, "fit_fwhm", crashes_at_the_second)
    fwhm = _fwhm.fit_fwhm_pixels(image, np.array([[10.0, 10.0], [30.0, 30.0]]))
    assert fwhm[0] == pytest.approx(2.3548 * 1.5, rel=0.02) and np.isnan(fwhm[1])
    assert _fwhm.fit_fwhm_pixels(image, np.zeros((0, 2))).shape == (0,)  # photutils raises


def test_the_default_keeps_every_galaxy_and_presets_select(tmp_path):
    # Four fields on which the earlier defaults kept 3 galaxies of 48 and the last field
    # failed (photutils' fitter raised on a field with no source in the magnitude range).
    data = tmp_path / "data"
    for k, field in enumerate(range(11, 15)):
        simulate_sdss_field(data, bands="gri", shape=(400, 500), n_galaxies=12, n_stars=6,
                            run=7001, camcol=2, field=field, seed=40 + k)
    options = dict(tasks="catalog", download=False, quiet=True)
    manifest, catalog = run_batch(data, output=tmp_path / "default", **options)
    assert list(manifest["state"]) == ["done"] * 4
    assert len(catalog) >= 36  # of 48 simulated galaxies, with 24 stars to reject
    selection = catalog.meta["selection"]
    assert selection["detected"] >= selection["extended"] >= len(catalog)
    assert {"blended", "masked"} <= set(selection) and "isolated" not in selection
    _, main_sample = run_batch(data, output=tmp_path / "main", preset="main-sample", **options)
    assert len(main_sample) < len(catalog) and np.all(main_sample["mag"].value <= 17.77)
    assert np.all(main_sample["selection_flags"] == 0)
    assert batch_config(preset="training")["catalog"]["drop_flagged"] is True
    with pytest.raises(InvalidParameterError, match="unknown preset 'galaxygan'"):
        batch_config(preset="galaxygan")
    assert set(PRESETS) == {"training", "main-sample"}


def test_flagged_galaxies_are_kept_with_their_flags(mirror, tmp_path):
    # A limit no galaxy meets: every galaxy with a neighbour is flagged, none dropped.
    config = {"catalog": {"mag_range": [12.0, 21.0], "max_neighbour_flux_ratio": 0.0}}
    _, flagged = _run(mirror, tmp_path / "flagged", tasks="catalog", config=config)
    _, dropped = _run(mirror, tmp_path / "dropped", tasks="catalog",
                      config={"catalog": {**config["catalog"], "drop_flagged": True}})
    blended = (flagged["selection_flags"] & SELECTION_FLAGS["blended"]) > 0
    assert blended.sum() > 0 and np.all(flagged["neighbour_flux_ratio"][blended] > 0)
    assert set(dropped["galaxy"]) == set(flagged["galaxy"][~blended])


def test_field_tables_as_users_write_them(tmp_path):
    table = tmp_path / "fields.csv"
    table.write_text("run,camcol,field,rerun\n2583,2,136,\n2583,2,137,40\n")
    fields = read_fields(table)
    assert list(fields["rerun"]) == [301, 40]
    table.write_text("run,camcol,field\n99999999999999999999999,2,136\n")
    with pytest.raises(InvalidParameterError, match="column 'run' must hold integers"):
        read_fields(table)
    png = tmp_path / "fields.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(InvalidParameterError) as error:
        read_fields(png)
    assert "cannot read the field table" in str(error.value) and len(str(error.value)) < 500


def test_configurations_are_checked_in_bounded_time(tmp_path):
    pytest.importorskip("yaml")
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f'{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},'
              f'*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)},*{chr(97 + k)}]'
              for k in range(9)]
    bomb.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(InvalidParameterError, match="YAML aliases"):
        batch_config(bomb)
    assert time.perf_counter() - start < 5
    broken = tmp_path / "broken.yaml"
    broken.write_text("size: [1, 2\n")
    with pytest.raises(InvalidParameterError, match="not a valid configuration file"):
        batch_config(broken)
    with pytest.raises(InvalidParameterError) as error:
        batch_config({"size": "x" * 10000})
    assert len(str(error.value)) < 300
    with pytest.raises(UnknownBandError, match=r"unknown: \['y'\]"):
        batch_config(bands="gry")


@pytest.mark.parametrize("arguments, message", [
    (["--bands", "gry"], "bands must be distinct letters"),
    (["--executor", "processes", "--workers", "0"], "workers must be at least 1"),
])
def test_arguments_are_checked_before_anything_is_written(mirror, tmp_path, capsys, arguments,
                                                          message):
    output = tmp_path / "out"
    assert main(["batch", str(mirror), "--output", str(output), "--no-download",
                 *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
    assert not output.exists()


def test_system_errors_are_one_line(mirror, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["batch", str(mirror), "--output", str(blocker / "out"), "--no-download"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("galaxyml: error: ") and len(error.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("size: [\n")
    pytest.importorskip("yaml")
    assert main(["batch", str(mirror), "--output", str(tmp_path / "o"), "--config",
                 str(bad)]) == 2
    assert "not a valid configuration file" in capsys.readouterr().err


def _interruptible():
    """In the child: Ctrl-C's default action, which a shell's background job has ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_interrupted_runs_say_how_to_resume_and_leave_no_worker(mirror, tmp_path, executor):
    psutil = pytest.importorskip("psutil")
    config = tmp_path / "batch.toml"
    config.write_text("[catalog]\nmag_range = [14.0, 21.0]\n")
    results = {}
    for name, signum in (("term", signal.SIGTERM), ("int", signal.SIGINT)):
        output = tmp_path / name
        process = subprocess.Popen(
            [sys.executable, "-m", "galaxyml.cli", "batch", str(mirror), "--output", str(output),
             "--tasks", "catalog,morphology", "--no-download", "--config", str(config),
             "--executor", executor, "--workers", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_interruptible)
        start = time.monotonic()
        while not (output / "run.json").exists() and time.monotonic() - start < 120:
            time.sleep(0.05)
        time.sleep(2 if executor == "serial" else 8)  # inside the field (the worker's start)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        results[name] = process.returncode, err
        psutil.wait_procs(children, timeout=10)
        assert not [child for child in children if child.is_running()
                    and child.status() != psutil.STATUS_ZOMBIE]
    for name, code in (("term", 143), ("int", 130)):
        returncode, err = results[name]
        assert returncode == code, err
        assert err.strip().splitlines() == ["galaxyml: interrupted: rerun the same command to "
                                            "resume"], err


def test_workers_end_with_their_client(mirror, tmp_path):
    psutil = pytest.importorskip("psutil")
    output = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "galaxyml.cli", "batch", str(mirror), "--output", str(output),
         "--tasks", "catalog,morphology", "--no-download", "--executor", "processes",
         "--workers", "1", "--quiet"])
    start = time.monotonic()
    workers = []
    while not workers and time.monotonic() - start < 120:
        workers = [child for child in psutil.Process(process.pid).children(recursive=True)
                   if "resource_tracker" not in " ".join(child.cmdline())]
        time.sleep(0.1)
    assert workers, "no worker started"
    time.sleep(3)
    process.kill()
    process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert json.loads((output / "run.json").read_text())["tasks"] == ["catalog", "morphology"]


def test_the_dask_dashboard_listens_on_localhost_only(mirror, tmp_path):
    pytest.importorskip("distributed")
    lines = []
    from galaxyml.batch.executors import run_fields
    from galaxyml.batch.tasks import BatchSettings

    settings = BatchSettings(output=tmp_path, tasks=("catalog",), config=batch_config(CONFIG),
                             mirror=(mirror,))
    job = {"run": FIELD[0], "camcol": FIELD[1], "field": FIELD[2], "rerun": 301, "name": NAME}
    results = list(run_fields([job], settings, "dask", workers=1, log=lines.append))
    assert results[0][1]["state"] == "done"
    assert any(line.startswith("Dask dashboard: http://127.0.0.1:") for line in lines), lines
    assert QTable.read(tmp_path / "fields" / NAME / "galaxies.ecsv", format="ascii.ecsv")


def test_a_field_past_its_limits_fails_with_the_reason(mirror, tmp_path):
    config = {**CONFIG, "limits": {"field_memory_mib": 1.0}}  # any process exceeds it
    manifest, catalog = _run(mirror, tmp_path / "memory", config=config, tasks="catalog")
    assert manifest["state"][0] == "failed" and len(catalog) == 0
    assert f"field {NAME} used" in manifest["message"][0]
    assert "past its memory limit of 1 MiB" in manifest["message"][0]
    config = {**CONFIG, "limits": {"field_seconds": 0.01}}
    manifest, _ = _run(mirror, tmp_path / "time", config=config, tasks="catalog,morphology")
    assert manifest["state"][0] == "failed"
    assert "ran past its time limit of 0.01 s" in manifest["message"][0]
    with pytest.raises(InvalidParameterError, match="restore.samples must be from 0 to 64"):
        batch_config({"restore": {"samples": 10 ** 6}})


def test_a_field_stopped_midway_resumes_from_its_last_chunk(mirror, tmp_path, monkeypatch):
    config = {**CONFIG, "catalog": {"mag_range": [14.0, 21.0], "max_galaxies": 6}}
    tasks = "catalog,cutouts,morphology"
    _, reference = _run(mirror, tmp_path / "reference", config=config, tasks=tasks)
    assert len(reference) == 6  # three chunks of two
    computed = []
    chunk_columns = batch_tasks._chunk_columns

    def stops_at_the_third(cutouts, rows, settings, writer):
        if len(computed) == 2:
            raise RuntimeError("the worker was stopped")
        computed.append(list(rows["id"]))
        return chunk_columns(cutouts, rows, settings, writer)

    monkeypatch.setattr(batch_tasks, "_chunk_columns", stops_at_the_third)
    output = tmp_path / "out"
    manifest, _ = _run(mirror, output, config=config, tasks=tasks)
    assert manifest["state"][0] == "failed"
    staging = output / "fields" / f".{NAME}.partial"
    assert len(list((staging / "chunks").glob("chunk-*.npz"))) == 2
    assert json.loads((staging / "progress.json").read_text())["done"] == 4
    computed.clear()
    monkeypatch.setattr(batch_tasks, "_chunk_columns",
                        lambda *args: computed.append(1) or chunk_columns(*args))
    manifest, catalog = _run(mirror, output, config=config, tasks=tasks)
    assert manifest["state"][0] == "done" and computed == [1]  # only the third chunk again
    for name in reference.colnames:
        a, b = catalog[name], reference[name]
        assert np.array_equal(np.asarray(getattr(a, "value", a)),
                              np.asarray(getattr(b, "value", b)),
                              equal_nan=np.asarray(getattr(b, "value", b)).dtype.kind == "f"), name
    done = output / "fields" / NAME
    assert not staging.exists() and not (done / "chunks").exists()
    assert sorted(path.name for path in done.iterdir()) == [FIELD_MARKER, "field.json",
                                                            "galaxies.ecsv", "stamps"]
    # Other parameters: the saved chunks are not theirs, and are not used.
    monkeypatch.setattr(batch_tasks, "_chunk_columns", stops_at_the_third)
    computed.clear()
    _run(mirror, tmp_path / "other", config=config, tasks=tasks)
    other = tmp_path / "other" / "fields" / f".{NAME}.partial"
    record = json.loads((other / "staging.json").read_text())
    record["galaxies"] = record["galaxies"][::-1]
    (other / "staging.json").write_text(json.dumps(record))
    computed.clear()
    monkeypatch.setattr(batch_tasks, "_chunk_columns",
                        lambda *args: computed.append(1) or chunk_columns(*args))
    _run(mirror, tmp_path / "other", config=config, tasks=tasks)
    assert computed == [1, 1, 1]


def test_progress_within_fields(tmp_path):
    from galaxyml.batch import BatchProgress

    assert BatchProgress.field_status({"done": 120, "total": 300, "resumed": 20,
                                       "seconds": 50.0}) == \
        "120/300 galaxies, 2.0 galaxies/s, 20 from an earlier run"
    fields = tmp_path / "fields"
    (fields / f".{NAME}.partial").mkdir(parents=True)
    stream = io.StringIO()
    progress = BatchProgress(1, stream=stream)
    progress.WATCH_INTERVAL, progress.LINE_INTERVAL = 0.05, 0.0
    progress.watch_fields(fields)
    (fields / f".{NAME}.partial" / "progress.json").write_text(
        json.dumps({"done": 2, "total": 8, "resumed": 0, "seconds": 1.0}))
    start = time.monotonic()
    while NAME not in progress.running and time.monotonic() - start < 10:
        time.sleep(0.05)
    progress.close()
    assert progress.running[NAME]["total"] == 8
    assert f"  {NAME}: 2/8 galaxies, 2.0 galaxies/s" in stream.getvalue().splitlines()
    assert "| 9999-4-60: 2/8 galaxies" in progress.status()


def test_a_truncated_download_is_set_aside_and_fetched_again(mirror, tmp_path):
    from galaxyml.datasets import conf as sdss_conf
    from galaxyml.datasets import sdss_file_urls

    archive, downloads = tmp_path / "archive", tmp_path / "downloads"
    base = archive.as_uri()
    frame = None
    for band in "gri":
        urls = sdss_file_urls(*FIELD, band, base_url=base)
        for kind, pattern in (("frame", f"frame-{band}-*.fits"), ("psField", "psField-*.fits"),
                              ("fpM", f"fpM-*-{band}*.fits")):
            source = next(mirror.glob(pattern))
            for root in (archive, downloads):  # the archive, and an earlier download of it
                destination = root / urls[kind][len(base) + 1:]
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, destination)
        frame = downloads / urls["frame"][len(base) + 1:]
    frame.write_bytes(frame.read_bytes()[:20000])  # an earlier, truncated download
    with sdss_conf.set_temp("sdss_base_url", base):
        manifest, catalog = run_batch([FIELD], mirror=downloads, output=tmp_path / "out",
                                      tasks="catalog", config=CONFIG, download=True, quiet=True)
    assert manifest["state"][0] == "done" and len(catalog) > 0
    assert frame.stat().st_size > 20000
    assert len(list(frame.parent.glob(f"{frame.name}.corrupt-*"))) == 1
