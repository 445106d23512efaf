#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate quantized NIHT against float32 NIHT and CLEAN on simulated skies.

A LOFAR-like low-band station images skies of point and compact Gaussian
sources from noisy visibilities; NIHT runs on the float32 matrix and on the
matrix and data quantized to 8, 4 and 2 bits, CLEAN on the same data.
Writes the per-sky runs and the summary as ECSV tables and a figure.

Example (the default: 96 antennas, 150 MHz, 64 x 64 pixels of 1 degree)::

    python scripts/evaluate_iht.py --n-skies 10 --output iht-evaluation
"""

import argparse
import sys
from pathlib import Path

from astropy import units as u

from galaxyml.io.writing import atomic_output
from galaxyml.radio import (MeasurementOperator, SkyGrid, evaluate_iht, lofar_station_layout,
                            plot_iht_comparison, summarize_iht)
from galaxyml.visualization import save_figure


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-antennas", type=int, default=96)
    parser.add_argument("--radius", type=float, default=40.0, help="station radius in m")
    parser.add_argument("--frequency", type=float, default=150.0, help="MHz")
    parser.add_argument("--grid", type=int, default=64, help="pixels on a side")
    parser.add_argument("--pixel-scale", type=float, default=1.0, help="degrees")
    parser.add_argument("--n-skies", type=int, default=10)
    parser.add_argument("--n-point", type=int, default=20)
    parser.add_argument("--n-gaussian", type=int, default=5)
    parser.add_argument("--snr", type=float, default=1.0,
                        help="rms visibility over rms noise, per visibility")
    parser.add_argument("--bits", default="32,8,4,2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("iht-evaluation"))
    parser.add_argument("--overwrite", action="store_true")
    return parser


def build_operator(args):
    antennas = lofar_station_layout(args.n_antennas, radius=args.radius * u.m, seed=args.seed)
    grid = SkyGrid(args.grid, args.pixel_scale * u.deg)
    return MeasurementOperator(antennas, args.frequency * u.MHz, grid)


def run(args, progress=True):
    """Evaluate and write the tables and the figure; return the summary."""
    operator = build_operator(args)
    bits = tuple(int(b) for b in args.bits.split(","))
    runs, examples = evaluate_iht(operator, n_skies=args.n_skies, bits=bits, snr=args.snr,
                                  n_point=args.n_point, n_gaussian=args.n_gaussian,
                                  seed=args.seed, progress=progress)
    summary = summarize_iht(runs)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, table in (("iht_runs.ecsv", runs), ("iht_summary.ecsv", summary)):
        with atomic_output(args.output / name, overwrite=args.overwrite) as temporary:
            table.write(temporary, format="ascii.ecsv")
    save_figure(plot_iht_comparison(summary, examples), args.output / "iht_comparison.png",
                overwrite=args.overwrite)
    return summary


def main(argv=None):
    args = parser().parse_args(argv)
    summary = run(args)
    print(f"{args.n_skies} skies, {build_operator(args)}")
    columns = ["method", "mean_error", "error_ratio", "support_recovery", "iterations",
               "matrix_bytes", "memory_reduction", "seconds_per_iteration", "speedup"]
    summary[[c for c in columns if c in summary.colnames]].pprint(max_width=200)
    print(f"written: {args.output}/iht_runs.ecsv, iht_summary.ecsv, iht_comparison.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
