#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: batch processing of 16 simulated SDSS fields plus the real field 2583-2-136.

Runs the same batch (tasks catalog, cutouts, morphology) serially, in 2 local
processes and on a 2-worker Dask LocalCluster, each in a fresh interpreter and
a fresh output directory, and reports fields per minute, the scaling
efficiency (serial time / (2 x parallel time)), the peak resident memory of
each worker, and the overhead per field of each parallel path against serial
(wall time x workers minus the serial wall time, per field) with the ratio of
the fields' own compute times to serial.  A second,
light batch (task catalog only, on the 16 simulated fields) shows where a
field's work is too small for parallelism to pay.  Prints the figures and
writes them to JSON.

    python benchmarks/bench_batch.py [--field-dir DIR] [--n-simulated 16]
        [--max-galaxies 10] [--output benchmarks/results/bench_batch.json]
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import field_files, field_parser, run_case, run_requested_case, \
    write_results  # noqa: E402

EXECUTORS = ("serial", "processes", "dask")
WORKERS = 2


def simulate(directory, n_fields):
    """``n_fields`` simulated g, r, i fields of the default size, 30 galaxies each."""
    from galaxyml.datasets import simulate_sdss_field

    return [simulate_sdss_field(directory, bands="gri", n_galaxies=30, n_stars=15, field=field,
                                seed=field).files for field in range(1, n_fields + 1)]


def run(fields_json, mirrors_json, tasks, executor, output, max_galaxies):
    """One batch in this (fresh) process: its wall time and the manifest's figures."""
    import time

    from galaxyml.batch import run_batch

    fields = [tuple(field) for field in json.loads(fields_json)]
    config = {"catalog": {"mag_range": [14.0, 19.0], "max_galaxies": int(max_galaxies)}}
    start = time.perf_counter()
    manifest, catalog = run_batch(fields, mirror=json.loads(mirrors_json), tasks=tasks,
                                  executor=executor, workers=WORKERS, output=output,
                                  config=config, download=False, quiet=True)
    wall = time.perf_counter() - start
    peaks = {}
    for worker, peak in zip(manifest["worker"], manifest["peak_memory"].value):
        peaks[worker] = max(peaks.get(worker, 0.0), float(peak))
    return {"seconds": wall, "n_fields": len(manifest),
            "states": sorted(set(manifest["state"])), "n_galaxies": len(catalog),
            "compute_seconds": float(np.sum(manifest["seconds"].value)),
            "real_field_seconds": float(np.sum(manifest["seconds"].value[manifest["run"] == 2583])),
            "peak_memory_mib_per_worker": sorted(peaks.values())}


def compare(fields, mirrors, tasks, max_galaxies, scratch):
    """Every executor on the same batch: their figures and the ratios to serial."""
    results = {}
    for executor in EXECUTORS:
        print(f"-- {tasks} on {len(fields)} fields, {executor}", flush=True)
        results[executor] = run_case(Path(__file__), "run", json.dumps(fields),
                                     json.dumps([str(m) for m in mirrors]), tasks, executor,
                                     Path(scratch) / f"{tasks}-{executor}", max_galaxies)
    serial = results["serial"]
    for executor, figures in results.items():
        figures["fields_per_minute"] = 60 * figures["n_fields"] / figures["seconds"]
        workers = 1 if executor == "serial" else WORKERS
        figures["speed_up"] = serial["seconds"] / figures["seconds"]
        figures["scaling_efficiency"] = figures["speed_up"] / workers
        # Worker-seconds spent beyond the serial run's, per field: start-up, scheduling,
        # idle workers at the end, and slower fields (compute_ratio).
        figures["overhead_per_field_s"] = (
            (figures["seconds"] * workers - serial["seconds"]) / figures["n_fields"])
        figures["compute_ratio"] = figures["compute_seconds"] / serial["compute_seconds"]
        print(f"{executor:9s} {figures['seconds']:7.1f} s  {figures['fields_per_minute']:6.1f} "
              f"fields/min  speed-up {figures['speed_up']:.2f}  efficiency "
              f"{figures['scaling_efficiency']:.2f}  overhead {figures['overhead_per_field_s']:.2f}"
              f" s/field  field time x{figures['compute_ratio']:.2f}  peak memory per worker "
              f"{', '.join(f'{m:.0f}' for m in figures['peak_memory_mib_per_worker'])} MiB  "
              f"galaxies {figures['n_galaxies']}", flush=True)
    return results


def main(argv=None):
    if run_requested_case({"run": run}, argv):
        return 0
    parser = field_parser(__doc__, "bench_batch")
    parser.add_argument("--n-simulated", type=int, default=16)
    parser.add_argument("--max-galaxies", type=int, default=10,
                        help="galaxies per field (the brightest; statmorph takes seconds each)")
    args = parser.parse_args(argv)
    from galaxyml.datasets import EXAMPLE_FIELD

    with tempfile.TemporaryDirectory() as scratch:
        simulated = simulate(Path(scratch) / "mirror", args.n_simulated)
        fields = [[f.run, f.camcol, f.field] for f in simulated]
        mirrors = [Path(scratch) / "mirror"]
        real = field_files(args.field_dir, "gri")
        if real is not None:  # first, so that the longest field starts first
            fields.insert(0, list(EXAMPLE_FIELD))
            mirrors.append(real.psfield.parent)
        results = {"workers": WORKERS, "n_simulated": args.n_simulated,
                   "real_field": real is not None, "max_galaxies": args.max_galaxies,
                   "heavy": compare(fields, mirrors, "catalog,cutouts,morphology",
                                    args.max_galaxies, scratch),
                   "light": compare(fields[1:] if real is not None else fields, mirrors,
                                    "catalog", args.max_galaxies, scratch)}
    write_results(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
