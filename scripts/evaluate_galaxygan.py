#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate GalaxyGAN against classical deconvolution on held-out galaxies of a field.

Rebuilds the pairs the model was trained on (selection, stamp size and seed
from its model card), tunes the iteration counts of Richardson-Lucy and
blind deconvolution on the training side (RA below the median), and
evaluates GalaxyGAN, Richardson-Lucy, Wiener, blind deconvolution and the
degraded input on the held-out side (RA above the median) in every cell of
the grid FWHM {1.4, 1.8, 2.2, 2.5} arcsec x sigma {1, 1.2, 2, 5, 10}.
Writes the per-pair runs and the per-cell summary (ECSV), a figure of PSNR
and SSIM against the grid, and a gallery of examples.

    python scripts/evaluate_galaxygan.py --output galaxygan-evaluation
"""

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from galaxyml.datasets import (example_field_dir, galaxy_catalog, local_field_files,
                               make_galaxygan_pairs)
from galaxyml.exceptions import InvalidParameterError
from galaxyml.gan import GalaxyGAN
from galaxyml.io.writing import atomic_output
from galaxyml.restoration import (evaluate_restoration, plot_restoration_grid,
                                  summarize_restoration, tune_iterations)
from galaxyml.visualization import image_norm, save_figure


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras model with its card (default: the shipped model)")
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--max-galaxies", type=int, default=None,
                        help="evaluate at most this many held-out galaxies")
    parser.add_argument("--tune-galaxies", type=int, default=6)
    parser.add_argument("--output", type=Path, default=Path("galaxygan-evaluation"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--update-card", action="store_true",
                        help="record the per-cell results in the model's card")
    parser.add_argument("--quiet", action="store_true")
    return parser


def held_out_pairs(model, field_dir, quiet):
    """The train and test pairs of the field, made exactly as for training."""
    training = model.card["training"]
    frames = local_field_files(training["field"], "".join(model.bands), field_dir).read()
    catalog = galaxy_catalog(frames, size=training["stamp_size"],
                             mag_range=tuple(training["mag_range"]))
    pairs = make_galaxygan_pairs(frames, catalog=catalog, size=training["stamp_size"],
                                 seed=training["seed"], progress=not quiet)
    return pairs.subset("train"), pairs.subset("test")


def gallery(examples, stretch, cells):
    """Original, degraded, GalaxyGAN and the baselines for a few cells (r band)."""
    names = ["original", "degraded", "GalaxyGAN", "Richardson-Lucy", "Wiener", "blind"]
    figure, axes = plt.subplots(len(cells), len(names), figsize=(2.2 * len(names),
                                                                 2.3 * len(cells)),
                                squeeze=False, layout="constrained")
    for row, cell in enumerate(cells):
        images = examples[cell]
        norm = image_norm(images["original"][1])
        for column, name in enumerate(names):
            ax = axes[row, column]
            ax.imshow(images[name][1], origin="lower", cmap="gray_r", norm=norm)
            ax.set_axis_off()
            ax.set_title(f"{name}\nFWHM {cell[0]:g}\", sigma {cell[1]:g}" if column == 0
                         else name, fontsize=8)
    return figure


def update_card(model_path, summary, command):
    """Write the evaluation's per-cell means into the model card beside ``model_path``."""
    if model_path is None:
        raise InvalidParameterError("--update-card needs --model (the shipped model is read-only)")
    names = [c for c in summary.colnames if c.startswith(("psnr_", "ssim_", "gan_"))]
    GalaxyGAN.update_card(model_path, metrics={
        "evaluation": "held-out galaxies (RA above the median) of the training field",
        "command": command, "n_test_galaxies": summary.meta["n_test_galaxies"],
        "cells": [{"fwhm_arcsec": float(row["fwhm"].value), "sigma": float(row["sigma"]),
                   **{name: (bool(row[name]) if name == "gan_wins" else float(row[name]))
                      for name in names}} for row in summary]})


def main(argv=None):
    args = parser().parse_args(argv)
    model = GalaxyGAN.pretrained() if args.model is None else GalaxyGAN.load(args.model)
    train, test = held_out_pairs(model, args.field_dir, args.quiet)
    if args.max_galaxies:
        keep = list(dict.fromkeys(test.manifest["galaxy_id"]))[:args.max_galaxies]
        test = test.select(np.isin(test.manifest["galaxy_id"], keep))
    iterations = tune_iterations(train, n_galaxies=args.tune_galaxies)
    runs, examples = evaluate_restoration(model, test, iterations, progress=not args.quiet)
    summary = summarize_restoration(runs)
    summary["iterations_Richardson-Lucy"] = [
        iterations["Richardson-Lucy"][(f, s)] for f, s in zip(summary["fwhm"].value,
                                                              summary["sigma"])]
    summary["iterations_blind"] = [iterations["blind"][(f, s)] for f, s in
                                   zip(summary["fwhm"].value, summary["sigma"])]
    summary.meta["n_test_galaxies"] = int(len(np.unique(test.manifest["galaxy_id"])))
    summary.meta["model"] = str(args.model or "pretrained")
    args.output.mkdir(parents=True, exist_ok=True)
    for name, table in (("galaxygan_runs.ecsv", runs), ("galaxygan_summary.ecsv", summary)):
        with atomic_output(args.output / name, overwrite=args.overwrite) as temporary:
            table.write(temporary, format="ascii.ecsv")
    save_figure(plot_restoration_grid(summary), args.output / "galaxygan_grid.png",
                overwrite=args.overwrite)
    cells = [(1.4, 1.0), (1.8, 2.0), (2.5, 5.0), (2.5, 10.0)]
    save_figure(gallery(examples, test.stretch, [c for c in cells if c in examples]),
                args.output / "galaxygan_gallery.png", overwrite=args.overwrite)
    columns = ["fwhm", "sigma", "psnr_degraded", "psnr_GalaxyGAN", "psnr_Richardson-Lucy",
               "psnr_Wiener", "psnr_blind", "ssim_GalaxyGAN", "gan_margin_psnr",
               "gan_margin_ssim", "gan_wins"]
    summary[columns].pprint(max_lines=-1, max_width=250)
    if args.update_card:
        update_card(args.model, summary, " ".join(["python", "scripts/evaluate_galaxygan.py"]
                                                  + (sys.argv[1:] if argv is None else argv)))
    print(f"GalaxyGAN beats the best baseline in PSNR and SSIM in "
          f"{int(summary['gan_wins'].sum())} of {len(summary)} cells "
          f"({summary.meta['n_test_galaxies']} held-out galaxies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
