# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A batch over many fields: what to run, the manifest, the merged catalogue, resuming."""

import contextlib
import json
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import QTable, vstack

from ..exceptions import InvalidParameterError, OutputExistsError
from ..io.writing import atomic_output
from .config import batch_config, config_hash
from .executors import check_executor, run_fields
from .fields import read_fields
from .output import claim_output_directory, output_lock, remove_owned_directory
from .tasks import BatchSettings, _catalog_table, check_tasks, field_directory, field_is_done

__all__ = ["run_batch", "BatchProgress", "read_catalog", "selection_summary"]

# Seconds between rewrites of the manifest while a batch runs (it is always written at the end).
_MANIFEST_INTERVAL = 5.0


def run_batch(fields, mirror=None, tasks=("catalog", "cutouts"), executor="serial", workers=None,
              scheduler=None, output="galaxyml-batch", config=None, bands=None, preset=None,
              download=None, quiet=False):
    """Run tasks over many SDSS fields; resume where an earlier run of the same command stopped.

    Each field is found (in ``mirror``, or downloaded), read, its galaxies
    selected (`~galaxyml.datasets.galaxy_catalog`) and cut
    (`~galaxyml.io.multiband_cutout`) a chunk at a time, and the tasks run
    on the cutouts.  Its products go to ``OUTPUT/fields/RUN-CAMCOL-FIELD/``
    (``galaxies.ecsv``, ``field.json``, and ``stamps/``, ``restored/``,
    ``hosts/`` FITS files), written in a staging directory and renamed
    into place complete.  Fields already complete are skipped, so that
    rerunning a killed or failed run finishes it; the merged catalogue is
    then the same as that of an uninterrupted run.  A bad field (missing,
    corrupt, without galaxies) is recorded and never stops the batch.

    Parameters
    ----------
    fields : path, table or list
        A field table (ECSV or CSV with ``run``, ``camcol``, ``field``,
        optionally ``rerun``) or a directory of frames; see
        `~galaxyml.batch.read_fields`.
    mirror : path or list of path, optional
        Local directories holding the fields' files (flat, per field, or
        the SDSS archive's tree), searched before the directory of frames
        given as ``fields`` and the configured SDSS directories.
    tasks : str or sequence of str
        From `~galaxyml.batch.TASKS`: ``catalog`` (always run), ``cutouts``,
        ``restore``, ``psfgan``, ``morphology``, ``mergers``; a
        comma-separated string or a list.
    executor : {'serial', 'processes', 'dask'}
        Where fields run: this process, a pool of local processes, or Dask.
    workers : int, optional
        Processes or Dask workers; the number of CPUs by default.
    scheduler : str, optional
        A running Dask scheduler's address; a local cluster by default.
    output : path
        The run's directory.
    config : path or dict, optional
        The tasks' parameters (`~galaxyml.batch.batch_config`).
    bands : str, optional
        Bands to read and cut, overriding the configuration's.
    preset : str, optional
        A papers' selection from `~galaxyml.batch.PRESETS`, under
        ``config``; by default every galaxy the tasks can handle (to
        r = 21, blended and masked ones flagged, not dropped).
    download : bool, optional
        Download missing files from the SDSS archive, into the first
        ``mirror`` directory (in the archive's tree, so that the next run
        finds them) or, without a mirror, into astropy's download cache;
        by default ``galaxyml.datasets.conf.allow_download``.
    quiet : bool
        No progress display (the final counts are still returned).

    Returns
    -------
    manifest : `~astropy.table.QTable`
        One row per field: ``run``, ``camcol``, ``field``, ``rerun``,
        ``state`` (``done``, ``failed``, ``missing``), ``message``,
        ``n_galaxies``, ``seconds``, ``peak_memory`` and ``worker``;
        also written to ``OUTPUT/manifest.ecsv``.
    catalog : `~astropy.table.QTable`
        One row per galaxy of the completed fields, in field order:
        ``run``, ``camcol``, ``field``, ``rerun``, ``galaxy``, ``ra``,
        ``dec`` and the tasks' columns (`~galaxyml.batch.TASK_COLUMNS`),
        with paths of the written stamps relative to ``output``; also
        written to ``OUTPUT/catalog.ecsv`` (and ``catalog.parquet`` where
        pyarrow is installed).

    Raises
    ------
    InvalidParameterError
        Unknown tasks, executor or parameters, a band the tasks need that
        is not among the bands, or an output directory holding a run with
        other tasks or parameters.
    """
    from ..datasets.sdss import conf as sdss_conf

    table = read_fields(fields)
    mirror = [] if mirror is None else [mirror] if isinstance(mirror, (str, Path)) \
        else list(mirror)
    if isinstance(fields, (str, Path)) and Path(fields).is_dir():
        mirror.append(fields)  # a directory of frames is searched too, after the mirrors
    tasks = check_tasks(tasks)
    config = batch_config(config, preset=preset, bands=bands)
    _check_bands(config, tasks)
    check_executor(executor, workers)
    output = Path(output).absolute()
    settings = BatchSettings(output=output, tasks=tasks, config=config,
                             mirror=tuple(Path(path).resolve() for path in mirror),
                             download=sdss_conf.allow_download if download is None else download)
    claim_output_directory(output, inputs=settings.mirror)
    with output_lock(output):
        _check_run_record(output, tasks, config)
        return _run_locked(table, settings, executor, workers, scheduler, quiet)


