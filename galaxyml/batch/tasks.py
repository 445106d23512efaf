# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""What a batch does to one field: find, read, select galaxies, cut them, run the tasks.

`process_field` runs in the worker (the client process, a local process or
a Dask worker).  It writes the field's products into a hidden staging
directory and renames it into place when everything is written: a field's
directory exists complete or not at all, whatever kills the worker.
"""

import json
import os
import resource
import secrets
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

from ..exceptions import InvalidParameterError, SDSSDataNotFoundError
from .config import TASKS, add_config_cards

__all__ = ["BatchSettings", "FIELD_STATES", "TASK_COLUMNS", "process_field", "field_directory",
           "field_is_done", "models_loaded"]

#: States of a field in the manifest.
FIELD_STATES = ("done", "failed", "missing", "pending")

#: The catalogue columns each task adds: (name, dtype, unit).  Fixed, so that a field
#: without galaxies has the same columns as the others.
TASK_COLUMNS = {
    "catalog": [("galaxy", int, None), ("ra", float, u.deg), ("dec", float, u.deg),
                ("x", float, u.pix), ("y", float, u.pix), ("flux", float, u.nanomaggy),
                ("mag", float, u.ABmag), ("fwhm", float, u.pix), ("size_ratio", float, None),
                ("elongation", float, None)],
    "cutouts": [("stamp", str, None)],
    "restore": [("restored_stamp", str, None)],
    "psfgan": [("ps_flux", float, u.nanomaggy), ("ps_flux_err", float, u.nanomaggy),
               ("ps_mag", float, u.ABmag), ("ps_mag_err", float, u.mag),
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
    """Whether the field's products are complete (its directory holds ``field.json``)."""
    return (field_directory(output, name) / "field.json").is_file()


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
    from ..datasets import galaxy_catalog, sdss_field_files
    from ..psf import psfield_fwhm

    config, name = settings.config, job["name"]
    files = sdss_field_files(job["run"], job["camcol"], job["field"], bands=config["bands"],
                             rerun=job["rerun"], data_dirs=list(settings.mirror),
                             download=settings.download, show_progress=False,
                             download_dir=settings.download_dir)
    frames = files.read()
    selection = config["catalog"]
    detection = selection["detection_band"]
    catalog = galaxy_catalog(
        frames, detection_band=detection, size=config["size"],
        mag_range=tuple(selection["mag_range"]), psf_fwhm=psfield_fwhm(files.psfield, detection),
        min_size_ratio=selection["min_size_ratio"],
        max_neighbour_flux_ratio=selection["max_neighbour_flux_ratio"],
        max_masked_fraction=selection["max_masked_fraction"], nsigma=selection["nsigma"])
    if selection["max_galaxies"] > 0:
        catalog = catalog[:selection["max_galaxies"]]
    catalog.sort("id")  # a stable order, whatever the selection's

    final = field_directory(settings.output, name)
    staging = final.with_name(f".{name}.partial-{secrets.token_hex(4)}")
    staging.mkdir(parents=True)
    try:
        table = _run_tasks(job, settings, frames, catalog, _FieldWriter(staging, name, settings))
        note = "" if len(table) else (
            f"no galaxy passed the selection ({_counts(catalog.meta['selection'])})")
        _write_field(job, settings, files, catalog, table, staging, caught)
        _commit(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return len(table), note


def _counts(selection):
    return ", ".join(f"{step} {count}" for step, count in selection.items())


def _run_tasks(job, settings, frames, catalog, writer):
    """The field's table: its galaxies, chunk by chunk, with every task's columns."""
    from ..io import multiband_cutout

    config = settings.config
    columns = {name: [] for task in settings.tasks for name, _, _ in TASK_COLUMNS[task]}
    for row in catalog:
        columns["galaxy"].append(int(row["id"]))
        for name in ("ra", "dec", "x", "y", "flux", "mag", "fwhm", "size_ratio", "elongation"):
            columns[name].append(float(getattr(row[name], "value", row[name])))
    chunk_size = max(1, config["chunk_size"])
    for start in range(0, len(catalog), chunk_size):
        rows = catalog[start:start + chunk_size]
        cutouts = [multiband_cutout(frames, row["sky_centroid"], config["size"],
                                    reference_band=config["reference_band"], mode="strict")
                   for row in rows]
        for task in settings.tasks[1:]:
            for name, values in _TASK_RUNNERS[task](cutouts, rows, settings, writer).items():
                columns[name].extend(values)
    return _catalog_table(settings.tasks, columns, job)


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
        write_fits(hdulist, self.staging / kind / filename, inputs=inputs)
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
    from .config import config_hash

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
    if final.exists() and not (final / "field.json").is_file():
        shutil.rmtree(final)  # an incomplete directory left by hand or an older layout
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
