# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The ``galaxyml`` command line."""

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main", "run_demo"]


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
    from .io import multiband_cutout
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
    psf_fwhm = field.truth.meta["psf_fwhm_arcsec"]["r"] / 0.396
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
    restoration = _demo_restoration(cutouts, output, seed, overwrite, start)
    return {"field": field.files.frames, "truth": field.truth_path,
            "catalog": output / "catalog.ecsv", "cutouts": paths, "preview": preview,
            **restoration}


def _demo_restoration(cutouts, output, seed, overwrite, start, fwhm=2.0, sigma=2.0,
                      iterations=10):
    """Degrade the cutouts, recover them with the shipped GalaxyGAN and Richardson-Lucy."""
    import matplotlib.pyplot as plt
    import numpy as np
    from astropy.table import QTable

    from .degrade import degrade_like_galaxygan
    from .gan import GalaxyGAN
    from .io.writing import atomic_output
    from .restoration import deconvolve, psnr, ssim
    from .visualization import image_norm, save_figure

    model = GalaxyGAN.pretrained()
    degraded = [degrade_like_galaxygan(cutout, fwhm, sigma, seed=seed + k)[0]
                for k, cutout in enumerate(cutouts)]
    recovered = model.recover(degraded)
    _log(f"degraded {len(cutouts)} galaxies (extra blur {fwhm} arcsec, noise x{sigma}) and "
         "recovered them with the shipped GalaxyGAN", start)
    stretch, rows = model.stretch, []
    figure, axes = plt.subplots(len(cutouts), 4, figsize=(8, 2.1 * len(cutouts)),
                                squeeze=False, layout="constrained")
    for k, (original, blurred, gan) in enumerate(zip(cutouts, degraded, recovered)):
        lucy = deconvolve("Richardson-Lucy", blurred.data, fwhm, iterations)
        images = {"original": original.data, "degraded": blurred.data, "GalaxyGAN": gan.data,
                  "Richardson-Lucy": lucy}
        target = stretch(original.data, warn=False)
        for name, image in images.items():
            if name != "original":
                rows.append((k + 1, name, psnr(target, stretch(image, warn=False)),
                             ssim(target, stretch(image, warn=False))))
        norm = image_norm(original.data[1])
        for column, (name, image) in enumerate(images.items()):
            axes[k, column].imshow(image[1], origin="lower", cmap="gray_r", norm=norm)
            axes[k, column].set_axis_off()
            axes[k, 0 if column == 0 else column].set_title(name if k == 0 else "", fontsize=9)
    metrics = QTable(rows=rows, names=["galaxy", "method", "psnr", "ssim"])
    with atomic_output(output / "restoration.ecsv", overwrite=overwrite) as temporary:
        metrics.write(temporary, format="ascii.ecsv")
    comparison = save_figure(figure, output / "restoration.png", overwrite=overwrite)
    for method in ("degraded", "GalaxyGAN", "Richardson-Lucy"):
        chosen = metrics[metrics["method"] == method]
        _log(f"{method:16s} mean PSNR {np.mean(chosen['psnr']):5.2f} dB, "
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
    return parser


def main(argv=None):
    """Entry point of the ``galaxyml`` command."""
    from .exceptions import GalaxymlError

    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "demo":
            run_demo(arguments.output, arguments.seed, arguments.n_cutouts, arguments.size,
                     arguments.overwrite)
    except GalaxymlError as exc:
        print(f"galaxyml: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