def _run_locked(table, settings, executor, workers, scheduler, quiet):
    """The batch, once its output directory is claimed and locked."""
    output, tasks, config = settings.output, settings.tasks, settings.config
    jobs = _jobs(table)
    rows = {job["name"]: _manifest_row(job) for job in jobs}
    pending = []
    for job in jobs:
        if field_is_done(output, job["name"]):
            rows[job["name"]].update(state="done", message="done by an earlier run",
                                     n_galaxies=_field_record(output, job)["n_galaxies"])
        else:
            pending.append(job)
    progress = BatchProgress(len(table), done_before=len(table) - len(pending), quiet=quiet)
    progress.log(f"{len(table)} fields, {len(table) - len(pending)} already done; tasks "
                 f"{','.join(tasks)}; executor {executor}; output {output}")
    _write_manifest(output, rows)
    written = time.monotonic()
    progress.watch_fields(output / "fields")
    try:
        for job, result in run_fields(pending, settings, executor, workers, scheduler,
                                      progress.log):
            if result["state"] != "done" and field_is_done(output, job["name"]):
                # The worker died after its field was complete on disk.
                result = dict(result, state="done", message="",
                              n_galaxies=_field_record(output, job)["n_galaxies"])
            if "traceback" in result:
                _write_traceback(output, job["name"], result.pop("traceback"))
            rows[job["name"]].update({key: value for key, value in result.items()
                                      if key != "name"})
            progress.update(job, result)
            if time.monotonic() - written > _MANIFEST_INTERVAL:  # not O(fields^2) when big
                _write_manifest(output, rows)
                written = time.monotonic()
    finally:
        progress.close()
    catalog = _merge_catalog(output, table, tasks, config)
    return _write_manifest(output, rows), catalog


def _field_record(output, job):
    """The ``field.json`` of a completed field."""
    return json.loads((field_directory(output, job["name"]) / "field.json").read_text())


def _jobs(table):
    return [{"run": int(row["run"]), "camcol": int(row["camcol"]), "field": int(row["field"]),
             "rerun": int(row["rerun"]), "name": str(row["name"])} for row in table]


def _manifest_row(job):
    return {"run": job["run"], "camcol": job["camcol"], "field": job["field"],
            "rerun": job["rerun"], "state": "pending", "message": "", "n_galaxies": 0,
            "seconds": np.nan, "peak_memory": np.nan, "models_loaded": 0, "worker": ""}


def _check_bands(config, tasks):
    bands = config["bands"]
    needed = {"reference_band": config["reference_band"],
              "catalog.detection_band": config["catalog"]["detection_band"]}
    if "morphology" in tasks:
        needed["morphology.band"] = config["morphology"]["band"]
    if "psfgan" in tasks:
        needed["psfgan.band"] = config["psfgan"]["band"]
    for name, band in needed.items():
        if band not in bands:
            raise InvalidParameterError(f"{name} is {band!r}, which is not among the batch's "
                                        f"bands {bands!r}")
    for task in ("restore", "mergers"):
        if task in tasks and not config[task]["model"] and not set("gri") <= set(bands):
            raise InvalidParameterError(f"the shipped {task} model needs the bands g, r, i; "
                                        f"the batch's bands are {bands!r}")


