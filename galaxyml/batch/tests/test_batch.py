# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Batches over simulated fields and the real one: executors, bad fields, kills and resumes."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from galaxyml.batch import BatchProgress, config_hash, read_catalog, run_batch
from galaxyml.cli import main
from galaxyml.datasets import EXAMPLE_FIELD, sdss_file_urls, simulate_sdss_field
from galaxyml.datasets import conf as sdss_conf
from galaxyml.exceptions import InvalidParameterError

CONFIG = {"catalog": {"mag_range": [14.0, 19.0], "max_galaxies": 5}, "chunk_size": 3}
TASKS = "catalog,cutouts,morphology"
SIMULATED = [(9999, 3, 40), (9999, 3, 41), (9999, 3, 42)]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Three small simulated g, r, i fields, with galaxies bright enough to select."""
    path = tmp_path_factory.mktemp("mirror")
    for run, camcol, field in SIMULATED:
        simulate_sdss_field(path, bands="gri", shape=(256, 320), n_galaxies=20, n_stars=6,
                            run=run, camcol=camcol, field=field, seed=field)
    return path


@pytest.fixture(scope="module")
def reference(mirror, tmp_path_factory):
    """The uninterrupted serial run of the simulated fields: (manifest, catalog)."""
    output = tmp_path_factory.mktemp("reference")
    return run_batch(SIMULATED, mirror=mirror, tasks=TASKS, output=output, config=CONFIG,
                     download=False, quiet=True)


def assert_same_catalog(actual, expected, meta=True):
    assert actual.colnames == expected.colnames
    assert len(actual) == len(expected)
    for name in expected.colnames:
        a, b = actual[name], expected[name]
        assert getattr(a, "unit", None) == getattr(b, "unit", None), name
        a, b = np.asarray(getattr(a, "value", a)), np.asarray(getattr(b, "value", b))
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert actual.meta == expected.meta or not meta


def test_reference_run(reference, mirror):
    manifest, catalog = reference
    assert list(manifest["state"]) == ["done"] * 3
    assert all(manifest["n_galaxies"] > 0)
    assert len(catalog) == sum(manifest["n_galaxies"])
    assert set(catalog["field"]) == {40, 41, 42}
    assert np.all(np.isfinite(catalog["ra"].value)) and np.all(np.isfinite(catalog["mag"].value))
    assert np.isfinite(catalog["asymmetry"]).sum() >= len(catalog) // 2


def test_executors_give_identical_catalogues(mirror, tmp_path):
    pytest.importorskip("distributed")
    from galaxyml.datasets import example_field_dir

    fields, mirrors = list(SIMULATED), [mirror]
    real = example_field_dir()
    if real is not None:  # the real field too, where it is present
        fields.append(EXAMPLE_FIELD)
        mirrors.append(real)
    # Two galaxies a field, not the brightest: statmorph takes seconds on each big one.
    config = dict(CONFIG, catalog={"mag_range": [16.5, 19.0], "max_galaxies": 2})
    runs = {executor: run_batch(fields, mirror=mirrors, tasks=TASKS, executor=executor,
                                workers=2, output=tmp_path / executor, config=config,
                                download=False, quiet=True)
            for executor in ("serial", "processes", "dask")}
    for executor, (manifest, catalog) in runs.items():
        assert list(manifest["state"]) == ["done"] * len(fields), executor
        assert_same_catalog(catalog, runs["serial"][1])
    serial = runs["serial"][1]
    assert len(serial) == 2 * len(fields)
    assert np.isfinite(serial["asymmetry"]).sum() >= len(fields)

    output = tmp_path / "dask"
    assert_same_catalog(read_catalog(output / "catalog.ecsv"), serial)
    if _has_pyarrow():
        import pyarrow.parquet

        parquet = pyarrow.parquet.read_table(output / "catalog.parquet")
        assert parquet.column("galaxy").to_pylist() == list(serial["galaxy"])
        assert np.array_equal(parquet.column("asymmetry").to_numpy(), serial["asymmetry"],
                              equal_nan=True)
    # Every stamp is written, with its provenance and the batch's parameters.
    for stamp in serial["stamp"]:
        header = fits.getheader(output / stamp)
        assert header["GMLCFGH"] == serial.meta["config_hash"]
        assert header["GMLTASKS"] == "catalog,cutouts,morphology"
    assert not list((output / "fields").glob(".*"))  # no staging directory left
    manifest = runs["dask"][0]
    assert all(manifest["peak_memory"].value > 50)
    assert len(set(manifest["worker"])) == 2


def test_bad_fields_are_recorded_and_the_others_complete(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    for field in range(40, 45):
        simulate_sdss_field(mirror, bands="gri", shape=(256, 320), seed=field, field=field,
                            n_galaxies=0 if field == 42 else 20, n_stars=6)
    frame = mirror / "frame-r-009999-3-0041.fits"
    frame.write_bytes(frame.read_bytes()[:frame.stat().st_size // 2])  # truncated
    (mirror / "frame-i-009999-3-0043.fits").unlink()                  # a band missing
    shutil.copy(mirror / "psField-009999-3-0040.fits",                 # another field's psField
                mirror / "psField-009999-3-0044.fits")
    status = main(["batch", str(mirror), "--output", str(tmp_path / "out"), "--no-download",
                   "--config", str(_write_config(tmp_path))])
    assert status == 1
    captured = capsys.readouterr()
    assert "5 fields: 2 done, 2 failed, 1 missing" in captured.out
    assert "3 of 5 fields were not processed" in captured.err
    manifest = QTable.read(tmp_path / "out" / "manifest.ecsv")
    states = dict(zip(manifest["field"], zip(manifest["state"], manifest["message"])))
    assert states[40][0] == "done"
    assert states[41][0] == "failed" and "truncated" in states[41][1]
    assert states[42] == ("done", states[42][1]) and "no galaxy passed" in states[42][1]
    assert states[43][0] == "missing" and "frame-i-009999-3-0043" in states[43][1]
    assert states[44][0] == "failed" and "belongs to run-camcol-field 9999-3-40" in states[44][1]
    assert (tmp_path / "out" / "logs" / "9999-3-41.txt").read_text().startswith("Traceback")
    catalog = read_catalog(tmp_path / "out" / "catalog.ecsv")
    assert set(catalog["field"]) == {40}


def _has_pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _write_config(tmp_path):
    path = tmp_path / "batch.toml"
    path.write_text("chunk_size = 3\n[catalog]\nmag_range = [14.0, 19.0]\nmax_galaxies = 5\n")
    return path


def test_rerun_skips_completed_fields(mirror, reference, tmp_path):
    output = tmp_path / "out"
    run_batch(SIMULATED[:2], mirror=mirror, tasks=TASKS, output=output, config=CONFIG,
              download=False, quiet=True)
    written = {path: path.stat().st_mtime_ns for path in output.glob("fields/*/field.json")}
    manifest, catalog = run_batch(SIMULATED, mirror=mirror, tasks=TASKS, output=output,
                                  config=CONFIG, download=False, quiet=True)
    assert list(manifest["message"][:2]) == ["done by an earlier run"] * 2
    assert {path: path.stat().st_mtime_ns for path in written} == written
    assert_same_catalog(catalog, reference[1])
    with pytest.raises(InvalidParameterError, match="holds a run with tasks"):
        run_batch(SIMULATED, mirror=mirror, tasks=TASKS, output=output, config={"size": 48},
                  download=False, quiet=True)


def _batch_command(mirror, output, *options):
    return [sys.executable, "-m", "galaxyml.cli", "batch", str(mirror), "--output", str(output),
            "--tasks", TASKS, "--no-download", "--config", str(_write_config(output.parent)),
            *options]


@pytest.fixture
def start_batch():
    """Starts ``galaxyml batch`` subprocesses; kills any left running when the test ends."""
    processes = []

    def start(command):
        processes.append(subprocess.Popen(command))
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def _wait_for_a_done_field(process, output, timeout=300):
    start = time.monotonic()
    while not list(output.glob("fields/*/field.json")):
        assert process.poll() is None, "the batch ended before any field was done"
        assert time.monotonic() - start < timeout
        time.sleep(0.02)


def test_client_killed_and_resumed(mirror, reference, tmp_path, start_batch):
    output = tmp_path / "out"
    process = start_batch(_batch_command(mirror, output, "--quiet"))
    _wait_for_a_done_field(process, output)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = list(output.glob("fields/*/field.json"))
    assert len(done) < 3, "the kill came too late to test anything"
    # Whatever the kill interrupted is a hidden staging directory, never a field's directory.
    for directory in (output / "fields").iterdir():
        assert directory.name.startswith(".") or (directory / "field.json").is_file()
    manifest, catalog = run_batch(mirror, tasks=TASKS, output=output, config=CONFIG,
                                  download=False, quiet=True)
    assert list(manifest["state"]) == ["done"] * 3
    assert_same_catalog(catalog, reference[1])
    assert not list((output / "fields").glob(".*"))


def test_worker_killed_and_resumed(mirror, reference, tmp_path, start_batch):
    psutil = pytest.importorskip("psutil")
    output = tmp_path / "out"
    process = start_batch(_batch_command(mirror, output, "--quiet", "--executor", "processes",
                                         "--workers", "1"))
    _wait_for_a_done_field(process, output)
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "resource_tracker" not in " ".join(child.cmdline())]
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)
    assert process.wait(timeout=120) == 1  # the batch goes on and reports the lost fields
    manifest = QTable.read(output / "manifest.ecsv")
    lost = manifest[manifest["state"] == "failed"]
    assert len(lost) >= 1 and all("worker was lost" in message for message in lost["message"])
    manifest, catalog = run_batch(mirror, tasks=TASKS, output=output, config=CONFIG,
                                  download=False, quiet=True)
    assert list(manifest["state"]) == ["done"] * 3
    assert_same_catalog(catalog, reference[1])


def test_dask_worker_killed(mirror, reference, tmp_path, start_batch):
    """Dask's nanny restarts a killed worker and the scheduler reruns its field."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("distributed")
    output = tmp_path / "out"
    process = start_batch(_batch_command(mirror, output, "--quiet", "--executor", "dask",
                                         "--workers", "1"))
    _wait_for_a_done_field(process, output)
    # The nanny runs in the client's process; the worker is its spawned child.
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "spawn_main" in " ".join(child.cmdline())]
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)
    assert process.wait(timeout=300) == 0
    manifest = QTable.read(output / "manifest.ecsv")
    assert list(manifest["state"]) == ["done"] * 3
    assert_same_catalog(read_catalog(output / "catalog.ecsv"), reference[1])


