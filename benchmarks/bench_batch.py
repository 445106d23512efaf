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

With ``--robustness`` it instead runs every task with the default parameters
(every galaxy to r = 21) on ``--n-simulated`` simulated fields (400 x 500
pixels, 12 galaxies and 6 stars each) and the real field, serially and on a
2-worker Dask cluster: fields that fail, galaxies per field, galaxies whose
task failed, peak memory per worker; then kills the command (SIGKILL) at
``--kills`` random moments of a 6-field batch and reruns it: whether each
catalogue is identical to an uninterrupted run's, and the time each kill
cost.  Figures go to ``bench_batch_robustness.json``.

    python benchmarks/bench_batch.py --robustness --n-simulated 50 --kills 10

``--whole-frame`` measures the peak memory of `GalaxyGAN.recover` on the real
field's whole g, r, i frames, deterministic and with 4 dropout draws.
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


ALL_TASKS = "catalog,cutouts,restore,psfgan,morphology,mergers"


def run_defaults(fields_json, mirrors_json, executor, output):
    """Every task with the default parameters, in this (fresh) process: what it made."""
    import time

    from galaxyml.batch import run_batch

    start = time.perf_counter()
    manifest, catalog = run_batch([tuple(field) for field in json.loads(fields_json)],
                                  mirror=json.loads(mirrors_json), tasks=ALL_TASKS,
                                  executor=executor, workers=WORKERS, output=output,
                                  download=False, quiet=True)
    peaks = {}
    for worker, peak in zip(manifest["worker"], manifest["peak_memory"].value):
        peaks[worker] = max(peaks.get(worker, 0.0), float(peak))
    states = list(manifest["state"])
    galaxies = [int(n) for n in manifest["n_galaxies"]]
    errors = [str(error) for error in np.ma.filled(np.ma.asarray(catalog["errors"]), "")
              if error]
    return {"seconds": time.perf_counter() - start, "n_fields": len(states),
            "states": {state: states.count(state) for state in set(states)},
            "failures": [str(m) for m, s in zip(manifest["message"], states) if s != "done"],
            "galaxies_per_field": galaxies, "n_galaxies": len(catalog),
            "real_field_galaxies": [n for n, run in zip(galaxies, manifest["run"])
                                    if run == 2583],
            "selection": catalog.meta["selection"],
            "galaxies_with_errors": len(errors), "errors": sorted(set(errors))[:20],
            "peak_memory_mib_per_worker": sorted(peaks.values())}