def _check_run_record(output, tasks, config):
    """Record the run's tasks and parameters, or check them against those recorded; remove
    the staging directories of fields that a killed run left unfinished."""
    record = {"tasks": list(tasks), "config": config, "config_hash": config_hash(config)}
    path = output / "run.json"
    if path.is_file():
        try:
            earlier = json.loads(path.read_text())
            earlier_tasks, earlier_hash = earlier.get("tasks"), earlier.get("config_hash")
        except (ValueError, AttributeError) as exc:
            raise InvalidParameterError(
                f"{path} is corrupt ({exc}); it records the run this directory holds, so the "
                f"run cannot be resumed: choose another output directory") from None
        if earlier_tasks != record["tasks"] or earlier_hash != record["config_hash"]:
            raise InvalidParameterError(
                f"{output} holds a run with tasks {earlier_tasks} and other parameters "
                f"(configuration {earlier_hash}, now {record['config_hash']}); "
                f"resume it with the same command, or choose another output directory")
    else:
        with atomic_output(path) as temporary:
            temporary.write_text(json.dumps(record, indent=1))
    for stale in (output / "fields").glob(".*.partial-*"):
        with contextlib.suppress(OutputExistsError):  # not galaxyml's: left as it is
            remove_owned_directory(stale)


def _write_traceback(output, name, text):
    """The full traceback of a failed field, in ``OUTPUT/logs/NAME.txt``."""
    with atomic_output(output / "logs" / f"{name}.txt", overwrite=True) as temporary:
        temporary.write_text(text)


def _write_manifest(output, rows):
    manifest = QTable(rows=list(rows.values()))
    manifest["seconds"].unit = u.s
    manifest["peak_memory"].unit = u.MiB
    manifest.meta["states"] = {"done": "complete, under fields/", "failed": "an error (message)",
                               "missing": "files neither local nor downloadable",
                               "pending": "not yet run (the run was interrupted)"}
    with atomic_output(output / "manifest.ecsv", overwrite=True) as temporary:
        manifest.write(temporary, format="ascii.ecsv")
    return manifest


