#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: PSFGAN against the two-component parametric fit, galaxies per second.

On r-band stamps (128 x 128 by default) of galaxies of the real SDSS field
2583-2-136 with an artificial point source of contrast 3 (psField PSF), each case
in its own process for its own peak memory, in one run:

* PSFGAN end to end (`PSFGAN.remove_point_source`: the host image, the
  detection, the calibrated photometry of the point source and of the host),
  one galaxy per call (batch 1) and 32 per call (batch 32), with the time split
  between preparing the inputs (errors, position, PSF), the network's inputs
  (the refine mode's PSF fit), the network, and the detection and photometry;
* the network alone (generator and stretch), batch 1 and 32;
* the point source + Sérsic fit (`fit_point_source_sersic`), one galaxy per call.

Prints galaxies per second, peak RSS and the ratios to the fit, and writes
them to JSON.

    python benchmarks/bench_psfgan.py [--field-dir DIR] [--n-galaxies 64]
        [--stamp-size 128] [--output benchmarks/results/bench_psfgan.json]
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import (field_galaxies, field_parser, run_case, run_requested_case,  # noqa: E402
                      timed, write_results)

BATCH = 32
FIT_GALAXIES = 16


def stamps(field_dir, n_galaxies, size):
    """``n_galaxies`` one-band cutouts with a point source of contrast 3, or None."""
    from galaxyml.datasets import make_psfgan_pairs

    field = field_galaxies(field_dir, "r", (12.0, 20.0), int(size))
    if field is None:
        return None
    files, frames, catalog = field
    catalog = catalog[:n_galaxies]
    pairs = make_psfgan_pairs(frames, files.psfield, catalog=catalog, size=int(size),
                              contrasts=[3.0], test_fraction=0.5, guard=0.0, progress=False)
    return [pairs.linear_pair(k)[0] for k in range(min(n_galaxies, len(pairs)))]


def shipped_model_and_stamps(field_dir, n_galaxies, size):
    """The shipped PSFGAN and the stamps (None where the real field is absent)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from galaxyml.gan import PSFGAN

    return PSFGAN.pretrained(), stamps(field_dir, int(n_galaxies), size)


def psfgan_case(field_dir, n_galaxies, size, batch):
    import galaxyml.gan.psfgan as module

    model, cutouts = shipped_model_and_stamps(field_dir, n_galaxies, size)
    if cutouts is None:
        return {"skipped": True}
    batch = int(batch)
    model.remove_point_source(cutouts[:batch])  # trace the generator, warm the caches
    # Time the stages by wrapping the functions remove_point_source calls.
    stages = {"prepare": 0.0, "network inputs": 0.0, "network": 0.0,
              "detection and photometry": 0.0}
    originals = {"prepare": module.prepare_agn_images,
                 "network inputs": model._network_inputs, "network": model._draws,
                 "detection and photometry": module.decide_and_measure}

    def timer(name):
        def wrapped(*args, **kwargs):
            result, seconds = timed(originals[name], *args, **kwargs)
            stages[name] += seconds
            return result
        return wrapped

    module.prepare_agn_images = timer("prepare")
    model._network_inputs = timer("network inputs")
    model._draws = timer("network")
    module.decide_and_measure = timer("detection and photometry")
    start = time.perf_counter()
    for first in range(0, len(cutouts), batch):
        model.remove_point_source(cutouts[first:first + batch])
    seconds = time.perf_counter() - start
    return {"n_galaxies": len(cutouts), "batch": batch, "seconds": seconds,
            "galaxies_per_s": len(cutouts) / seconds,
            "stage_seconds_per_galaxy": {k: v / len(cutouts) for k, v in stages.items()}}


def network_case(field_dir, n_galaxies, size, batch):
    from galaxyml.morphology import prepare_agn_images

    model, cutouts = shipped_model_and_stamps(field_dir, n_galaxies, size)
    if cutouts is None:
        return {"skipped": True}
    batch = int(batch)
    prepared, _ = prepare_agn_images(cutouts, window=model.window)
    boxes = [model._box(item) for item in prepared]
    cut = np.stack([box.cut(item.data) for item, box in zip(prepared, boxes)])
    positions = np.array([box.to_box(item.x, item.y) for item, box in zip(prepared, boxes)])
    tiles = list(model._network_inputs(prepared, cut, positions))

    def network(chunk):
        return [model._from_network(out) for out in model._draws(chunk, 0, batch)[0]]

    network(tiles[:batch])
    start = time.perf_counter()
    for first in range(0, len(tiles), batch):
        network(tiles[first:first + batch])
    seconds = time.perf_counter() - start
    return {"n_galaxies": len(tiles), "batch": batch, "seconds": seconds,
            "galaxies_per_s": len(tiles) / seconds}


def fit_case(field_dir, n_galaxies, size):
    from galaxyml.morphology import fit_point_source_sersic

    cutouts = stamps(field_dir, int(n_galaxies), size)
    if cutouts is None:
        return {"skipped": True}
    start = time.perf_counter()
    table = [fit_point_source_sersic(c)[1] for c in cutouts]
    seconds = time.perf_counter() - start
    return {"n_galaxies": len(cutouts), "seconds": seconds,
            "galaxies_per_s": len(cutouts) / seconds,
            "failed": int(sum(int(t["flags"][0]) & (16 | 128) > 0 for t in table))}


def parser():
    parser = field_parser(__doc__, "bench_psfgan")
    parser.add_argument("--n-galaxies", type=int, default=64)
    parser.add_argument("--stamp-size", type=int, default=128)
    return parser


def main(argv=None):
    cases = {"psfgan": psfgan_case, "network": network_case, "fit": fit_case}
    if run_requested_case(cases, argv):
        return 0
    args = parser().parse_args(argv)
    field_dir = "-" if args.field_dir is None else str(args.field_dir)
    size = args.stamp_size
    results = {"benchmark": "bench_psfgan", "stamp_size": size, "contrast": 3.0}
    fit = run_case(__file__, "fit", field_dir, min(args.n_galaxies, FIT_GALAXIES), size)
    if fit.get("skipped"):
        return 0
    results["fit"] = fit
    print(f"point source + Sersic fit: {fit['galaxies_per_s']:.2f} galaxies/s "
          f"({1e3 / fit['galaxies_per_s']:.0f} ms each, {fit['failed']} of "
          f"{fit['n_galaxies']} flagged), peak RSS {fit['peak_rss_mib']:.0f} MiB")
    for name in ("network", "psfgan"):
        for batch in (1, BATCH):
            run = run_case(__file__, name, field_dir, args.n_galaxies, size, batch)
            run["speedup_over_fit"] = run["galaxies_per_s"] / fit["galaxies_per_s"]
            results[f"{name}_batch{batch}"] = run
            label = "PSFGAN network only" if name == "network" else "PSFGAN end to end"
            line = (f"{label}, batch {batch}: {run['galaxies_per_s']:.1f} galaxies/s "
                    f"({1e3 / run['galaxies_per_s']:.1f} ms each), "
                    f"{run['speedup_over_fit']:.0f}x the fit, peak RSS "
                    f"{run['peak_rss_mib']:.0f} MiB")
            if "stage_seconds_per_galaxy" in run:
                line += "; per galaxy: " + ", ".join(
                    f"{stage} {1e3 * value:.1f} ms"
                    for stage, value in run["stage_seconds_per_galaxy"].items())
            print(line)
    write_results(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
