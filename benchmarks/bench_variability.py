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
    broken power-law ERDF, 200 E13 iterations;
(e) the observed light curve of NGC 4051 (``../shared/data/lightcurves``),
    side by side with DELCgen (Connolly 2015) where its Python 3 port
    ``DELCgen3.py`` is given (``--delcgen``; DELCgen is not on PyPI): the
    whole fit-and-simulate workflow as DELCgen's example runs it (bending
    power law with the low-frequency slope held at 1.1, gamma + log-normal
    PDF, 10 simulated curves), the fitted parameters, the simulated curves'
    mean, standard deviation and pooled KS test against the data, and E13 on
    1e5 points x 200 iterations; then the pulls of galaxyml's PSD errors over
    light curves simulated from the fitted model.

    python benchmarks/bench_variability.py [--delcgen DELCgen3.py] [--only-observed]
        [--output benchmarks/results/bench_variability.json]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import run_case, run_requested_case, write_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LIGHT_CURVE = REPO.parent / "shared" / "data" / "lightcurves" / "NGC4051.dat"


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


def _delcgen(path):
    """DELCgen3 imported from ``path``, with numpy's ``histogram(normed=)`` (removed in
    numpy 2) mapped to ``density=`` inside it."""
    import importlib.util
    import types

    import matplotlib
    import numpy as np
    matplotlib.use("Agg")
    spec = importlib.util.spec_from_file_location("DELCgen3", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Numpy(types.ModuleType):
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def histogram(*args, normed=None, **kwargs):
            if normed is not None:
                kwargs["density"] = normed
            return np.histogram(*args, **kwargs)

    module.np = Numpy("numpy")
    return module


def _simulation_summary(data, simulated):
    import numpy as np
    from scipy import stats
    simulated = np.atleast_2d(simulated)
    return {"data_mean": float(np.mean(data)), "data_std": float(np.std(data)),
            "sim_mean": float(simulated.mean()), "sim_std": float(simulated.std(axis=1).mean()),
            "pooled_ks_pvalue": float(stats.ks_2samp(data, simulated.ravel()).pvalue)}


def case_observed_galaxyml(path, n_curves=10, n_bootstrap=20):
    from astropy import units as u

    from galaxyml.variability import fit_light_curve
    start = time.perf_counter()
    model = fit_light_curve(path, fixed={"a_low": 1.1}, n_bootstrap=int(n_bootstrap))
    curves = model.simulate(int(n_curves), seed=1)
    seconds = time.perf_counter() - start
    fit = model.psd_fit
    psd = {name: [u.Quantity(value).value, u.Quantity(fit.errors[name]).value]
           for name, value in fit.params.items()}
    psd["constant"] = [fit.psd.constant, 0.0]
    return {"seconds": seconds, "psd": psd, "psresp_probability": fit.probability,
            "pdf": {name: [value, model.pdf.errors[name]]
                    for name, value in model.pdf.params.items()},
            **_simulation_summary(model.table["flux"].value, curves.values)}


def case_observed_delcgen(delcgen_path, path, n_curves=10):
    delcgen = _delcgen(delcgen_path)
    start = time.perf_counter()
    data = delcgen.Load_Lightcurve(path, 100)

    def fixed_bend(v, amplitude, v_bend, a_high, c):  # DELCgen's example's Fix_BL
        return delcgen.BendingPL(v, amplitude, v_bend, 1.1, a_high, c)

    data.Fit_PSD(initial_params=[1, 0.001, 2.5, 0], model=fixed_bend, verbose=False)
    data.Fit_PDF(verbose=False)
    simulated = data.Simulate_DE_Lightcurve(size=int(n_curves))
    seconds = time.perf_counter() - start
    amplitude, v_bend, a_high, c = data.psdFit["x"]
    # DELCgen's default mixture: [kappa, theta, sigma, e^mu, weight, 1 - weight]
    kappa, theta, sigma, median, weight = data.pdfFit["x"][:5]
    return {"seconds": seconds,
            "psd": {"amplitude": amplitude, "nu_bend": v_bend, "a_low": 1.1, "a_high": a_high,
                    "constant": c},
            "pdf": {"weight": weight, "shape": kappa, "scale": theta, "sigma": sigma,
                    "median": median},
            **_simulation_summary(data.flux, [lc.flux for lc in simulated])}


def case_e13_delcgen(delcgen_path, n_points=100_000):
    import numpy as np
    delcgen = _delcgen(delcgen_path)
    n = int(n_points)
    # DELCgen's E13 loop with a log-normal PDF, stopped at 200 iterations.  Its
    # Timmer-Koenig step needs RedNoiseL > 1 for an even length (with 1 its spectrum has
    # one value too many); 2 costs one 2e5-point inverse FFT outside the loop.
    start = time.perf_counter()
    delcgen.EmmanLC(np.arange(n) * 100.0, 2, 1, 1, 100, delcgen.BendingPL,
                    (1.0, 1e-4, 1.0, 2.0, 0.0), PDFmodel=delcgen.st.lognorm,
                    PDFparams=(0.64, 0, 1e-3), maxIterations=200)
    return time.perf_counter() - start


def case_psd_pulls(path, n_curves=16, n_bootstrap=20):
    """Pulls (fitted - true) / error of the PSD over Gaussian light curves of the PSD
    fitted to ``path`` (Timmer-Koenig, 10 times longer, with the observed errors' noise,
    on the observed sampling), each fitted again as the data were (errors from
    ``n_bootstrap`` simulated curves each)."""
    import numpy as np
    from astropy import units as u
    from astropy.table import QTable

    from galaxyml.variability import BendingPowerLawPSD, fit_light_curve, fit_psd, timmer_koenig
    model = fit_light_curve(path, fixed={"a_low": 1.1}, n_bootstrap=0)
    truth, table = model.psd_fit.params, model.table
    red = BendingPowerLawPSD(truth["amplitude"], truth["nu_bend"], truth["a_low"],
                             truth["a_high"])
    flux, error = table["flux"].value, table["error"].value
    dt = np.median(np.diff(table["time"]))
    index = np.round(((table["time"] - table["time"][0]) / dt).to_value(u.one)).astype(int)
    rng = np.random.default_rng(7)
    relative = timmer_koenig(red, index[-1] + 1, dt, n_curves=int(n_curves), red_noise_leak=10,
                             seed=rng)[:, index]
    pulls = {name: [] for name in truth if name != "a_low"}
    for k, row in enumerate(relative):
        simulated = flux.mean() * (1 + row) + error * rng.standard_normal(row.size)
        copy = QTable({"time": table["time"], "flux": simulated * table["flux"].unit,
                       "error": table["error"]})
        fit = fit_psd(copy, fixed={"a_low": 1.1}, n_bootstrap=int(n_bootstrap), seed=100 + k)
        for name in pulls:
            value, true = u.Quantity(fit.params[name]).value, u.Quantity(truth[name]).value
            pulls[name].append((value - true) / u.Quantity(fit.errors[name]).value)
    return {name: {"std": float(np.nanstd(values)),
                   "robust_width": float(np.subtract(*np.nanpercentile(values, [84, 16])) / 2),
                   "median": float(np.nanmedian(values)),
                   "n_finite": int(np.isfinite(values).sum())}
            for name, values in pulls.items()}


CASES = {"imports": case_imports, "e13": case_e13, "tk": case_tk, "stingray": case_stingray,
         "sf": case_sf, "observed_galaxyml": case_observed_galaxyml,
         "observed_delcgen": case_observed_delcgen, "e13_delcgen": case_e13_delcgen,
         "psd_pulls": case_psd_pulls}


def _after_imports(name, case):
    """``case`` with the imports done first (import time is not what is measured)."""
    def run(*arguments):
        case_imports()
        if name == "stingray":
            import stingray  # noqa: F401
        if name.startswith("observed") or name.endswith("delcgen"):
            import matplotlib.pyplot  # noqa: F401 (DELCgen imports pylab)
        start = time.perf_counter()
        inner = case(*arguments)
        return inner if isinstance(inner, (float, dict)) else time.perf_counter() - start
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path,
                        default=REPO / "benchmarks" / "results" / "bench_variability.json")
    parser.add_argument("--skip-sartori", action="store_true",
                        help="leave out the 2^22-point, 200-iteration fiducial run")
    parser.add_argument("--light-curve", type=Path, default=LIGHT_CURVE,
                        help="the observed light curve (default: NGC 4051 in ../shared)")
    parser.add_argument("--delcgen", type=Path,
                        help="DELCgen3.py, the Python 3 port of DELCgen, to run side by side")
    parser.add_argument("--only-observed", action="store_true",
                        help="run only (e), the observed light curve")
    parser.add_argument("--pull-curves", type=int, default=16,
                        help="simulated light curves for the PSD pulls (0: none)")
    parser.add_argument("--pull-bootstrap", type=int, default=20,
                        help="simulated curves behind each pull's errors (fit_psd's "
                             "n_bootstrap; 20 by default, as for users)")
    if run_requested_case({name: _after_imports(name, case)
                           for name, case in CASES.items()}, argv):
        return 0
    args = parser.parse_args(argv)

    results = {"benchmark": "bench_variability"}
    if not args.only_observed:
        simulations(args, results)
    observed(args, results)
    write_results(results, args.output)
    return 0