def test_models_are_loaded_once(mirror, tmp_path, monkeypatch):
    from galaxyml.batch import tasks

    monkeypatch.setattr(tasks, "_MODELS", {})  # as in a fresh worker
    config = dict(CONFIG, catalog={"mag_range": [14.0, 19.0], "max_galaxies": 2})
    manifest, catalog = run_batch(SIMULATED, mirror=mirror, output=tmp_path,
                                  tasks="restore,psfgan,mergers", config=config,
                                  download=False, quiet=True)
    assert list(manifest["state"]) == ["done"] * 3
    assert list(manifest["models_loaded"]) == [3, 0, 0]
    assert np.all((catalog["p_merger"] >= 0) & (catalog["p_merger"] <= 1))
    assert np.all(np.isfinite(catalog["host_flux"].value))
    for column in ("restored_stamp", "host_stamp"):
        for path in catalog[column]:
            assert fits.getheader(tmp_path / path)["GMLTASKS"] == "catalog,restore,psfgan,mergers"
    assert "stamp" not in catalog.colnames  # cut for the tasks, written only by 'cutouts'
    # On two Dask workers: each loads the three models once, and the networks' outputs
    # are the same as in this process.
    pytest.importorskip("distributed")
    manifest, on_dask = run_batch(SIMULATED, mirror=mirror, output=tmp_path / "dask",
                                  tasks="restore,psfgan,mergers", config=config,
                                  executor="dask", workers=2, download=False, quiet=True)
    loads = {}
    for worker, count in zip(manifest["worker"], manifest["models_loaded"]):
        loads[worker] = loads.get(worker, 0) + count
    assert set(loads.values()) == {3}
    assert_same_catalog(on_dask, catalog)