def _merge_catalog(output, fields, tasks, config):
    """The catalogue of all completed fields, in field order, written as ECSV (and Parquet)."""
    parts = [read_catalog(field_directory(output, name) / "galaxies.ecsv")
             for name in fields["name"] if field_is_done(output, name)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fields' differing meta are not merged
        catalog = vstack([_catalog_table(tasks, {}), *parts], metadata_conflicts="silent")
    done = [name for name in fields["name"] if field_is_done(output, name)]
    catalog.meta = {"tasks": list(tasks), "config": config, "config_hash": config_hash(config),
                    "fields": [str(name) for name in fields["name"]],
                    "selection": _selection_counts(output, done)}
    # Both copies are written in full before either is renamed into place, so that a kill
    # leaves them at most one rename apart, not a whole catalogue's writing.
    with contextlib.ExitStack() as stack:
        ecsv = stack.enter_context(atomic_output(output / "catalog.ecsv", overwrite=True))
        catalog.write(ecsv, format="ascii.ecsv")
        if _has_pyarrow():  # Parquet is written only where pyarrow is installed
            parquet = stack.enter_context(atomic_output(output / "catalog.parquet",
                                                        overwrite=True))
            catalog.write(parquet, format="parquet")
    return catalog


def _has_pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _selection_counts(output, names):
    """The galaxy selection's counts (sources left after each cut, galaxies flagged), summed
    over the completed fields."""
    total = {}
    for name in names:
        record = json.loads((field_directory(output, name) / "field.json").read_text())
        for step, count in record.get("selection", {}).items():
            total[step] = total.get(step, 0) + int(count)
    return total


def selection_summary(counts):
    """``'3580 detected, 640 in the magnitude range, ...'``: the selection counts in words."""
    words = {"detected": "detected", "magnitude": "in the magnitude range",
             "extended": "extended", "inside": "inside the frame", "isolated": "isolated",
             "unmasked": "unmasked", "blended": "flagged blended", "masked": "flagged masked"}
    return ", ".join(f"{count} {words.get(step, step)}" for step, count in counts.items())


def _duration(seconds):
    """``'42 s'``, ``'3.5 min'`` or ``'2.1 h'``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def read_catalog(path):
    """Read a batch catalogue (``catalog.ecsv`` or a field's ``galaxies.ecsv``) as a QTable."""
    return QTable.read(path, format="ascii.ecsv")


class BatchProgress:
    """The progress of a batch: a bar on a terminal, one line per field otherwise.

    Parameters
    ----------
    total : int
        Fields in the batch.
    done_before : int
        Fields completed by an earlier run.
    quiet : bool
        Show nothing.
    stream : file, optional
        Where to write; standard error for the bar, standard output for
        lines.
    """

    #: Seconds between looks at the running fields' progress, and between the lines that
    #: report it where there is no bar.
    WATCH_INTERVAL, LINE_INTERVAL = 2.0, 30.0

    def __init__(self, total, done_before=0, quiet=False, stream=None):
        self.total, self.quiet = total, quiet
        self.bar = stream is None and sys.stderr.isatty() and not quiet
        self.stream = stream or (sys.stderr if self.bar else sys.stdout)
        self.counts = {"done": done_before, "failed": 0, "missing": 0}
        self.galaxies, self.finished = 0, 0
        self.start = time.perf_counter()
        self.running = {}  # field -> its progress.json, while it runs
        self._stop = threading.Event()
        self._watcher = None

    def watch_fields(self, fields_directory):
        """Show, until `close`, the progress of the fields running in ``fields_directory``
        (as their workers record it in their staging directories)."""
        if self.quiet or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, args=(Path(fields_directory),),
                                         daemon=True, name="galaxyml-batch-progress")
        self._watcher.start()

    def _watch(self, fields_directory):
        started, last_line = time.time(), time.monotonic()
        while not self._stop.wait(self.WATCH_INTERVAL):
            running = {}
            for path in fields_directory.glob(".*.partial/progress.json"):
                try:
                    if path.stat().st_mtime >= started:
                        running[path.parent.name[1:-len(".partial")]] = \
                            json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # replaced or removed while read
            self.running = running
            if self.bar:
                print("\r" + self.status(), end="", file=self.stream, flush=True)
            elif running and time.monotonic() - last_line > self.LINE_INTERVAL:
                last_line = time.monotonic()
                for name, record in running.items():
                    print(f"  {name}: {self.field_status(record)}", file=self.stream,
                          flush=True)

    @staticmethod
    def field_status(record):
        """``'120/300 galaxies, 2.1 galaxies/s'`` (and how many were resumed) of a field."""
        computed = record["done"] - record.get("resumed", 0)
        rate = computed / record["seconds"] if record.get("seconds") else 0.0
        resumed = f", {record['resumed']} from an earlier run" if record.get("resumed") else ""
        return f"{record['done']}/{record['total']} galaxies, {rate:.1f} galaxies/s{resumed}"

    def log(self, message):
        """One line of information, unless quiet."""
        if not self.quiet:
            print(("\r" if self.bar else "") + message, file=self.stream, flush=True)

    def update(self, job, result):
        """Count one finished field and show it."""
        self.counts[result["state"]] = self.counts.get(result["state"], 0) + 1
        self.galaxies += result.get("n_galaxies", 0)
        self.finished += 1
        if self.quiet:
            return
        if self.bar:
            print("\r" + self.status(), end="", file=self.stream, flush=True)
        else:
            seconds = result.get("seconds", float("nan"))
            detail = f"{result['n_galaxies']} galaxies" if result["state"] == "done" \
                else result["message"]
            print(f"[{sum(self.counts.values()):>{len(str(self.total))}}/{self.total}] "
                  f"{job['name']} {result['state']} in {seconds:.1f} s: {detail}",
                  file=self.stream, flush=True)

    def status(self):
        """``[####    ] 12/17 fields (1 failed, 0 missing), 340 galaxies, 3.2 fields/min, ETA``."""
        handled = sum(self.counts.values())
        width = 20
        filled = int(width * handled / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        rate = 60 * self.finished / elapsed if elapsed > 0 else 0.0
        remaining = self.total - handled
        eta = _duration(60 * remaining / rate) if rate > 0 else "?"
        fields = "".join(f" | {name}: {self.field_status(record)}"
                         for name, record in sorted(self.running.items())[:2])
        return (f"[{'#' * filled}{' ' * (width - filled)}] {handled}/{self.total} fields "
                f"({self.counts['failed']} failed, {self.counts['missing']} missing), "
                f"{self.galaxies} galaxies, {rate:.1f} fields/min, ETA {eta}{fields}")

    def close(self):
        """Stop watching the fields; end the bar's line."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if self.bar:
            print(file=self.stream, flush=True)