def simulations(args, results):
    """(a) to (d)."""
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


def observed(args, results):
    """(e): the observed light curve, galaxyml and DELCgen."""
    if not args.light_curve.exists():
        print(f"(e) skipped: the observed light curve {args.light_curve} is not available")
        return
    ours = run_case(__file__, "observed_galaxyml", args.light_curve, 10, 0)
    results["observed_galaxyml"] = ours
    _print_observed("galaxyml, no PSD errors (as DELCgen)", ours)
    with_errors = run_case(__file__, "observed_galaxyml", args.light_curve, 10, 20)
    results["observed_galaxyml_with_errors"] = with_errors
    _print_observed("galaxyml, PSD errors from 20 simulated curves", with_errors)
    if args.delcgen is None or not args.delcgen.exists():
        print("(e) DELCgen skipped: give its Python 3 port with --delcgen DELCgen3.py "
              "(github.com/cerasole/DELightcurveSimulation, python3_version/DELCgen3)")
    else:
        theirs = run_case(__file__, "observed_delcgen", args.delcgen, args.light_curve)
        results["observed_delcgen"] = theirs
        _print_observed("DELCgen", theirs)
        results["workflow_speedup_vs_delcgen"] = theirs["seconds"] / ours["seconds"]
        results["workflow_with_errors_speedup_vs_delcgen"] = (theirs["seconds"]
                                                              / with_errors["seconds"])
        print(f"    fit and simulate: galaxyml {theirs['seconds'] / ours['seconds']:.1f}x "
              "faster than DELCgen (target >= 5x); with the PSD's errors "
              f"{theirs['seconds'] / with_errors['seconds']:.2f}x")
        e13 = run_case(__file__, "e13", 100_000)
        e13_theirs = run_case(__file__, "e13_delcgen", args.delcgen, 100_000)
        results["e13_n1e5_200it_galaxyml"] = e13
        results["e13_n1e5_200it_delcgen"] = e13_theirs
        results["e13_speedup_vs_delcgen"] = e13_theirs["seconds"] / e13["seconds"]
        print(f"    E13, 1e5 points x 200 iterations: galaxyml {e13['seconds']:.2f} s, DELCgen "
              f"{e13_theirs['seconds']:.2f} s, {results['e13_speedup_vs_delcgen']:.1f}x "
              "(target >= 5x)")
    if args.pull_curves:
        pulls = run_case(__file__, "psd_pulls", args.light_curve, args.pull_curves,
                         args.pull_bootstrap)
        results["psd_pulls"] = pulls
        for name, figures in pulls.items():
            if isinstance(figures, dict):
                print(f"    PSD pulls of {name} over {figures['n_finite']} simulated curves: "
                      f"std {figures['std']:.2f}, 16-84% half-width "
                      f"{figures['robust_width']:.2f}, median {figures['median']:+.2f}")


def _print_observed(who, figures):
    psd = ", ".join(f"{name} {value[0]:.3g} +- {value[1]:.2g}" if isinstance(value, list)
                    else f"{name} {value:.3g}" for name, value in figures["psd"].items())
    pdf = ", ".join(f"{name} {value[0]:.3g} +- {value[1]:.2g}" if isinstance(value, list)
                    else f"{name} {value:.3g}" for name, value in figures["pdf"].items())
    print(f"(e) {who}: fit and simulate {figures['seconds']:.1f} s, peak RSS "
          f"{figures['peak_rss_mib']:.0f} MiB\n    PSD: {psd}\n    PDF: {pdf}\n"
          f"    data mean {figures['data_mean']:.2f}, std {figures['data_std']:.2f}; "
          f"simulated mean {figures['sim_mean']:.2f}, std {figures['sim_std']:.2f}; pooled KS "
          f"p = {figures['pooled_ks_pvalue']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