def test_missing_fields_are_downloaded_into_the_mirror(tmp_path):
    from astropy.config import set_temp_cache

    simulated = simulate_sdss_field(tmp_path / "sim", bands="gri", shape=(256, 320),
                                    n_galaxies=20, field=50, seed=50)
    archive = tmp_path / "archive"
    for band in "gri":
        urls = sdss_file_urls(9999, 3, 50, band, base_url=archive.as_uri())
        for kind, source in (("frame", simulated.files.frames[band]),
                             ("psField", simulated.files.psfield),
                             ("fpM", simulated.files.fpm[band])):
            destination = Path(urls[kind].removeprefix("file://"))
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)  # gzip/bz2 names, plain content: still FITS
    mirror = tmp_path / "mirror"
    kwargs = dict(tasks="catalog", config=CONFIG, quiet=True)
    manifest, _ = run_batch([(9999, 3, 50)], mirror=mirror, output=tmp_path / "no",
                            download=False, **kwargs)
    assert manifest["state"][0] == "missing" and "downloading is off" in manifest["message"][0]
    archive_url = sdss_conf.set_temp("sdss_base_url", archive.as_uri())
    with set_temp_cache(tmp_path / "cache"), archive_url:
        manifest, catalog = run_batch([(9999, 3, 50)], mirror=mirror, output=tmp_path / "yes",
                                      download=True, **kwargs)
    assert manifest["state"][0] == "done" and len(catalog) > 0
    assert (mirror / "photoObj/frames/301/9999/3/frame-r-009999-3-0050.fits.bz2").is_file()
    assert (mirror / "photo/redux/301/9999/objcs/3/psField-009999-3-0050.fit").is_file()
    # The next run finds them in the mirror, with downloads off; here given as a directory
    # of frames, searched after another (empty) mirror.
    manifest, again = run_batch(mirror, mirror=tmp_path / "empty", output=tmp_path / "again",
                                download=False, **kwargs)
    assert_same_catalog(again, catalog)


