#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate GalaxyGAN models against classical deconvolution on held-out galaxies of a field.

Makes the field's GalaxyGAN pairs as the paper did (r < 19 galaxies, 128-pixel
stamps, every cell of the grid FWHM {1.4, 1.8, 2.2, 2.5} arcsec x sigma
{1, 1.2, 2, 5, 10}, the paper's stretch for PSNR and SSIM), tunes the
iteration counts of Richardson-Lucy and blind deconvolution on the training
side (RA below the median), and evaluates every model given, Richardson-Lucy,
Wiener, blind deconvolution, Richardson-Lucy stopped by the discrepancy principle
(the refine mode's start) and the degraded input on the held-out side (RA
above the median), and compares the first model with each other one, cell by
cell.  Beside the flux errors it gives the degraded data's own flux noise in the
galaxy's grown segment, and what the segment alone costs a noise-free restoration
(the first model's recoveries of the least degraded cell stand in for one).  Then it
calibrates the first model's dropout uncertainty on training pairs and measures its
coverage on held-out ones.  Writes the per-pair runs and the per-cell summary (ECSV,
with the comparisons in its ``head_to_head`` metadata), a figure of PSNR and SSIM
against the grid, and a gallery with the uncertainty map.

    python scripts/evaluate_galaxygan.py --model refine.keras --model paper.keras \\
        --output galaxygan-evaluation
"""

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from galaxyml.datasets import (example_field_dir, galaxy_catalog, local_field_files,
                               make_galaxygan_pairs)
from galaxyml.degrade import background_std
from galaxyml.gan import GalaxyGAN
from galaxyml.io.writing import atomic_output
from galaxyml.restoration import (DECONVOLUTION_METHODS, compare_models, evaluate_restoration,
                                  fit_uncertainty_calibration, plot_restoration_grid,
                                  segment_flux_bias, summarize_restoration, tune_iterations,
                                  uncertainty_coverage)
from galaxyml.visualization import image_norm, save_figure


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", default=None,
                        help="a .keras model with its card; repeat to compare several (default: "
                             "the shipped model)")
    parser.add_argument("--name", action="append", default=None,
                        help="the table's name of each --model, in order (default: "
                             "GalaxyGAN-<mode>[-<size>net])")
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--field", default="2583-2-136", help="RUN-CAMCOL-FIELD")
    parser.add_argument("--mag-limit", type=float, default=19.0,
                        help="faintest r Kron magnitude of the evaluated galaxies (the paper's)")
    parser.add_argument("--size", type=int, default=128, help="stamp size in pixels")
    parser.add_argument("--max-galaxies", type=int, default=None,
                        help="evaluate at most this many held-out galaxies")
    parser.add_argument("--tune-galaxies", type=int, default=6)
    parser.add_argument("--samples", type=int, default=10,
                        help="dropout draws for the uncertainty (0: skip its calibration)")
    parser.add_argument("--coverage-galaxies", type=int, default=8,
                        help="galaxies per side for the uncertainty's calibration and coverage")
    parser.add_argument("--output", type=Path, default=Path("galaxygan-evaluation"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--update-card", action="store_true",
                        help="record the results in the models' cards (and the first model's "
                             "uncertainty calibration)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def model_name(model):
    """GalaxyGAN-<mode>, with the network size when it is not the small one."""
    suffix = "" if model.config == "small" else f"-{model.config}net"
    return f"GalaxyGAN-{model.mode}{suffix}"


def field_pairs(args):
    """The train and test pairs of the field on the paper's grid, in the paper's stretch."""
    frames = local_field_files(args.field, "gri", args.field_dir).read()
    catalog = galaxy_catalog(frames, size=args.size, mag_range=(12.0, args.mag_limit))
    pairs = make_galaxygan_pairs(frames, catalog=catalog, size=args.size, seed=0,
                                 progress=not args.quiet)
    return pairs.subset("train"), pairs.subset("test")


def first_galaxies(pairs, n):
    """The pairs of the first ``n`` galaxies of the manifest."""
    keep = list(dict.fromkeys(pairs.manifest["galaxy_id"]))[:n]
    return pairs.select(np.isin(pairs.manifest["galaxy_id"], keep))


def calibrate_uncertainty(model, train, test, args):
    """Fit the spread's calibration on training pairs; the held-out coverage with it."""
    calibration = fit_uncertainty_calibration(model, first_galaxies(train, args.coverage_galaxies),
                                              args.samples)
    model.card["uncertainty"] = calibration
    held_out = uncertainty_coverage(model, first_galaxies(test, args.coverage_galaxies),
                                    args.samples)
    return {**calibration, "samples": args.samples, "held_out": held_out}


def gallery(examples, cells, models, uncertainty):
    """Original, degraded, the models, the baselines and the uncertainty, for a few cells."""
    names = ["original", "degraded", *models, *DECONVOLUTION_METHODS]
    columns = len(names) + 1
    figure, axes = plt.subplots(len(cells), columns, figsize=(2.1 * columns, 2.3 * len(cells)),
                                squeeze=False, layout="constrained")
    for row, cell in enumerate(cells):
        images = examples[cell]
        norm = image_norm(images["original"][1])
        for column, name in enumerate(names):
            ax = axes[row, column]
            ax.imshow(images[name][1], origin="lower", cmap="gray_r", norm=norm)
            ax.set_title(f"{name}\nFWHM {cell[0]:g}\", sigma {cell[1]:g}" if column == 0
                         else name, fontsize=7)
        ax = axes[row, -1]
        ax.imshow(uncertainty[cell][1], origin="lower", cmap="magma")
        ax.set_title(f"{models[0]}\nuncertainty (r)", fontsize=7)
    for ax in axes.flat:
        ax.set_axis_off()
    return figure


def cell_uncertainty(model, pairs, cells, samples):
    """The model's uncertainty map of the first pair of each cell."""
    maps = {}
    for cell in cells:
        chosen = np.flatnonzero(np.isclose(pairs.manifest["fwhm"].value, cell[0])
                                & np.isclose(pairs.manifest["sigma"], cell[1]))
        degraded, _ = pairs.linear_pair(int(chosen[0]))
        _, std = model.recover(degraded.data, fwhm=cell[0], samples=samples)
        maps[cell] = std
    return maps


def segment_bias(model, pairs, draws=5):
    """The flux measures' own bias (`segment_flux_bias`), with the model's recoveries of
    the least degraded cell as the noise-free galaxies and each original's noise."""
    cell = min(zip(pairs.manifest["sigma"], pairs.manifest["fwhm"].value))
    chosen = np.flatnonzero(np.isclose(pairs.manifest["sigma"], cell[0])
                            & np.isclose(pairs.manifest["fwhm"].value, cell[1]))
    linear = [pairs.linear_pair(int(k)) for k in chosen]
    recovered = model.recover([degraded.data for degraded, _ in linear], fwhm=cell[1])
    errors = {"segment": [], "grown": []}
    for k, ((_, original), clean) in enumerate(zip(linear, recovered)):
        noise = background_std(original.data[original.data.shape[0] // 2])
        for key, values in segment_flux_bias(clean, noise, draws, seed=k).items():
            errors[key].extend(values)
    return {"stand_in": f"the first model's recoveries at FWHM {cell[1]:g} arcsec, sigma "
                        f"{cell[0]:g}, with white noise of each original's level",
            "galaxies": len(linear), "draws_per_galaxy": draws,
            **{f"{key}_{name}": float(statistic(values)) if values else np.nan
               for key, values in errors.items()
               for name, statistic in (("mean", np.mean), ("std", np.std))}}


def cell_counts(summary, name):
    """The cells where model ``name`` beats the best baseline, where its flux error
    (in the segment, in the grown segment) is no worse than Richardson-Lucy's, and where
    its flux error in the grown segment is within the data's own flux noise."""
    return {"cells_won": int(summary[f"wins_{name}"].sum()),
            "cells_flux_ok": int(summary[f"flux_ok_{name}"].sum()),
            "cells_flux_grown_ok": int(summary[f"flux_grown_ok_{name}"].sum()),
            "cells_flux_within_noise": int(summary[f"flux_within_noise_{name}"].sum())}


def card_metrics(summary, name, command):
    """The evaluation's per-cell means for the card of the model named ``name``."""
    columns = [c for c in summary.colnames
               if c.startswith(("psnr_", "ssim_", "flux_error_", "flux_excess_",
                                "flux_grown_excess_")) or c == "flux_noise"]
    return {"evaluation": "held-out galaxies (RA above the median, r < "
                          f"{summary.meta['mag_limit']:g}) of the training field, the paper's "
                          "grid and stretch",
            "command": command, "name": name, "n_test_galaxies": summary.meta["n_test_galaxies"],
            **cell_counts(summary, name),
            "segment_bias": summary.meta["segment_bias"],
            "cells": [{"fwhm_arcsec": float(row["fwhm"].value), "sigma": float(row["sigma"]),
                       **{c: float(row[c]) for c in columns},
                       "margin_psnr": float(row[f"margin_psnr_{name}"]),
                       "margin_ssim": float(row[f"margin_ssim_{name}"]),
                       "wins": bool(row[f"wins_{name}"])} for row in summary]}


def print_table(summary, models):
    """The per-cell table: every method's PSNR, SSIM and flux error, and the margins."""
    methods = ["degraded", *models, *DECONVOLUTION_METHODS]
    for metric, form in (("psnr", "{:6.2f}"), ("ssim", "{:6.3f}"), ("flux_error", "{:6.3f}"),
                         ("flux_error_grown", "{:6.3f}")):
        print(f"\nmean {metric} per cell"
              + (" (last column: the data's own flux noise)" if metric == "flux_error_grown"
                 else ""))
        print(f"{'FWHM':>5} {'sigma':>5} " + " ".join(f"{m:>20}" for m in methods))
        for row in summary:
            print(f"{row['fwhm'].value:5.1f} {row['sigma']:5.1f} "
                  + " ".join(f"{form.format(row[f'{metric}_{m}']):>20}" for m in methods)
                  + (f" {row['flux_noise']:>10.3f}" if metric == "flux_error_grown" else ""))
    for model in models:
        print(f"\n{model}: margins over the best baseline (PSNR dB, SSIM); flux error minus "
              "Richardson-Lucy's (percentage points, +- standard error over the pairs)")
        for row in summary:
            print(f"{row['fwhm'].value:5.1f} {row['sigma']:5.1f} "
                  f"{row[f'margin_psnr_{model}']:+6.2f} {row[f'margin_ssim_{model}']:+7.3f} "
                  f"{'wins' if row[f'wins_{model}'] else 'LOSES'} flux "
                  f"{flux_verdict(row, model, 'flux')}, grown segment "
                  f"{flux_verdict(row, model, 'flux_grown')}")


def flux_verdict(row, model, measure):
    """'ok' or 'WORSE than RL', with the excess over Richardson-Lucy and its error."""
    excess, error = (100 * row[f"{measure}_excess{part}_{model}"] for part in ("", "_se"))
    verdict = "ok" if row[f"{measure}_ok_{model}"] else "WORSE than RL"
    return f"{verdict} ({excess:+.1f} +- {error:.1f} pp)"


def main(argv=None):
    args = parser().parse_args(argv)
    command = " ".join(["python", "scripts/evaluate_galaxygan.py"]
                       + (sys.argv[1:] if argv is None else argv))
    paths = args.model or [None]
    loaded = [GalaxyGAN.pretrained() if path is None else GalaxyGAN.load(path) for path in paths]
    names = args.name or [model_name(model) for model in loaded]
    if len(names) != len(loaded):
        raise SystemExit(f"error: {len(names)} --name for {len(loaded)} models")
    models = dict(zip(names, loaded))
    if len(models) != len(loaded):
        raise SystemExit("error: two models of the same name; name them with --name")
    train, test = field_pairs(args)
    if args.max_galaxies:
        test = first_galaxies(test, args.max_galaxies)
    iterations = tune_iterations(train, n_galaxies=args.tune_galaxies)
    runs, examples = evaluate_restoration(models, test, iterations, progress=not args.quiet)
    summary = summarize_restoration(runs)
    for method in ("Richardson-Lucy", "blind"):
        summary[f"iterations_{method}"] = [iterations[method][(f, s)] for f, s in
                                           zip(summary["fwhm"].value, summary["sigma"])]
    summary.meta.update(n_test_galaxies=int(len(np.unique(test.manifest["galaxy_id"]))),
                        mag_limit=args.mag_limit, models=list(models),
                        paths=[str(p or "pretrained") for p in paths])
    summary.meta["head_to_head"] = {other: compare_models(summary, names[0], other)
                                    for other in names[1:]}
    first = loaded[0]
    summary.meta["segment_bias"] = segment_bias(first, test)
    if args.samples:
        summary.meta["uncertainty"] = calibrate_uncertainty(first, train, test, args)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, table in (("galaxygan_runs.ecsv", runs), ("galaxygan_summary.ecsv", summary)):
        with atomic_output(args.output / name, overwrite=args.overwrite) as temporary:
            table.write(temporary, format="ascii.ecsv")
    save_figure(plot_restoration_grid(summary), args.output / "galaxygan_grid.png",
                overwrite=args.overwrite)
    cells = [c for c in [(1.4, 1.0), (1.8, 2.0), (2.5, 5.0), (2.5, 10.0)] if c in examples]
    uncertainty = cell_uncertainty(first, test, cells, max(args.samples, 2))
    save_figure(gallery(examples, cells, list(models), uncertainty),
                args.output / "galaxygan_gallery.png", overwrite=args.overwrite)
    print_table(summary, list(models))
    if args.update_card:
        for path, (name, model) in zip(paths, models.items()):
            if path is None:
                raise SystemExit("error: --update-card needs --model (the installed shipped "
                                 "model is read-only)")
            entries = {"metrics": card_metrics(summary, name, command)}
            if model is first and args.samples:
                entries["uncertainty"] = summary.meta["uncertainty"]
            GalaxyGAN.update_card(path, **entries)
    for name in models:
        counts = cell_counts(summary, name)
        print(f"{name} beats the best baseline in PSNR and SSIM in {counts['cells_won']} of "
              f"{len(summary)} cells; its flux error is no worse than Richardson-Lucy's in "
              f"{counts['cells_flux_ok']} (in the grown segment: "
              f"{counts['cells_flux_grown_ok']}; {summary.meta['n_test_galaxies']} held-out "
              f"galaxies); its flux error in the grown segment is within the data's own flux "
              f"noise in {counts['cells_flux_within_noise']}")
    bias = summary.meta["segment_bias"]
    print(f"bias of the flux measures for a noise-free restoration ({bias['stand_in']}): "
          f"segment {bias['segment_mean']:+.2%} +- {bias['segment_std']:.2%}, grown segment "
          f"{bias['grown_mean']:+.2%} +- {bias['grown_std']:.2%}")
    for other, comparison in summary.meta["head_to_head"].items():
        print(f"{names[0]} against {other}: higher PSNR in {comparison['psnr_higher']}, higher "
              f"SSIM in {comparison['ssim_higher']} and a lower flux error in "
              f"{comparison['flux_error_lower']} of {comparison['cells']} cells; "
              f"{comparison['mean_psnr_difference']:+.2f} dB and "
              f"{comparison['mean_ssim_difference']:+.3f} SSIM on average")
    if args.samples:
        held_out = summary.meta["uncertainty"]["held_out"]
        calibration = summary.meta["uncertainty"]
        print(f"{list(models)[0]} uncertainty ({args.samples} draws, "
              f"{calibration['scale']:.3g} x spread ** {calibration['exponent']:.3f}): "
              f"{held_out['within_1sigma']:.3f} of held-out pixels within 1 sigma, "
              f"{held_out['within_2sigma']:.3f} within 2 sigma (galaxies: "
              f"{held_out['within_1sigma_galaxy']:.3f}, {held_out['within_2sigma_galaxy']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
