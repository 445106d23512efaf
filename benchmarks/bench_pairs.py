#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: GalaxyGAN training pairs from the real SDSS field 2583-2-136.

Selects the field's galaxies, cuts 128x128 g, r, i stamps and degrades each one
over the paper's 20 grid cells (FWHM 1.4-2.5 arcsec x sigma 1-10), stretched
for the network, as `TrainingPairs` streams them.  Reports pairs per second
end to end and the time split between cutting, convolution, noise, stretch
(each measured separately on the same stamps) and the rest of making a pair
(mostly propagating the uncertainty plane, a second convolution).  Prints the figures and writes
them to JSON.

    python benchmarks/bench_pairs.py [--field-dir DIR] [--size 128]
        [--output benchmarks/results/bench_pairs.json]
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import field_files, field_parser, main_in_child, timed  # noqa: E402


def stage_times(pairs, stamps):
    """Seconds spent convolving, adding noise and stretching, over every pair."""
    from galaxyml.degrade import convolve_image, galaxygan_kernel, noise_to_add
    from galaxyml.degrade import galaxygan_noise  # the recipe's own estimator

    kernels = {fwhm: galaxygan_kernel(fwhm) for fwhm in np.unique(pairs.manifest["fwhm"].value)}
    stretch = pairs.stretch
    rng = np.random.default_rng(0)
    seconds = {"convolve": 0.0, "noise": 0.0, "stretch": 0.0}
    for row in pairs.manifest:
        stamp = stamps[int(row["galaxy_id"])]
        for plane in stamp.data.astype(float):
            start = time.perf_counter()
            blurred, _ = convolve_image(plane, kernels[row["fwhm"].value])
            middle = time.perf_counter()
            added = noise_to_add(galaxygan_noise(blurred), row["sigma"] * galaxygan_noise(plane))
            noisy = blurred + rng.normal(0.0, added, plane.shape)
            end = time.perf_counter()
            stretch(noisy, warn=False)
            seconds["convolve"] += middle - start
            seconds["noise"] += end - middle
            seconds["stretch"] += time.perf_counter() - end
    return seconds


def parser():
    parser = field_parser(__doc__, "bench_pairs")
    parser.add_argument("--size", type=int, default=128)
    return parser


def measure(*argv):
    """The benchmark itself, run in a child process by `main`: its figures."""
    args = parser().parse_args(argv)
    files = field_files(args.field_dir, "gri")
    if files is None:
        return {"skipped": True}

    warnings.simplefilter("ignore")  # FITS header fixes are not what is measured
    from galaxyml.datasets import cut_galaxy_stamps, galaxy_catalog, make_galaxygan_pairs

    frames, read_seconds = timed(files.read, "gri")
    catalog, select_seconds = timed(galaxy_catalog, frames, size=args.size)
    print(f"read g, r, i frames: {read_seconds:.2f} s; galaxy selection: {select_seconds:.2f} s "
          f"({len(catalog)} galaxies, cuts {catalog.meta['selection']})")

    pairs, build_seconds = timed(make_galaxygan_pairs, frames, catalog=catalog, size=args.size,
                                 progress=False)
    n_pairs = len(pairs)
    _, make_seconds = timed(lambda: [pairs.pair(k) for k in range(n_pairs)])
    total = build_seconds + make_seconds
    rate = n_pairs / total
    n_galaxies = len(np.unique(pairs.manifest["galaxy_id"]))
    print(f"{n_pairs} pairs ({n_galaxies} galaxies x 20 cells, {args.size}x{args.size} g,r,i): "
          f"stamps cut in {build_seconds:.2f} s, pairs made in {make_seconds:.2f} s; "
          f"{rate:.1f} pairs/s end to end, {n_pairs / make_seconds:.1f} pairs/s once cut")

    stamps, cut_seconds = timed(cut_galaxy_stamps, frames, tuple("gri"), catalog, args.size, "r",
                                False)
    stages = stage_times(pairs, stamps)
    # Making a pair also propagates the uncertainty (a second convolution) and copies the WCS.
    stages["other"] = max(make_seconds - sum(stages.values()), 0.0)
    stages["cut"] = cut_seconds
    accounted = sum(stages.values())
    for name in ("cut", "convolve", "noise", "stretch", "other"):
        print(f"  {name:9s} {stages[name]:6.2f} s  {100 * stages[name] / accounted:5.1f}%  "
              f"({1e3 * stages[name] / n_pairs:.2f} ms per pair)")

    results = {
        "benchmark": "bench_pairs", "field": "2583-2-136",
        "stamp_size": args.size, "bands": "gri", "grid_cells": 20,
        "read_frames_s": read_seconds, "select_s": select_seconds,
        "n_galaxies": n_galaxies, "n_pairs": n_pairs, "selection": catalog.meta["selection"],
        "cut_stamps_s": build_seconds, "make_pairs_s": make_seconds,
        "pairs_per_s": rate, "pairs_per_s_once_cut": n_pairs / make_seconds,
        "stage_seconds": stages,
        "stage_fraction": {name: value / accounted for name, value in stages.items()},
    }
    return results


def main(argv=None):
    return main_in_child(__file__, "pairs", measure, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