def test_bands_and_executor_are_checked(mirror, tmp_path):
    with pytest.raises(InvalidParameterError, match="morphology.band is 'z'"):
        run_batch(mirror, tasks="morphology", config={"morphology": {"band": "z"}},
                  output=tmp_path, quiet=True)
    with pytest.raises(InvalidParameterError, match="reference_band is 'r'"):
        run_batch(mirror, bands="gi", output=tmp_path, quiet=True)
    with pytest.raises(InvalidParameterError, match="shipped mergers model needs"):
        run_batch(mirror, tasks="mergers", bands="ri", output=tmp_path, quiet=True)
    with pytest.raises(InvalidParameterError, match="executor must be one of"):
        run_batch(mirror, executor="threads", output=tmp_path / "x", quiet=True, download=False)


def test_command_line_errors(mirror, tmp_path, capsys):
    assert main(["batch", str(mirror), "--tasks", "catalog,deblend", "--output",
                 str(tmp_path)]) == 2
    assert "unknown task(s) ['deblend']" in capsys.readouterr().err


def test_progress_lines_and_bar():
    stream = io.StringIO()
    progress = BatchProgress(3, done_before=1, stream=stream)
    progress.update({"name": "1-2-3"}, {"state": "done", "n_galaxies": 4, "message": "",
                                        "seconds": 2.0})
    progress.update({"name": "1-2-4"}, {"state": "failed", "n_galaxies": 0,
                                        "message": "FITSReadError: truncated", "seconds": 0.1})
    lines = stream.getvalue().splitlines()
    assert lines == ["[2/3] 1-2-3 done in 2.0 s: 4 galaxies",
                     "[3/3] 1-2-4 failed in 0.1 s: FITSReadError: truncated"]
    status = progress.status()
    assert "3/3 fields (1 failed, 0 missing), 4 galaxies" in status and "ETA 0 s" in status
    progress.finished = 1                      # one of three fields done after...
    progress.counts.update(done=1, failed=0)
    progress.start -= 90                       # ... 90 s: two more take 3 min
    assert progress.status().endswith("0.7 fields/min, ETA 3.0 min")
    quiet = io.StringIO()
    silent = BatchProgress(1, quiet=True, stream=quiet)
    silent.log("hello")
    silent.update({"name": "x"}, {"state": "done", "n_galaxies": 1, "message": ""})
    assert quiet.getvalue() == ""


def test_run_record(mirror, reference, tmp_path):
    output = tmp_path / "out"
    run_batch(SIMULATED[:1], mirror=mirror, tasks=TASKS, output=output, config=CONFIG,
              download=False, quiet=True)
    record = json.loads((output / "run.json").read_text())
    assert record["tasks"] == ["catalog", "cutouts", "morphology"]
    assert record["config_hash"] == config_hash(record["config"])
    field = json.loads((output / "fields" / "9999-3-40" / "field.json").read_text())
    assert field["n_galaxies"] == reference[0]["n_galaxies"][0]
    assert all(Path(path).is_absolute() for path in field["inputs"])
    assert isinstance(field["warnings"], dict)


def test_distributed_and_tensorflow_are_imported_only_when_needed(mirror, tmp_path):
    # (dask itself comes with reproject, a core dependency; distributed is the extra.)
    code = (
        "import sys\n"
        "from galaxyml.batch import run_batch\n"
        f"run_batch({SIMULATED[:1]!r}, mirror={str(mirror)!r}, tasks='catalog,morphology',\n"
        f"          output={str(tmp_path)!r}, config={CONFIG!r}, download=False, quiet=True)\n"
        "print(sorted(name for name in ('distributed', 'dask_jobqueue', 'tensorflow')\n"
        "             if name in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
