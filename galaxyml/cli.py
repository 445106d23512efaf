# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The ``galaxyml`` command line."""

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main", "run_demo", "run_batch_command"]


def _log(message, start):
    print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)


def run_demo(output="galaxyml-demo", seed=2017, n_cutouts=6, size=64, overwrite=False):
    """Simulate an SDSS-like field, cut its galaxies, degrade and recover them.

    Writes, under ``output``: the simulated field (``field/``), the source
    catalogue (``catalog.ecsv``), one multi-band FITS cutout per selected
    galaxy (``cutouts/``), a preview figure (``preview.png``), and the
    galaxies degraded (2 arcsec extra blur, twice the noise) and recovered
    by the shipped GalaxyGAN and by Richardson-Lucy: a comparison figure
    (``restoration.png``) and a metrics table (``restoration.ecsv``).

    Returns
    -------
    outputs : dict
        Paths of what was written.
    """
    import matplotlib
    matplotlib.use("Agg")
    from astropy import units as u

    from .datasets import simulate_sdss_field, source_catalog, sources_inside
    from .io import SDSS_PIXEL_SCALE, multiband_cutout
    from .io.writing import atomic_output
    from .visualization import plot_cutouts, save_figure

    start = time.perf_counter()
    output = Path(output)
    _log(f"simulating an SDSS-like g, r, i field in {output / 'field'}", start)
    field = simulate_sdss_field(output / "field", bands="gri", seed=seed, overwrite=overwrite)
    frames = field.files.read()
    _log(f"read back {len(frames)} frames of {frames['r'].shape} pixels with uncertainty "
         "and mask", start)

    catalog = source_catalog(frames["r"], deblend=True)
    # Galaxies are the detections broader than the PSF; the brightest are cut.
    psf_arcsec = field.truth.meta["psf_fwhm_arcsec"]["r"] * u.arcsec
    psf_fwhm = (psf_arcsec / SDSS_PIXEL_SCALE).to_value(u.pix)
    inside = sources_inside(catalog, frames["r"].shape, size)
    galaxies = inside[inside["fwhm"].to_value(u.pix) > 1.3 * psf_fwhm][:n_cutouts]
    with atomic_output(output / "catalog.ecsv", overwrite=overwrite) as temporary:
        catalog.write(temporary, format="ascii.ecsv")
    _log(f"detected {len(catalog)} sources, {len(galaxies)} galaxies selected", start)

    cutouts, paths = [], []
    for number, row in enumerate(galaxies, start=1):
        cutout = multiband_cutout(frames, row["sky_centroid"], size, reference_band="r")
        paths.append(cutout.write(output / "cutouts" / f"galaxy-{number:03d}.fits",
                                  overwrite=overwrite))
        cutouts.append(cutout)
        _log(f"cutout {number}/{len(galaxies)}: {paths[-1]}", start)

    figure = plot_cutouts(cutouts, titles=[f"#{row['id']}" for row in galaxies])
    preview = save_figure(figure, output / "preview.png", overwrite=overwrite)
    _log(f"preview of the detected galaxies: {preview}", start)
    restoration = _demo_restoration(frames, galaxies, size, output, seed, overwrite, start)
    return {"field": field.files.frames, "truth": field.truth_path,
            "catalog": output / "catalog.ecsv", "cutouts": paths, "preview": preview,
            **restoration}


