# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""What a batch does to one field: find, read, select galaxies, cut them, run the tasks.

`process_field` runs in the worker (the client process, a local process or
a Dask worker).  It writes the field's products into a hidden staging
directory and renames it into place when everything is written: a field's
directory exists complete or not at all, whatever kills the worker.  The
staging directory keeps each finished chunk of galaxies, so that a field
stopped midway resumes from its last chunk.
"""

import json
import os
import resource
import shutil
import socket
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.wcs import FITSFixedWarning

from ..exceptions import FieldLimitError, FITSReadError, InvalidParameterError, \
    MissingDependencyError, ModelTypeError, SDSSDataNotFoundError
from .config import TASKS, add_config_cards, config_hash
from .limits import field_limits
from .output import remove_owned_directory, resumable_staging

__all__ = ["BatchSettings", "FIELD_STATES", "TASK_COLUMNS", "process_field", "field_directory",
           "field_is_done", "models_loaded", "blank_values"]

#: States of a field in the manifest.
FIELD_STATES = ("done", "failed", "missing", "pending")

#: The catalogue columns each task adds: (name, dtype, unit).  Fixed, so that a field
#: without galaxies has the same columns as the others.
TASK_COLUMNS = {
    "catalog": [("galaxy", int, None), ("ra", float, u.deg), ("dec", float, u.deg),
                ("x", float, u.pix), ("y", float, u.pix), ("flux", float, u.nanomaggy),
                ("mag", float, u.ABmag), ("fwhm", float, u.pix), ("size_ratio", float, None),
                ("elongation", float, None), ("neighbour_flux_ratio", float, None),
                ("masked_fraction", float, None), ("selection_flags", np.int32, None),
                ("errors", str, None)],
    "cutouts": [("stamp", str, None)],
    "restore": [("restored_stamp", str, None)],
    "psfgan": [("ps_detected", bool, None), ("ps_snr", float, None),
               ("ps_flux", float, u.nanomaggy), ("ps_flux_err", float, u.nanomaggy),
               ("ps_mag", float, u.ABmag), ("ps_mag_err", float, u.mag),
               ("ps_flux_upper", float, u.nanomaggy),
               ("host_flux", float, u.nanomaggy), ("host_flux_err", float, u.nanomaggy),
               ("host_mag", float, u.ABmag), ("host_mag_err", float, u.mag),
               ("psfgan_flags", np.int32, None), ("host_stamp", str, None)],
    "morphology": [("concentration", float, None), ("asymmetry", float, None),
                   ("smoothness", float, None), ("gini", float, None), ("m20", float, None),
                   ("gini_m20_merger", float, None), ("asymmetry_merger", bool, None),
                   ("lotz_merger", bool, None), ("sn_per_pixel", float, None),
                   ("morphology_flags", np.int32, None)],
    "mergers": [("p_merger", float, None), ("merger", bool, None)],
}
_FIELD_COLUMNS = [("run", int, None), ("camcol", int, None), ("field", int, None),
                  ("rerun", int, None)]

# Models of the tasks that need one, loaded once per process and kept for every field.
_MODELS = {}


@dataclass(frozen=True)
class BatchSettings:
    """What every field of a batch shares (sent to each worker with each field).

    Attributes
    ----------
    output : `~pathlib.Path`
        The run's output directory.
    tasks : tuple of str
        Tasks to run, from `~galaxyml.batch.TASKS`, ``catalog`` first.
    config : dict
        The complete parameters (`~galaxyml.batch.batch_config`).
    mirror : tuple of `~pathlib.Path`
        Local directories searched for the fields' files.
    download : bool
        Download files missing locally from the SDSS archive: into the
        first mirror directory, in the archive's tree, or into astropy's
        download cache where there is no mirror.
    """

    output: Path
    tasks: tuple
    config: dict = field(default_factory=dict)
    mirror: tuple = ()
    download: bool = False

    @property
    def download_dir(self):
        """Where downloaded files go: the first mirror directory, or None (astropy's cache)."""
        return self.mirror[0] if self.mirror else None


def field_directory(output, name):
    """Where a field's products are: ``OUTPUT/fields/RUN-CAMCOL-FIELD``."""
    return Path(output) / "fields" / name


def field_is_done(output, name):
    """Whether the field's products are complete (its directory, not a link, holds
    ``field.json``)."""
    directory = field_directory(output, name)
    return not directory.is_symlink() and (directory / "field.json").is_file()


def models_loaded():
    """How many models this process has loaded (each once, whatever the number of fields)."""
    return len(_MODELS)


def process_field(job, settings):
    """Run the batch's tasks on one field; never raises for a bad field.

    Parameters
    ----------
    job : dict
        ``run``, ``camcol``, ``field``, ``rerun``, ``name`` (a row of
        `~galaxyml.batch.read_fields`).
    settings : `BatchSettings`

    Returns
    -------
    result : dict
        ``name``, ``state`` (``done``, ``failed`` or ``missing``),
        ``message`` (why, in one line), ``n_galaxies``, ``seconds``,
        ``peak_memory`` (MiB, the worker process's peak resident size),
        ``models_loaded`` (models this call had to load), ``worker``
        (host:pid), and for a failure ``traceback``.
    """
    start = time.perf_counter()
    loaded = models_loaded()
    result = {"name": job["name"], "state": "failed", "message": "", "n_galaxies": 0}
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Recorded in the field's field.json, not printed from every worker.
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=FITSFixedWarning)  # every SDSS frame
            limits = settings.config["limits"]
            with field_limits(limits["field_seconds"], limits["field_memory_mib"],
                              f"field {job['name']}"):
                result["n_galaxies"], result["message"] = _process(job, settings, caught)
        result["state"] = "done"
    except SDSSDataNotFoundError as exc:
        result.update(state="missing", message=_one_line(exc))
    except Exception as exc:  # a bad field is recorded and never stops the batch
        result.update(state="failed", message=f"{type(exc).__name__}: {_one_line(exc)}",
                      traceback=traceback.format_exc())
    result["seconds"] = time.perf_counter() - start
    result["peak_memory"] = _peak_memory_mib()
    result["models_loaded"] = models_loaded() - loaded
    result["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return result


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _peak_memory_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 ** 2 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB


def _process(job, settings, caught):
    """Products of one field in a staging directory, renamed into place; (n_galaxies, note)."""
    from ..datasets import galaxy_catalog
    from ..psf import psfield_fwhm

    config, name = settings.config, job["name"]
    files, frames = _read_field(job, settings)
    selection = config["catalog"]
    detection = selection["detection_band"]
    catalog = galaxy_catalog(
        frames, detection_band=detection, size=config["size"],
        mag_range=tuple(selection["mag_range"]), psf_fwhm=psfield_fwhm(files.psfield, detection),
        min_size_ratio=selection["min_size_ratio"],
        max_neighbour_flux_ratio=selection["max_neighbour_flux_ratio"],
        max_masked_fraction=selection["max_masked_fraction"], nsigma=selection["nsigma"],
        drop_flagged=selection["drop_flagged"])
    if selection["max_galaxies"] > 0:
        catalog = catalog[:selection["max_galaxies"]]
    catalog.sort("id")  # a stable order, whatever the selection's

    final = field_directory(settings.output, name)
    # Kept if the field stops unfinished: the next run redoes only the chunks not saved.
    staging = resumable_staging(final, {"config_hash": config_hash(config),
                                        "tasks": list(settings.tasks),
                                        "galaxies": [int(g) for g in catalog["id"]]})
    table = _run_tasks(job, settings, frames, catalog, _FieldWriter(staging, name, settings))
    note = "" if len(table) else (
        f"no galaxy passed the selection ({_counts(catalog.meta['selection'])})")
    if (staging / _CHUNKS).exists():
        shutil.rmtree(staging / _CHUNKS)
    for scratch in (_PROGRESS, "staging.json"):
        (staging / scratch).unlink(missing_ok=True)
    _write_field(job, settings, files, catalog, table, staging, caught)
    _commit(staging, final)
    return len(table), note


def _read_field(job, settings):
    """The field's files and frames; a downloaded file that proves corrupt is set aside and
    fetched again, once."""
    from ..datasets import sdss_field_files

    def find():
        return sdss_field_files(job["run"], job["camcol"], job["field"],
                                bands=settings.config["bands"], rerun=job["rerun"],
                                data_dirs=list(settings.mirror), download=settings.download,
                                show_progress=False, download_dir=settings.download_dir)

    files = find()
    try:
        return files, files.read()
    except FITSReadError:
        if not settings.download or not _set_aside_corrupt_downloads(files, settings):
            raise
    files = find()
    return files, files.read()


def _set_aside_corrupt_downloads(files, settings):
    """Set aside the field's downloaded files that cannot be read; whether there were any."""
    from astropy.config import get_cache_dir
    from astropy.utils.data import clear_download_cache

    from ..datasets import set_aside
    from ..io._open import open_fits

    areas = [Path(settings.download_dir).resolve()] if settings.download_dir else []
    areas.append(Path(get_cache_dir()).resolve())
    found = False
    for path in (*files.frames.values(), files.psfield, *files.fpm.values()):
        if not any(area in Path(path).resolve().parents for area in areas):
            continue  # a user's file: reported, never moved
        try:
            with open_fits(path):
                continue
        except FITSReadError:
            found = True
            if areas[0] in Path(path).resolve().parents and settings.download_dir:
                set_aside(path)
            else:
                clear_download_cache(str(path))
    return found


def _counts(selection):
    return ", ".join(f"{step} {count}" for step, count in selection.items())


def _run_tasks(job, settings, frames, catalog, writer):
    """The field's table: its galaxies, chunk by chunk, with every task's columns."""
    from ..io import multiband_cutout

    config = settings.config
    columns = {name: [] for task in settings.tasks for name, _, _ in TASK_COLUMNS[task]}
    for row in catalog:
        columns["galaxy"].append(int(row["id"]))
        for name in ("ra", "dec", "x", "y", "flux", "mag", "fwhm", "size_ratio", "elongation",
                     "neighbour_flux_ratio", "masked_fraction"):
            columns[name].append(float(getattr(row[name], "value", row[name])))
        columns["selection_flags"].append(int(row["selection_flags"]))
    chunk_size = max(1, config["chunk_size"])
    progress = _ChunkProgress(writer.staging, len(catalog))
    for number, start in enumerate(range(0, len(catalog), chunk_size)):
        rows = catalog[start:start + chunk_size]
        chunk = _load_chunk(writer.staging, number)
        if chunk is None:
            cutouts = [multiband_cutout(frames, row["sky_centroid"], config["size"],
                                        reference_band=config["reference_band"], mode="strict")
                       for row in rows]
            chunk = _chunk_columns(cutouts, rows, settings, writer)
            _save_chunk(writer.staging, number, chunk, settings.tasks)
            progress.update(len(rows))
        else:
            progress.update(len(rows), resumed=True)
        for name, values in chunk.items():
            columns[name].extend(values)
    return _catalog_table(settings.tasks, columns, job)


def _chunk_columns(cutouts, rows, settings, writer):
    """Every task's columns, and ``errors``, for a chunk of galaxies."""
    columns, errors = {}, [[] for _ in rows]
    for task in settings.tasks[1:]:
        task_columns, task_errors = _run_task(task, cutouts, rows, settings, writer)
        columns.update(task_columns)
        for galaxy_errors, error in zip(errors, task_errors):
            galaxy_errors.extend([error] if error else [])
    columns["errors"] = ["; ".join(galaxy_errors) for galaxy_errors in errors]
    return columns


# In a field's staging directory: each chunk's columns, and how far the field has got.
_CHUNKS, _PROGRESS = "chunks", "progress.json"


def _save_chunk(staging, number, columns, tasks):
    """The chunk's columns as typed arrays (``chunks/chunk-NNNNN.npz``), written atomically."""
    from ..io.writing import atomic_output

    dtypes = {name: "U" if dtype is str else dtype
              for task in tasks for name, dtype, _ in TASK_COLUMNS[task]}
    with atomic_output(staging / _CHUNKS / f"chunk-{number:05d}.npz", overwrite=True) as path, \
            open(path, "wb") as stream:
        np.savez(stream, **{name: np.array(values, dtype=dtypes[name])
                            for name, values in columns.items()})


def _load_chunk(staging, number):
    """A chunk's columns saved by an earlier run, or None."""
    path = staging / _CHUNKS / f"chunk-{number:05d}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        return {name: saved[name].tolist() for name in saved.files}


class _ChunkProgress:
    """Writes how far a field has got (``progress.json`` in its staging directory), which
    the batch's client shows."""

    def __init__(self, staging, total):
        self.path, self.total = staging / _PROGRESS, total
        self.done = self.resumed = 0
        self.start = time.monotonic()
        self.update(0)

    def update(self, galaxies, resumed=False):
        from ..io.writing import atomic_output

        self.done += galaxies
        self.resumed += galaxies if resumed else 0
        record = {"done": self.done, "total": self.total, "resumed": self.resumed,
                  "seconds": time.monotonic() - self.start}
        with atomic_output(self.path, overwrite=True) as temporary:
            temporary.write_text(json.dumps(record))


# Failures of the whole process or its set-up, not of one galaxy: they fail the field.
_SYSTEMIC_ERRORS = (MemoryError, MissingDependencyError, ModelTypeError, OSError,
                    FieldLimitError)


def _run_task(task, cutouts, rows, settings, writer):
    """A task's columns on a chunk of galaxies, and an error message per galaxy ('' if none).

    A failure inside one galaxy's measurement (a third-party fitter's bug, a
    degenerate image) costs that galaxy's columns of this task, which are
    left blank (`blank_values`), and never the field.
    """
    runner = _TASK_RUNNERS[task]
    try:
        return runner(cutouts, rows, settings, writer), [""] * len(rows)
    except _SYSTEMIC_ERRORS:
        raise
    except Exception:  # noqa: BLE001  (find which galaxies fail, one at a time)
        pass
    columns, errors = {}, []
    for k in range(len(rows)):
        try:
            one, error = runner(cutouts[k:k + 1], rows[k:k + 1], settings, writer), ""
        except _SYSTEMIC_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001
            one = {name: [value] for name, value in blank_values(task).items()}
            error = f"{task}: {type(exc).__name__}: {_one_line(exc)}"[:_ERROR_LENGTH]
        for name, values in one.items():
            columns.setdefault(name, []).extend(values)
        errors.append(error)
    return columns, errors


_ERROR_LENGTH = 200


def blank_values(task):
    """The values of a task's columns for a galaxy it could not measure.

    NaN for numbers, ``False`` for decisions, ``''`` for file names and -1
    (every bit set) for flags.
    """
    blanks = {float: np.nan, bool: False, str: "", np.int32: -1, int: -1}
    return {name: blanks[dtype] for name, dtype, _ in TASK_COLUMNS[task]}


def _catalog_table(tasks, columns, job=None):
    """The catalogue's columns for ``tasks``, typed as `TASK_COLUMNS` says, from lists of
    values (none: an empty catalogue), with the field's identifiers from ``job``."""
    n_rows = len(columns.get("galaxy", []))
    table = QTable()
    for name, dtype, _ in _FIELD_COLUMNS:
        table[name] = np.full(n_rows, job[name] if job else 0, dtype)
    for task in tasks:
        for name, dtype, unit in TASK_COLUMNS[task]:
            values = np.array(columns.get(name, []), dtype="U" if dtype is str else dtype)
            table[name] = values * unit if unit is not None else values
    return table


@dataclass(frozen=True)
class _FieldWriter:
    """Writes a field's FITS products into its staging directory."""

    staging: Path
    name: str
    settings: BatchSettings

    def stamp(self, hdulist, kind, galaxy, inputs):
        """Write one galaxy's image of ``kind``; its path relative to the output directory."""
        from ..io.writing import write_fits

        add_config_cards(hdulist[0].header, self.settings.config, self.settings.tasks)
        filename = f"galaxy-{int(galaxy):05d}.fits"
        # Overwrite: a galaxy may be written again when its chunk is redone one by one.
        write_fits(hdulist, self.staging / kind / filename, inputs=inputs, overwrite=True)
        return f"fields/{self.name}/{kind}/{filename}"


def _cutouts_task(cutouts, rows, settings, writer):
    return {"stamp": [writer.stamp(cutout.to_hdulist(), "stamps", row["id"], cutout.inputs)
                      for cutout, row in zip(cutouts, rows)]}


def _model(task, path):
    """The task's model, loaded once per process: the shipped one, or ``path``."""
    key = (task, path)
    if key not in _MODELS:
        if task == "restore":
            from ..gan import GalaxyGAN as model_class
        elif task == "psfgan":
            from ..gan import PSFGAN as model_class
        else:
            from ..mergers import MergerClassifier as model_class
        _MODELS[key] = model_class.load(path) if path else model_class.pretrained()
    return _MODELS[key]


def _restore_task(cutouts, rows, settings, writer):
    parameters = settings.config["restore"]
    model = _model("restore", parameters["model"])
    restored = model.recover([cutout.select(model.bands) for cutout in cutouts],
                             fwhm=parameters["fwhm"], samples=parameters["samples"] or None)
    return {"restored_stamp": [
        writer.stamp(image.to_hdulist(), "restored", row["id"], image.inputs)
        for image, row in zip(restored, rows)]}


def _psfgan_task(cutouts, rows, settings, writer):
    parameters = settings.config["psfgan"]
    model = _model("psfgan", parameters["model"])
    band = parameters["band"]
    hosts, table = model.remove_point_source([cutout.select([band]) for cutout in cutouts],
                                             band=band)
    columns = {name: list(np.asarray(table[name].value))  # magnitudes are not Quantities
               for name, _, unit in TASK_COLUMNS["psfgan"] if unit is not None}
    columns["ps_detected"] = list(table["ps_detected"])
    columns["ps_snr"] = list(table["ps_snr"])
    columns["psfgan_flags"] = list(table["flags"])
    columns["host_stamp"] = [
        writer.stamp(host.to_hdulist(), "hosts", row["id"], host.inputs) if parameters["write"]
        else "" for host, row in zip(hosts, rows)]
    return columns


def _morphology_task(cutouts, rows, settings, writer):
    from ..morphology import nonparametric_morphology

    table = nonparametric_morphology(cutouts, band=settings.config["morphology"]["band"])
    columns = {name: list(table[name]) for name, _, _ in TASK_COLUMNS["morphology"]
               if name in table.colnames}
    columns["morphology_flags"] = list(table["flags"])
    return columns


def _mergers_task(cutouts, rows, settings, writer):
    model = _model("mergers", settings.config["mergers"]["model"])
    table = model.predict(cutouts)
    threshold = model.card.get("decision_threshold", 0.5)
    return {"p_merger": list(table["p_merger"]),
            "merger": list(np.asarray(table["p_merger"]) >= threshold)}


_TASK_RUNNERS = {"cutouts": _cutouts_task, "restore": _restore_task, "psfgan": _psfgan_task,
                 "morphology": _morphology_task, "mergers": _mergers_task}


def _write_field(job, settings, files, catalog, table, staging, caught):
    """The field's table (ECSV) and record (``field.json``: written last, it marks completion)."""
    from .. import __version__

    inputs = [str(path) for path in (*files.frames.values(), files.psfield, *files.fpm.values())]
    table.meta = {"field": job["name"], "tasks": list(settings.tasks),
                  "config": settings.config, "inputs": inputs, "galaxyml_version": __version__,
                  "selection": dict(catalog.meta.get("selection", {}))}
    table.write(staging / "galaxies.ecsv", format="ascii.ecsv")
    record = {"field": job["name"], "run": job["run"], "camcol": job["camcol"],
              "field_number": job["field"], "rerun": job["rerun"], "n_galaxies": len(table),
              "tasks": list(settings.tasks), "config_hash": config_hash(settings.config),
              "inputs": inputs, "selection": table.meta["selection"],
              "warnings": _warning_counts(caught), "galaxyml_version": __version__}
    (staging / "field.json").write_text(json.dumps(record, indent=1, default=int))


def _warning_counts(caught, limit=20):
    """``{"Category: message": count}`` of the warnings a field raised, the first ``limit``."""
    counts = {}
    for warning in caught:
        key = f"{warning.category.__name__}: {' '.join(str(warning.message).split())}"
        if key in counts or len(counts) < limit:
            counts[key] = counts.get(key, 0) + 1
    return counts


def _commit(staging, final):
    """Rename the staging directory into place; a field another run completed meanwhile wins."""
    if final.is_symlink() or (final.exists() and not (final / "field.json").is_file()):
        remove_owned_directory(final)  # galaxyml's incomplete directory; anything else stays
    try:
        os.replace(staging, final)
    except OSError:
        if not (final / "field.json").is_file():
            raise


def check_tasks(tasks):
    """The tasks as a tuple in running order, ``catalog`` first; unknown names raise."""
    if isinstance(tasks, str):
        tasks = [task.strip() for task in tasks.split(",") if task.strip()]
    unknown = [task for task in tasks if task not in TASKS]
    if unknown:
        raise InvalidParameterError(f"unknown task(s) {unknown}; the tasks are {TASKS}")
    return tuple(task for task in TASKS if task in tasks or task == "catalog")
