#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: galaxyml's imaging of two real observations, side by side with WSClean.

The observations are those of ``../shared/data/radio`` (see its README):

* ``m87``: VLBA, M87 at 8.1 GHz, Stokes I from RR and LL, 128 x 128 cells of
  0.25 mas, natural weighting;
* ``mwa``: MWA, the EoR field at 167 MHz, one snapshot, (u, v) distances up to
  300 wavelengths, 128 x 128 cells of 3 arcmin, natural weighting.  The file
  flags every visibility (its weights are zero), so it is read with
  ``ignore_flags=True``: all visibilities with weight 1; its data are
  uncalibrated, so fluxes are in correlator units.

For each: the dirty image, galaxyml's Hogbom CLEAN, float32 NIHT and NIHT on a
matrix and data quantized to 8, 4 and 2 bits, and WSClean 3.1 (Hogbom CLEAN
with major cycles, the same cell, size, weighting, gain, threshold and
restoring beam; with its default gridder and with the w-gridder at an accuracy
of 1e-6; skipped with the reason where ``wsclean`` or python-casacore is
absent).  CLEAN's threshold is 3 times the image noise estimated from
differences of consecutive integrations (`Visibilities.image_noise`).  Every
imager runs in its own process, whose wall time and peak memory are reported.
From the images written to FITS: the residual RMS (of each imager's residual
image, and of the exact dirty image of the data minus each model, the same
measure for all), the dynamic range (peak / that residual RMS), the peak (for
M87, the core), the model flux beyond two beams of the peak (M87's jet), the
correlation of each restored image with WSClean's and with float NIHT's, and
for the bit widths the error of the model and the restored image against
float NIHT's.  The matrix pass alone
(A^T r, float32 BLAS against the packed kernels) is timed on M87's operator.

    python benchmarks/bench_radio.py [--data-dir ../shared/data/radio]
        [--output benchmarks/results/bench_radio.json] [--figure docs/_static/radio_m87.png]
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import REPO, run_case, run_requested_case, write_results  # noqa: E402

OBSERVATIONS = {
    "m87": {"file": "mojave.uvfits", "read": {"unit": "Jy"}, "uv_max": None,
            "shape": 128, "cell": "0.25 mas", "sparsity": 1000},
    "mwa": {"file": "1061316296.uvfits", "read": {"ignore_flags": True}, "uv_max": 300.0,
            "shape": 128, "cell": "3 arcmin", "sparsity": 300},
}
METHODS = [("dirty", None), ("clean", None), ("niht", None), ("niht", 8), ("niht", 4),
           ("niht", 2)]
CLEAN = {"gain": 0.1, "max_iter": 20000}
# WSClean with its default gridder, and with the w-gridder at an accuracy of 1e-6.
WSCLEAN = {"wsclean": [], "wsclean-wgridder": ["-use-wgridder", "-wgridder-accuracy", "1e-6"]}


def _visibilities(data_dir, name):
    from galaxyml.radio import read_visibilities

    setup = OBSERVATIONS[name]
    vis = read_visibilities(Path(data_dir) / setup["file"], **setup["read"])
    return vis.select(uv_max=setup["uv_max"]) if setup["uv_max"] else vis


def _label(method, bits):
    return method if bits is None else f"{method}-{bits}bit"


def image_case(data_dir, name, method, bits, threshold, out_dir, sparsity="None"):
    """Child: image one observation with one method, write its FITS images."""
    from astropy import units as u

    from galaxyml.radio import image_products

    setup = OBSERVATIONS[name]
    bits = None if bits == "None" else int(bits)
    sparsity = setup["sparsity"] if sparsity == "None" else int(sparsity)
    vis = _visibilities(data_dir, name)
    options = ({**CLEAN, "threshold": float(threshold)} if method == "clean" else
               {"sparsity": sparsity} if method == "niht" else {})
    if bits:
        options["seed"] = 1
    result = image_products(vis, method=method, bits=bits, shape=setup["shape"],
                            cell=u.Quantity(setup["cell"]), **options)
    stem = Path(out_dir) / f"{name}-{_label(method, bits)}"
    if sparsity != setup["sparsity"]:
        stem = Path(f"{stem}-sparsity{sparsity}")
    result.restored.write(f"{stem}-image.fits", overwrite=True)
    result.residual.write(f"{stem}-residual.fits", overwrite=True)
    if result.model is not None:
        result.model.write(f"{stem}-model.fits", overwrite=True)
    return {"seconds": result.seconds, "iterations": result.iterations,
            "matrix_mib": result.matrix_nbytes / 2 ** 20,
            "ms_per_iteration": 1e3 * result.seconds_per_iteration,
            "beam_mas_or_arcmin": [result.beam.major.to_value(u.arcsec),
                                   result.beam.minor.to_value(u.arcsec),
                                   result.beam.position_angle.to_value(u.deg)]}


def wsclean_case(ms, name, threshold, beam, out_dir, label="wsclean"):
    """Child: WSClean on the Measurement Set; its peak memory is that of its process."""
    setup = OBSERVATIONS[name]
    major, minor, angle = (float(v) for v in beam.split(","))
    command = ["wsclean", "-quiet", "-data-column", "DATA", *WSCLEAN[label],
               "-size", str(setup["shape"]), str(setup["shape"]),
               "-scale", setup["cell"].replace(" ", "").replace("arcmin", "amin")
               .replace("mas", "masec"), "-weight", "natural", "-pol", "I",
               "-niter", str(CLEAN["max_iter"]), "-gain", str(CLEAN["gain"]), "-mgain", "0.8",
               "-threshold", str(threshold),
               "-beam-shape", f"{major}asec", f"{minor}asec", f"{angle}deg",
               "-name", str(Path(out_dir) / f"{name}-{label}")]
    if setup["uv_max"]:
        command += ["-maxuv-l", str(setup["uv_max"])]
    start = time.perf_counter()
    run = subprocess.run(command + [ms], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode:
        raise RuntimeError(f"wsclean failed: {run.stderr[-2000:]}")
    return {"seconds": seconds, "command": " ".join(command + [ms]),
            "wsclean_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def matrix_pass_case(data_dir, name):
    """Child: one gradient's matrix pass, float32 BLAS against the packed kernels."""
    from astropy import units as u

    from bench_iht import matrix_pass
    from galaxyml.radio import CelestialGrid, MeasurementOperator

    setup = OBSERVATIONS[name]
    vis = _visibilities(data_dir, name)
    grid = CelestialGrid(setup["shape"], u.Quantity(setup["cell"]), vis.phase_centre)
    operator = MeasurementOperator.from_visibilities(vis, grid)
    times, nbytes = matrix_pass(operator, (8, 4, 2), repeats=10)
    return {"matrix_pass_s": times, "matrix_bytes": nbytes}


def write_measurement_set(data_dir, name, path):
    """The observation as a Measurement Set for WSClean (pyuvdata, python-casacore)."""
    import pyuvdata

    uvdata = pyuvdata.UVData.from_file(Path(data_dir) / OBSERVATIONS[name]["file"])
    if OBSERVATIONS[name]["read"].get("ignore_flags"):
        uvdata.flag_array[:] = False
        uvdata.nsample_array[:] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvdata.write_ms(str(path), clobber=True)


def wsclean_missing():
    """Why WSClean cannot run here, or None."""
    if shutil.which("wsclean") is None:
        return "wsclean is not installed (Debian package 'wsclean')"
    try:
        import casacore  # noqa: F401
    except ImportError:
        return "python-casacore is not installed, so no Measurement Set can be written"
    return None


def _read(path):
    from astropy.io import fits

    return np.asarray(fits.getdata(path), dtype=float).squeeze() if Path(path).exists() else None


def _correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def measure_images(out_dir, name, label, beam_major_pixels, reference, vis, operator):
    """Figures of one imager's FITS images.

    ``residual_rms`` is the RMS of the imager's own residual image;
    ``residual_rms_exact`` that of the dirty image (exact DFT) of the data
    minus its model's visibilities, the same measure for every imager.
    """
    from galaxyml.radio import dirty_image

    stem = Path(out_dir) / f"{name}-{label}"
    restored, residual = _read(f"{stem}-image.fits"), _read(f"{stem}-residual.fits")
    model = _read(f"{stem}-model.fits")
    peak = np.unravel_index(np.argmax(restored), restored.shape)
    rms = float(residual.std())
    exact = vis.data if model is None else vis.data - operator.visibilities(model)
    exact_rms = float(dirty_image(operator, exact).data.std())
    figures = {"residual_rms": rms, "residual_rms_exact": exact_rms, "peak": float(restored[peak]),
               "dynamic_range": float(restored[peak] / exact_rms),
               "peak_pixel": [int(v) for v in peak]}
    if model is not None:
        yy, xx = np.indices(model.shape)
        beyond = np.hypot(yy - peak[0], xx - peak[1]) > 2 * beam_major_pixels
        figures.update(model_flux=float(model.sum()), model_flux_beyond_2_beams=float(
            model[beyond].sum()))
    for other, image in reference.items():
        if image is not None and other != label:
            figures[f"correlation_with_{other}"] = _correlation(restored, image)
            figures[f"difference_rms_over_peak_vs_{other}"] = float(
                np.std(restored - image) / image.max())
    return figures


def run_observation(args, name, out_dir):
    from astropy import units as u

    vis = _visibilities(args.data_dir, name)
    noise = vis.image_noise()
    threshold = 3 * noise.value
    print(f"{name}: {vis}; image noise from integration differences {noise:.3g}; CLEAN to "
          f"{threshold:.3g}")
    results = {"visibilities": len(vis), "image_noise": noise.value, "threshold": threshold,
               "setup": {k: v for k, v in OBSERVATIONS[name].items() if k != "read"},
               "imagers": {}}
    script = Path(__file__)
    for method, bits in METHODS:
        label = _label(method, bits)
        figures = run_case(script, "image", args.data_dir, name, method, bits, threshold, out_dir)
        results["imagers"][label] = figures
        print(f"  {label:13s} {figures['seconds']:7.1f} s, peak RSS "
              f"{figures['peak_rss_mib']:6.0f} MiB, {figures['iterations']} iterations"
              + (f", {figures['ms_per_iteration']:.1f} ms/iteration, matrix "
                 f"{figures['matrix_mib']:.0f} MiB" if method == "niht" else ""))
    beam = results["imagers"]["clean"]["beam_mas_or_arcmin"]
    missing = wsclean_missing()
    if missing:
        print(f"  WSClean SKIPPED: {missing}")
        results["wsclean_skipped"] = missing
    else:
        ms = Path(out_dir) / f"{name}.ms"
        write_measurement_set(args.data_dir, name, ms)
        for label in WSCLEAN:
            figures = run_case(script, "wsclean", ms, name, threshold,
                               ",".join(map(str, beam)), out_dir, label)
            results["imagers"][label] = figures
            print(f"  {label:16s} {figures['seconds']:7.1f} s, peak RSS "
                  f"{figures['wsclean_peak_rss_mib']:6.0f} MiB")
        shutil.rmtree(ms)
    from galaxyml.radio import CelestialGrid, MeasurementOperator

    setup = OBSERVATIONS[name]
    operator = MeasurementOperator.from_visibilities(
        vis, CelestialGrid(setup["shape"], u.Quantity(setup["cell"]), vis.phase_centre))
    cell = u.Quantity(OBSERVATIONS[name]["cell"]).to_value(u.arcsec)
    reference = {label: _read(Path(out_dir) / f"{name}-{label}-image.fits")
                 for label in ("wsclean", "niht")}
    float_model = _read(Path(out_dir) / f"{name}-niht-model.fits")
    for label in results["imagers"]:
        figures = measure_images(out_dir, name, label, beam[0] / cell, reference, vis, operator)
        if label.startswith("niht-"):
            model = _read(Path(out_dir) / f"{name}-{label}-model.fits")
            figures["model_error_vs_float"] = float(np.linalg.norm(model - float_model)
                                                    / np.linalg.norm(float_model))
            figures["image_error_vs_float"] = float(
                np.linalg.norm(_read(Path(out_dir) / f"{name}-{label}-image.fits")
                               - reference["niht"]) / np.linalg.norm(reference["niht"]))
        results["imagers"][label].update(figures)
    _print_table(name, results)
    return results


def iteration_speed(args, name, sparsity):
    """Float32 and 4-bit NIHT's time per iteration at a smaller sparsity, where the matrix
    pass, not the columns on the support, takes most of an iteration."""
    speed = {}
    for bits in (None, 4):
        figures = run_case(Path(__file__), "image", args.data_dir, name, "niht", bits, 0,
                           args.images, sparsity)
        speed[_label("niht", bits)] = figures["ms_per_iteration"]
    speed["ratio"] = speed["niht"] / speed["niht-4bit"]
    print(f"{name} NIHT at sparsity {sparsity}: float32 {speed['niht']:.1f} ms/iteration, "
          f"4-bit {speed['niht-4bit']:.1f} ms/iteration (x{speed['ratio']:.2f})")
    return speed


def _print_table(name, results):
    print(f"  {'imager':16s} {'resid RMS':>10s} {'exact RMS':>10s} {'DR':>7s} {'peak':>8s} "
          f"{'model':>8s} {'beyond 2b':>9s} {'r(WSC)':>7s} {'r(NIHT)':>7s} {'err/float':>9s}")
    for label, f in results["imagers"].items():
        print(f"  {label:16s} {f['residual_rms']:10.4g} {f['residual_rms_exact']:10.4g} "
              f"{f['dynamic_range']:7.0f} "
              f"{f['peak']:8.4g} {f.get('model_flux', np.nan):8.4g} "
              f"{f.get('model_flux_beyond_2_beams', np.nan):9.4g} "
              f"{f.get('correlation_with_wsclean', np.nan):7.4f} "
              f"{f.get('correlation_with_niht', np.nan):7.4f} "
              f"{f.get('model_error_vs_float', np.nan):9.3f}")


def plot(results, out_dir, figure_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import (AsinhStretch, ImageNormalize, LinearStretch,
                                       PercentileInterval)

    labels = ["dirty", "clean", "wsclean", "niht", "niht-4bit", "niht-2bit"]
    names = list(results["observations"])
    fig, axes = plt.subplots(len(names), len(labels), figsize=(2.6 * len(labels),
                                                               3.1 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        reference = _read(Path(out_dir) / f"{name}-niht-image.fits")
        # An asinh stretch shows a faint jet beside a bright core; a noise-limited image
        # (dynamic range of a few) reads better linearly.
        high_range = results["observations"][name]["imagers"]["niht"]["dynamic_range"] > 100
        norm = ImageNormalize(reference, interval=PercentileInterval(99.9),
                              stretch=AsinhStretch(0.02) if high_range else LinearStretch())
        for column, label in enumerate(labels):
            axis = axes[row, column]
            image = _read(Path(out_dir) / f"{name}-{label}-image.fits")
            axis.set_xticks([])
            axis.set_yticks([])
            if image is None:
                axis.set_title(f"{label}: not run", fontsize=8)
                continue
            axis.imshow(image, origin="lower", cmap="inferno", norm=norm)
            figures = results["observations"][name]["imagers"][label]
            axis.set_title(f"{name} {label}\nresidual RMS {figures['residual_rms_exact']:.3g}",
                           fontsize=8)
    fig.tight_layout()
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure_path, dpi=90)
    print(f"figure: {figure_path}")


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "radio")
    parser.add_argument("--observations", nargs="+", default=list(OBSERVATIONS))
    parser.add_argument("--output", type=Path,
                        default=REPO / "benchmarks" / "results" / "bench_radio.json")
    parser.add_argument("--images", type=Path,
                        default=REPO / "benchmarks" / "results" / "bench_radio")
    parser.add_argument("--figure", type=Path,
                        default=REPO / "benchmarks" / "results" / "bench_radio.png")
    return parser


def main(argv=None):
    if run_requested_case({"image": image_case, "wsclean": wsclean_case,
                           "matrix_pass": matrix_pass_case}, argv):
        return 0
    args = parser().parse_args(argv)
    missing = [OBSERVATIONS[name]["file"] for name in args.observations
               if not (args.data_dir / OBSERVATIONS[name]["file"]).exists()]
    if missing:
        print(f"SKIPPED: {missing} not in {args.data_dir} (pass --data-dir)", file=sys.stderr)
        return 0
    args.images.mkdir(parents=True, exist_ok=True)
    results = {"benchmark": "bench_radio", "observations": {}}
    for name in args.observations:
        results["observations"][name] = run_observation(args, name, args.images)
    if "m87" in args.observations:
        results["m87_iteration_speed_sparsity_300"] = iteration_speed(args, "m87", 300)
        passes = run_case(Path(__file__), "matrix_pass", args.data_dir, "m87")
        results["m87_matrix_pass"] = passes
        times = passes["matrix_pass_s"]
        print("M87 matrix pass A^T r: " + ", ".join(
            f"{k} {1e3 * v:.1f} ms (x{times['float32'] / v:.2f})" for k, v in times.items()))
    plot(results, args.images, args.figure)
    write_results(results, args.output)
    print(json.dumps({name: {label: round(f["residual_rms"], 6) for label, f in
                             obs["imagers"].items()}
                      for name, obs in results["observations"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