def _demo_restoration(frames, galaxies, size, output, seed, overwrite, start, fwhm=2.0,
                      sigma=2.0, iterations=10):
    """Degrade the galaxies, recover them with the shipped GalaxyGAN and Richardson-Lucy."""
    import matplotlib.pyplot as plt
    import numpy as np
    from astropy import units as u

    from .datasets import make_galaxygan_pairs
    from .gan import GalaxyGAN
    from .io.writing import atomic_output
    from .restoration import evaluate_restoration
    from .visualization import image_norm, save_figure

    model = GalaxyGAN.pretrained()
    catalog = galaxies.copy()
    catalog["ra"], catalog["dec"] = catalog["sky_centroid"].ra, catalog["sky_centroid"].dec
    # Every galaxy degraded in one cell of the paper's grid; no galaxy left out by the split.
    pairs = make_galaxygan_pairs(frames, catalog=catalog, size=size, grid=[(fwhm, sigma)],
                                 guard=0 * u.deg, seed=seed, progress=False)
    cell = (float(fwhm), float(sigma))
    metrics, images = evaluate_restoration(model, pairs, {"Richardson-Lucy": {cell: iterations}},
                                           methods=("Richardson-Lucy",), progress=False,
                                           keep="all")
    _log(f"degraded {len(pairs)} galaxies (extra blur {fwhm} arcsec, noise x{sigma}) and "
         "recovered them with the shipped GalaxyGAN and Richardson-Lucy", start)
    # The uncertainty: the spread of dropout draws, calibrated on training pairs (model card).
    _, spreads = zip(*model.recover([pairs.linear_pair(k)[0].data for k in range(len(pairs))],
                                    fwhm=fwhm, samples=8))
    names = ("original", "degraded", "GalaxyGAN", "Richardson-Lucy")
    figure, axes = plt.subplots(len(images), len(names) + 1, figsize=(10, 2.1 * len(images)),
                                squeeze=False, layout="constrained")
    for row, (pair_id, estimates) in enumerate(images.items()):
        norm = image_norm(estimates["original"][1])
        for column, name in enumerate(names):
            axes[row, column].imshow(estimates[name][1], origin="lower", cmap="gray_r",
                                     norm=norm)
            axes[row, column].set_title(name if row == 0 else "", fontsize=9)
        axes[row, -1].imshow(spreads[row][1], origin="lower", cmap="magma")
        axes[row, -1].set_title("GalaxyGAN uncertainty" if row == 0 else "", fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    with atomic_output(output / "restoration.ecsv", overwrite=overwrite) as temporary:
        metrics.write(temporary, format="ascii.ecsv")
    comparison = save_figure(figure, output / "restoration.png", overwrite=overwrite)
    for method in ("degraded", "GalaxyGAN", "Richardson-Lucy"):
        chosen = metrics[metrics["method"] == method]
        _log(f"{method:16s} mean PSNR {np.mean(chosen['psnr'].value):5.2f} dB, "
             f"SSIM {np.mean(chosen['ssim']):.3f}", start)
    _log(f"comparison figure: {comparison}", start)
    return {"restoration_metrics": output / "restoration.ecsv", "restoration": comparison}


def _parser():
    parser = argparse.ArgumentParser(prog="galaxyml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="simulate an SDSS-like field, read it back, write cutouts and a preview")
    demo.add_argument("--output", default="galaxyml-demo", help="output directory")
    demo.add_argument("--seed", type=int, default=2017, help="random seed of the simulation")
    demo.add_argument("--n-cutouts", type=int, default=6, help="number of galaxies to cut")
    demo.add_argument("--size", type=int, default=64, help="cutout size in pixels")
    demo.add_argument("--overwrite", action="store_true", help="replace earlier demo outputs")
    _add_batch_parser(commands)
    return parser


def _add_batch_parser(commands):
    from .batch.config import PRESETS

    batch = commands.add_parser(
        "batch", help="run tasks over many SDSS fields (serially, in processes or on Dask)",
        description="Run tasks over many SDSS fields and write per-field products, "
                    "OUTPUT/manifest.ecsv (one row per field) and OUTPUT/catalog.ecsv (one row "
                    "per galaxy).  Rerunning the same command resumes: completed fields are "
                    "skipped.  Exits with status 1 when a field failed or was missing.")
    batch.add_argument("fields", help="field table (ECSV/CSV with run, camcol, field[, rerun]) "
                                      "or a directory holding frame-* files")
    batch.add_argument("--mirror", action="append", default=None, metavar="DIR",
                       help="local directory of SDSS files (repeatable), searched before a "
                            "FIELDS directory; missing files are downloaded into the first")
    batch.add_argument("--tasks", default="catalog,cutouts",
                       help="comma-separated, from catalog, cutouts, restore, psfgan, "
                            "morphology, mergers (default: catalog,cutouts)")
    batch.add_argument("--executor", default="serial", choices=("serial", "processes", "dask"))
    batch.add_argument("--workers", type=int, default=None,
                       help="local processes or Dask workers (default: the number of CPUs)")
    batch.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="address of a running Dask scheduler (default: a local cluster)")
    batch.add_argument("--output", default="galaxyml-batch", help="output directory")
    batch.add_argument("--config", default=None, metavar="FILE",
                       help="TOML or YAML file of task parameters")
    batch.add_argument("--bands", default=None, help="bands to read and cut (default: gri)")
    batch.add_argument("--preset", default=None, choices=sorted(PRESETS),
                       help="a papers' selection instead of every galaxy the tasks can "
                            "handle: 'training' (the shipped GANs' training set: isolated, "
                            "unmasked, r < 21) or 'main-sample' (the same to r < 17.77)")
    batch.add_argument("--no-download", action="store_true",
                       help="report fields missing locally instead of downloading them")
    batch.add_argument("--quiet", action="store_true", help="no progress display")


def run_batch_command(arguments):
    """``galaxyml batch``: the exit status is 1 when any field failed or was missing."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # workers inherit it: quieter logs
    from .batch import run_batch, selection_summary

    output = Path(arguments.output)
    manifest, catalog = run_batch(
        arguments.fields, mirror=arguments.mirror, tasks=arguments.tasks,
        executor=arguments.executor, workers=arguments.workers,
        scheduler=arguments.scheduler, output=output, config=arguments.config,
        bands=arguments.bands, preset=arguments.preset,
        download=False if arguments.no_download else None, quiet=arguments.quiet)
    states = list(manifest["state"])
    counts = {state: states.count(state) for state in ("done", "failed", "missing", "pending")}
    print(f"galaxyml batch: {len(states)} fields: {counts['done']} done, {counts['failed']} "
          f"failed, {counts['missing']} missing; {len(catalog)} galaxies in "
          f"{output / 'catalog.ecsv'}", flush=True)
    if catalog.meta.get("selection"):
        print(f"galaxyml batch: selection: {selection_summary(catalog.meta['selection'])}",
              flush=True)
    bad = counts["failed"] + counts["missing"] + counts["pending"]
    if bad:
        print(f"galaxyml batch: {bad} of {len(states)} fields were not processed; see "
              f"{output / 'manifest.ecsv'} and rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


# Signals turned into KeyboardInterrupt, so that SIGTERM stops a run as cleanly as Ctrl-C.
_received = []


def _interrupt(signum, frame):
    import signal

    _received.append(signum)
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt


def main(argv=None):
    """Entry point of the ``galaxyml`` command.

    Every failure ends in one line on standard error: a problem with the
    input or the output (exit status 2), or an interruption by Ctrl-C or
    SIGTERM (130 or 143), after which the same command resumes.
    """
    import signal
    import threading

    from .exceptions import GalaxymlError

    arguments = _parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        if arguments.command == "demo":
            run_demo(arguments.output, arguments.seed, arguments.n_cutouts, arguments.size,
                     arguments.overwrite)
        elif arguments.command == "batch":
            return run_batch_command(arguments)
    except GalaxymlError as exc:  # a problem with the input, said in one line
        return _fail(" ".join(str(exc).split()))
    except OSError as exc:  # the system's: permission denied, disk full, ...
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        print("\ngalaxyml: interrupted: rerun the same command to resume", file=sys.stderr)
        return 128 + (_received[0] if _received else signal.SIGINT)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _fail(message):
    print(f"galaxyml: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