def kill_and_resume(mirror, scratch, kills, seed=0):
    """``kills`` runs of the command killed (SIGKILL) at random moments, then rerun: whether
    each catalogue is identical to an uninterrupted run's, and the time each kill cost."""
    import random
    import signal
    import subprocess
    import time

    from astropy.table import Table

    def command(output):
        return [sys.executable, "-m", "galaxyml.cli", "batch", str(mirror), "--output",
                str(output), "--tasks", "catalog,cutouts,morphology", "--no-download",
                "--quiet"]

    def timed_run(output):
        start = time.perf_counter()
        subprocess.run(command(output), check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    def catalogue(output):
        return Table.read(output / "catalog.ecsv", format="ascii.ecsv")

    reference_seconds = timed_run(scratch / "kill-reference")
    reference = catalogue(scratch / "kill-reference")
    rng, trials = random.Random(seed), []
    for number in range(kills):
        output = scratch / f"kill-{number}"
        moment = rng.uniform(0.05, 0.95) * reference_seconds
        process = subprocess.Popen(command(output), stdout=subprocess.DEVNULL)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        rerun = timed_run(output)
        resumed = catalogue(output)
        same = _same_catalogue(resumed, reference)
        trials.append({"killed_after_s": moment, "rerun_s": rerun,
                       "lost_s": moment + rerun - reference_seconds, "identical": bool(same)})
        print(f"kill {number + 1}/{kills} after {moment:5.1f} s: rerun {rerun:5.1f} s, lost "
              f"{trials[-1]['lost_s']:5.1f} s, identical catalogue: {same}", flush=True)
    return {"reference_seconds": reference_seconds, "n_galaxies": len(reference),
            "trials": trials, "identical": sum(t["identical"] for t in trials),
            "mean_lost_s": float(np.mean([t["lost_s"] for t in trials]))}


def whole_frame(field_dir, samples):
    """GalaxyGAN's restoration of the real field's whole g, r, i frames (1489 x 2048), in this
    (fresh) process: its seconds (peak memory is the child's)."""
    import time

    from galaxyml.gan import GalaxyGAN

    files = field_files(None if field_dir == "-" else Path(field_dir), "gri")
    if files is None:
        return {"skipped": True}
    frames = files.read("gri")
    data = np.stack([np.nan_to_num(np.asarray(frames[band].data, float)) for band in "gri"])
    model = GalaxyGAN.pretrained()
    start = time.perf_counter()
    model.recover(data, fwhm=1.4, samples=int(samples) or None)
    return {"seconds": time.perf_counter() - start, "shape": list(data.shape)}


def whole_frames(field_dir):
    """Peak memory of whole-frame restorations, deterministic and with 4 dropout draws."""
    results = {}
    for samples in (0, 4):
        figures = run_case(Path(__file__), "whole_frame", field_dir or "-", samples)
        if figures.get("skipped"):
            return {"skipped": True}
        results[f"samples_{samples}"] = figures
        print(f"whole-frame restoration, samples={samples}: {figures['seconds']:.1f} s, peak "
              f"{figures['peak_rss_mib']:.0f} MiB", flush=True)
    return results


def _same_catalogue(a, b):
    """Whether two catalogues hold the same columns and values (NaN equal to NaN)."""
    if a.colnames != b.colnames or len(a) != len(b):
        return False
    for name in b.colnames:
        x, y = np.ma.filled(np.ma.asarray(a[name])), np.ma.filled(np.ma.asarray(b[name]))
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            return False
    return True


def robustness(args, scratch):
    """Every task with the defaults on many simulated fields and the real one, serially and
    on Dask; then kills and resumes."""
    from galaxyml.datasets import EXAMPLE_FIELD, simulate_sdss_field

    mirror = Path(scratch) / "robustness"
    for number in range(args.n_simulated):
        simulate_sdss_field(mirror, bands="gri", shape=(400, 500), n_galaxies=12, n_stars=6,
                            run=7001, camcol=2, field=number + 1, seed=40 + number)
    fields, mirrors = [[7001, 2, n + 1] for n in range(args.n_simulated)], [mirror]
    real = field_files(args.field_dir, "gri")
    if real is not None:
        fields.insert(0, list(EXAMPLE_FIELD))
        mirrors.append(real.psfield.parent)
    results = {"n_simulated": args.n_simulated, "real_field": real is not None,
               "tasks": ALL_TASKS}
    for executor in ("serial", "dask"):
        print(f"-- every task, default parameters, {len(fields)} fields, {executor}",
              flush=True)
        figures = run_case(Path(__file__), "defaults", json.dumps(fields),
                           json.dumps([str(m) for m in mirrors]), executor,
                           Path(scratch) / f"defaults-{executor}")
        galaxies = figures["galaxies_per_field"]
        print(f"{executor}: {figures['seconds']:.0f} s, states {figures['states']}, galaxies "
              f"per field {np.mean(galaxies):.1f} (min {min(galaxies)}, max {max(galaxies)}; "
              f"real field {figures['real_field_galaxies']}), galaxies with a task's error "
              f"{figures['galaxies_with_errors']}, peak memory per worker "
              f"{', '.join(f'{m:.0f}' for m in figures['peak_memory_mib_per_worker'])} MiB",
              flush=True)
        results[executor] = figures
    kill_mirror = Path(scratch) / "kill-mirror"
    for number in range(6):
        simulate_sdss_field(kill_mirror, bands="gri", shape=(400, 500), n_galaxies=12,
                            n_stars=6, run=7002, camcol=2, field=number + 1, seed=90 + number)
    print(f"-- {args.kills} kills and resumes of 6 fields (catalog,cutouts,morphology)",
          flush=True)
    results["kills"] = kill_and_resume(kill_mirror, Path(scratch), args.kills)
    return results


def main(argv=None):
    if run_requested_case({"run": run, "defaults": run_defaults, "whole_frame": whole_frame},
                          argv):
        return 0
    parser = field_parser(__doc__, "bench_batch")
    parser.add_argument("--n-simulated", type=int, default=16)
    parser.add_argument("--max-galaxies", type=int, default=10,
                        help="galaxies per field (the brightest; statmorph takes seconds each)")
    parser.add_argument("--robustness", action="store_true",
                        help="instead: every task with the default parameters on "
                             "--n-simulated fields and the real one, serially and on Dask, "
                             "then --kills kills and resumes")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--whole-frame", action="store_true",
                        help="instead: the peak memory of GalaxyGAN restoring the real "
                             "field's whole frames, with 0 and 4 dropout draws")
    args = parser.parse_args(argv)
    from galaxyml.datasets import EXAMPLE_FIELD

    if args.whole_frame:
        write_results(whole_frames(args.field_dir),
                      args.output.with_name("bench_batch_whole_frame.json"))
        return 0
    if args.robustness:
        with tempfile.TemporaryDirectory() as scratch:
            results = robustness(args, scratch)
        write_results(results, args.output.with_name("bench_batch_robustness.json"))
        return 0
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
