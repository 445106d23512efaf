#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: AGN light-curve simulation and structure functions.

Side by side in one run, each case in a fresh process so that its peak
memory (resident set size) is its own:

(a) E13 with the fiducial log-normal ERDF and bending power-law PSD, N = 1e5
    and 1e6 points, 200 iterations (rtol = 0 forces all of them);
(b) Timmer-Koenig with a red-noise-leak factor of 100 for N = 1e6, against
    stingray's ``Simulator`` with the same settings (power law of index 2);
(c) the structure function of a 2^22-point curve at every lag;
(d) the Sartori et al. fiducial set-up: 2^22 points at 100-day steps,
    broken power-law ERDF, 200 E13 iterations.

    python benchmarks/bench_variability.py [--output benchmarks/results/bench_variability.json]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import run_case, run_requested_case, write_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def case_imports():
    import galaxyml.variability  # noqa: F401


def case_e13(n_points, erdf="lognormal", dt_days=100):
    from astropy import units as u

    from galaxyml.variability import (BendingPowerLawPSD, BrokenPowerLawERDF, LogNormalERDF,
                                      emmanoulopoulos)
    distribution = LogNormalERDF() if erdf == "lognormal" else BrokenPowerLawERDF()
    curves = emmanoulopoulos(BendingPowerLawPSD(), distribution, int(n_points),
                             float(dt_days) * u.day, rtol=0.0, max_iterations=200, seed=1)
    assert curves.n_iterations[0] == 200


def case_tk(n_points, dtype="float32"):
    import numpy as np
    from astropy import units as u

    from galaxyml.variability import PowerLawPSD, timmer_koenig
    timmer_koenig(PowerLawPSD(index=2.0), int(n_points), 1 * u.day, red_noise_leak=100, seed=1,
                  dtype=np.dtype(dtype))


def case_stingray(n_points):
    import warnings
    warnings.simplefilter("ignore")
    from stingray.simulator.simulator import Simulator
    Simulator(dt=1.0, N=int(n_points), mean=0.0, rms=1.0, red_noise=100,
              random_state=1).simulate(2.0)


def case_sf(n_points):
    from astropy import units as u

    from galaxyml.variability import BendingPowerLawPSD, structure_function, timmer_koenig
    curve = timmer_koenig(BendingPowerLawPSD(), int(n_points), 100 * u.day, seed=1)[0]
    start = time.perf_counter()
    structure_function(curve, 100 * u.day)
    return time.perf_counter() - start


CASES = {"imports": case_imports, "e13": case_e13, "tk": case_tk, "stingray": case_stingray,
         "sf": case_sf}


def _after_imports(name, case):
    """``case`` with the imports done first (import time is not what is measured)."""
    def run(*arguments):
        case_imports()
        if name == "stingray":
            import stingray  # noqa: F401
        start = time.perf_counter()
        inner = case(*arguments)
        return inner if isinstance(inner, float) else time.perf_counter() - start
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path,
                        default=REPO / "benchmarks" / "results" / "bench_variability.json")
    parser.add_argument("--skip-sartori", action="store_true",
                        help="leave out the 2^22-point, 200-iteration fiducial run")
    if run_requested_case({name: _after_imports(name, case)
                           for name, case in CASES.items()}, argv):
        return 0
    args = parser.parse_args(argv)

    results = {"benchmark": "bench_variability"}
    baseline = run_case(__file__, "imports")["peak_rss_mib"]
    results["interpreter_and_imports_rss_mib"] = baseline
    print(f"interpreter with numpy, scipy, astropy imported: {baseline:.0f} MiB resident")

    for n in (100_000, 1_000_000):
        figures = run_case(__file__, "e13", n)
        results[f"e13_lognormal_n{n}_200it"] = figures
        print(f"(a) E13 log-normal ERDF, bending PSD, N={n:.0e}, 200 iterations: "
              f"{figures['seconds']:.1f} s, peak RSS {figures['peak_rss_mib']:.0f} MiB"
              + (" (target < 20 s, < 1024 MiB)" if n == 1_000_000 else ""))

    ours = run_case(__file__, "tk", 1_000_000, "float32")
    ours64 = run_case(__file__, "tk", 1_000_000, "float64")
    try:
        theirs = run_case(__file__, "stingray", 1_000_000)
    except subprocess.CalledProcessError as exc:
        theirs = None
        print(f"(b) stingray could not run (exit status {exc.returncode}, its error is "
              "above); install it with pip install stingray")
    results["tk_leak100_n1e6_float32"] = ours
    results["tk_leak100_n1e6_float64"] = ours64
    print(f"(b) galaxyml TK, red-noise leak 100, N=1e6: float32 {ours['seconds']:.1f} s, "
          f"{ours['peak_rss_mib']:.0f} MiB; float64 {ours64['seconds']:.1f} s, "
          f"{ours64['peak_rss_mib']:.0f} MiB")
    if theirs is not None:
        results["stingray_leak100_n1e6"] = theirs
        speed = theirs["seconds"] / ours["seconds"]
        memory = (theirs["peak_rss_mib"] - baseline) / (ours["peak_rss_mib"] - baseline)
        results["tk_speedup_vs_stingray"] = speed
        results["tk_memory_ratio_vs_stingray"] = memory
        print(f"    stingray Simulator: {theirs['seconds']:.1f} s, "
              f"{theirs['peak_rss_mib']:.0f} MiB -> galaxyml is {speed:.1f}x faster and uses "
              f"1/{memory:.1f} of the memory above the interpreter (target >= 3x, <= 1/5)")

    sf = run_case(__file__, "sf", 2 ** 22)
    results["sf_n2e22"] = sf
    print(f"(c) structure function of 2^22 points, every lag, binned: {sf['seconds']:.1f} s, "
          f"peak RSS {sf['peak_rss_mib']:.0f} MiB")

    if not args.skip_sartori:
        fiducial = run_case(__file__, "e13", 2 ** 22, "brokenpowerlaw", 100)
        results["sartori_fiducial_n2e22_200it"] = fiducial
        print(f"(d) Sartori fiducial (2^22 points at 100 d, broken power-law ERDF, 200 "
              f"iterations): {fiducial['seconds']:.1f} s, peak RSS "
              f"{fiducial['peak_rss_mib']:.0f} MiB")

    write_results(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
