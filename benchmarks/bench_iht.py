#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: quantized NIHT against float32 NIHT on a LOFAR-like station.

In one run, on the 2-core CPU:

* the whole comparison of `scripts/evaluate_iht.py` (recovery error, support
  recovery, iterations, memory of the matrix, seconds per iteration) for
  float32 and 8, 4, 2 bits, on a problem whose float32 matrix (143 MiB)
  is far larger than the CPU caches;
* the matrix pass alone (the gradient A^T r, which streams the whole
  matrix once per iteration): float32 BLAS against the packed kernels, on
  that problem and on a small one that fits in the caches.

Prints the figures and writes them to JSON, plus the summary table and the
figure beside it.

    python benchmarks/bench_iht.py [--n-skies 3] [--output benchmarks/results/bench_iht.json]
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _results import field_parser, main_in_child, seconds_per_call  # noqa: E402


def matrix_pass(operator, bits, repeats=20):
    """Seconds of one A^T r with float32 BLAS and with each packed bit width."""
    from galaxyml.lowprec import quantize_row_blocks

    residual = np.random.default_rng(0).normal(size=operator.shape[0]).astype(np.float32)
    times, nbytes = {}, {}
    matrix = operator.matrix(np.float32)
    times["float32"] = seconds_per_call(lambda: matrix.T @ residual, repeats)
    nbytes["float32"] = matrix.nbytes
    for width in bits:
        packed = quantize_row_blocks(operator.row_blocks(), width, seed=0)
        times[f"{width}-bit"] = seconds_per_call(lambda: packed.rmatvec(residual), repeats)
        nbytes[f"{width}-bit"] = packed.nbytes
    return times, nbytes


def _number(value):
    return float(getattr(value, "value", value))


def parser():
    parser = field_parser(__doc__, "bench_iht")
    parser.add_argument("--n-skies", type=int, default=3)
    return parser


def measure(*argv):
    """The benchmark itself, run in a child process by `main`: its figures."""
    import evaluate_iht
    from galaxyml.radio import MeasurementOperator, SkyGrid

    args = parser().parse_args(argv)
    script_args = evaluate_iht.parser().parse_args(
        ["--n-skies", str(args.n_skies), "--overwrite",
         "--output", str(args.output.parent / "bench_iht")])
    operator = evaluate_iht.build_operator(script_args)
    print(f"problem: {operator}, float32 matrix {operator.shape[0]} x {operator.shape[1]} = "
          f"{4 * operator.shape[0] * operator.shape[1] / 2 ** 20:.0f} MiB")

    summary = evaluate_iht.run(script_args, progress=False)
    print(f"NIHT over {args.n_skies} skies (SNR {script_args.snr} per visibility):")
    for row in summary:
        print(f"  {row['method']:13s} error {row['mean_error']:.3f} "
              f"(x{row['error_ratio']:.3f} float32), support {row['support_recovery']:.2f}, "
              f"{row['iterations']:.0f} iterations, matrix {row['matrix_bytes'].value / 2**20:7.1f}"
              f" MiB (1/{row['memory_reduction']:.2f}), "
              f"{1e3 * row['seconds_per_iteration'].value:.2f} ms/iteration "
              f"(x{row['speedup']:.2f} faster)")

    bits = (8, 4, 2, 1)
    large_times, large_bytes = matrix_pass(operator, bits)
    small = MeasurementOperator(operator.antennas[:24], operator.frequency,
                                SkyGrid(24, operator.grid.pixel_scale))
    small_times, small_bytes = matrix_pass(small, bits, repeats=200)
    for label, times, nbytes in (("large", large_times, large_bytes),
                                 ("small (in cache)", small_times, small_bytes)):
        print(f"matrix pass A^T r, {label}:")
        for name, seconds in times.items():
            print(f"  {name:8s} {1e3 * seconds:8.3f} ms  {nbytes[name] / 2 ** 20:8.2f} MiB  "
                  f"x{times['float32'] / seconds:.2f} vs float32")

    results = {
        "benchmark": "bench_iht", "problem": repr(operator), "n_skies": args.n_skies,
        "snr": script_args.snr,
        "summary": {row["method"]: {name: _number(row[name]) for name in summary.colnames
                                    if name != "method"} for row in summary},
        "matrix_pass_large_s": large_times, "matrix_pass_large_bytes": large_bytes,
        "matrix_pass_small_s": small_times, "matrix_pass_small_bytes": small_bytes,
        "small_problem": repr(small),
    }
    return results


def main(argv=None):
    return main_in_child(__file__, "iht", measure, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
