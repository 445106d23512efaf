#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: multi-band cutouts from the real SDSS field 2583-2-136.

Reads the five bz2 frames once, then cuts aligned g, r, i stamps of 128x128
pixels around the brightest detected sources, and compares with a naive
baseline that opens the frame files again for every stamp, in the same run.
Prints the figures and writes them to JSON.

    python benchmarks/bench_cutouts.py [--field-dir DIR] [--n-stamps 100]
        [--n-baseline 10] [--output benchmarks/results/bench_cutouts.json]
"""

import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import field_files, field_parser, main_in_child, timed  # noqa: E402


def read_frames(files, bands):
    return files.read(bands)


def pick_positions(frame, n_stamps, size):
    """Sky positions of the brightest sources whose stamps lie inside the frame."""
    from galaxyml.datasets import source_catalog, sources_inside

    catalog = source_catalog(frame, deblend=False)
    return sources_inside(catalog, frame.shape, size)["sky_centroid"][:n_stamps]


def cut(frames_or_paths, positions, size):
    from galaxyml.io import multiband_cutout

    return [multiband_cutout(frames_or_paths, position, size, reference_band="r")
            for position in positions]


def traced_peak_mb(function, *args):
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def parser():
    parser = field_parser(__doc__, "bench_cutouts")
    parser.add_argument("--n-stamps", type=int, default=100)
    parser.add_argument("--n-baseline", type=int, default=10,
                        help="stamps cut by the naive baseline (it re-reads 3 frames per stamp)")
    parser.add_argument("--size", type=int, default=128)
    return parser


def measure(*argv):
    """The benchmark itself, run in a child process by `main`: its figures."""
    args = parser().parse_args(argv)
    files = field_files(args.field_dir, "ugriz")
    if files is None:
        return {"skipped": True}

    warnings.simplefilter("ignore")  # FITS header fixes are not what is measured

    frames, read_seconds = timed(read_frames, files, "ugriz")
    print(f"read 5 bz2 frames with psField and fpM: {read_seconds:.2f} s "
          f"({read_seconds / 5:.2f} s per frame)")
    gri = {band: frames[band] for band in "gri"}
    positions = pick_positions(frames["r"], args.n_stamps, args.size)
    n_stamps = len(positions)

    cut(gri, positions[:3], args.size)  # warm-up: imports and caches
    stamps, cut_seconds = timed(cut, gri, positions, args.size)
    rate = n_stamps / cut_seconds
    print(f"galaxyml: {n_stamps} g,r,i stamps of {args.size}x{args.size} in {cut_seconds:.2f} s"
          f" = {rate:.1f} stamps/s (target >= 20)")

    paths = {band: files.frames[band] for band in "gri"}
    n_baseline = min(args.n_baseline, n_stamps)
    _, baseline_seconds = timed(cut, paths, positions[:n_baseline], args.size)
    baseline_rate = n_baseline / baseline_seconds
    print(f"naive baseline (re-opens the frames per stamp): {n_baseline} stamps in "
          f"{baseline_seconds:.2f} s = {baseline_rate:.2f} stamps/s")
    print(f"speed-up over the baseline: {rate / baseline_rate:.0f}x")

    n_traced = min(20, n_stamps)
    cut_peak = traced_peak_mb(cut, gri, positions[:n_traced], args.size)
    baseline_peak = traced_peak_mb(cut, paths, positions[:2], args.size)
    print(f"peak traced memory: cutting {n_traced} stamps {cut_peak:.0f} MiB, "
          f"baseline per 2 stamps {baseline_peak:.0f} MiB")

    mask_fraction = float(np.mean([stamp.mask.mean() for stamp in stamps]))
    results = {
        "benchmark": "bench_cutouts",
        "field": "2583-2-136",
        "stamp_size": args.size, "bands": "gri",
        "read_five_frames_s": read_seconds,
        "n_stamps": n_stamps, "cut_s": cut_seconds, "stamps_per_s": rate,
        "target_stamps_per_s": 20, "meets_target": rate >= 20,
        "baseline_n_stamps": n_baseline, "baseline_s": baseline_seconds,
        "baseline_stamps_per_s": baseline_rate, "speedup_vs_baseline": rate / baseline_rate,
        "cut_peak_traced_mib": cut_peak, "cut_peak_traced_n_stamps": n_traced,
        "baseline_peak_traced_mib_per_2_stamps": baseline_peak,
        "mean_masked_fraction": mask_fraction,
    }
    return results


def main(argv=None):
    return main_in_child(__file__, "cutouts", measure, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
