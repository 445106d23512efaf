#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate PSFGAN against the two-component parametric fit on held-out galaxies of a field.

Rebuilds the galaxy selection the model was trained on (field, band, stamp
size, magnitude range and seed from its model card) and, on the held-out half
(RA above the median), adds artificial point sources at contrasts
{0.1, 0.3, 1, 2, 3, 5, 10} (several noise realisations each) with the psField
PSF at each galaxy's position.  PSFGAN (`PSFGAN.remove_point_source`) and the
point source + Sérsic fit (`fit_point_source_sersic`) are each given that PSF;
for both, the bias (median) and scatter (half the 16-84% range) of the
point-source and host magnitude errors per contrast, the fraction of failed
decompositions and the seconds per galaxy are measured in the same run, for
the model and for any PSFGAN given with ``--compare``.  The
PSF-mismatch study makes the test point sources with PSFs 0.5, 0.75, 1.25 and
1.5 times as wide as the PSF both methods are given.  Writes ECSV tables, the
figures (magnitude error against contrast; scatter against PSF width) and a
gallery (input, PSFGAN host, residual, parametric host).

    python scripts/evaluate_psfgan.py --output psfgan-evaluation --workers 2 \
        [--compare paper-generator.keras]
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.table import vstack

from galaxyml.datasets import example_field_dir
from galaxyml.exceptions import InvalidParameterError
from galaxyml.gan import PSFGAN
from galaxyml.io.writing import atomic_output
from galaxyml.morphology import (evaluate_decomposition, fit_point_source_sersic,
                                 plot_magnitude_errors, plot_psf_mismatch,
                                 summarize_decomposition)
from galaxyml.visualization import image_norm, save_figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_psfgan import field_pairs  # noqa: E402

FIT_NAME = "point source + Sersic fit"


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras model with its card (default: the shipped model)")
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="another PSFGAN (for example the paper's generator) evaluated on "
                             "the same pairs; may be repeated")
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--contrasts", default="0.1,0.3,1,2,3,5,10")
    parser.add_argument("--realisations", type=int, default=2,
                        help="noise realisations per galaxy and contrast")
    parser.add_argument("--mismatch-scales", default="0.5,0.75,1.25,1.5",
                        help="widths of the test PSFs relative to the given PSF ('' for none)")
    parser.add_argument("--mismatch-contrasts", default="5",
                        help="contrasts of the PSF-mismatch study")
    parser.add_argument("--mismatch-realisations", type=int, default=1,
                        help="noise realisations per galaxy and contrast of the mismatch study")
    parser.add_argument("--max-galaxies", type=int, default=None,
                        help="evaluate at most this many held-out galaxies, spread evenly "
                             "from the brightest to the faintest")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the parametric fits")
    parser.add_argument("--output", type=Path, default=Path("psfgan-evaluation"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--update-card", action="store_true",
                        help="record the summary in the model's card")
    parser.add_argument("--quiet", action="store_true")
    return parser


def floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def held_out_pairs(model, args, contrasts, realisations, scale, catalog=None):
    """PSFGAN pairs of the held-out galaxies at fixed contrasts, made as for training."""
    training = model.card["training"]
    pairs, catalog, _ = field_pairs(args.field_dir, training["field"], model.band,
                                    training["stamp_size"], training["mag_range"][1],
                                    realisations, scale, training["seed"], True,
                                    stretch=model.stretch, contrasts=contrasts,
                                    catalog=catalog)
    test = pairs.subset("test")
    if args.max_galaxies:
        # Spread evenly over the selection, which runs from the brightest to the faintest.
        galaxies = np.array(list(dict.fromkeys(test.manifest["galaxy_id"])))
        picked = np.unique(np.linspace(0, len(galaxies) - 1, args.max_galaxies).round())
        test = test.select(np.isin(test.manifest["galaxy_id"], galaxies[picked.astype(int)]))
    return test, catalog


def method_name(model):
    """The name of a PSFGAN in the tables: its generator."""
    return f"PSFGAN ({'residual' if model.residual else 'paper'} generator)"


def all_methods(models, pairs, args, keep=()):
    """Runs of every PSFGAN and of the fit on the same pairs, and the gallery's examples:
    row -> (input, first PSFGAN's host, fit's host)."""
    progress = not args.quiet
    runs, examples = [], {}
    for model in models:
        model_runs, model_examples = evaluate_decomposition(
            pairs, model.remove_point_source, method_name(model), keep=keep, progress=progress)
        runs.append(model_runs)
        for k in keep:
            examples.setdefault(k, model_examples[k])
    fit_runs, fit_examples = evaluate_decomposition(
        pairs, fit_point_source_sersic, FIT_NAME, chunk=16, workers=args.workers, keep=keep,
        progress=progress)
    examples = {k: (*examples[k], fit_examples[k][1]) for k in keep}
    return vstack(runs + [fit_runs]), examples


def gallery(examples, manifest):
    """Input, PSFGAN host, PSFGAN residual and parametric host of a few pairs."""
    names = ["input", "PSFGAN host", "input - PSFGAN host", "parametric host"]
    figure, axes = plt.subplots(len(examples), len(names),
                                figsize=(2.3 * len(names), 2.4 * len(examples)),
                                squeeze=False, layout="constrained")
    for row, (k, (condition, gan_host, fit_host)) in enumerate(sorted(examples.items())):
        data = condition.data[0]
        images = [data, gan_host.data[0], data - gan_host.data[0], fit_host.data[0]]
        norm = image_norm(data)
        for column, (name, image) in enumerate(zip(names, images)):
            ax = axes[row, column]
            ax.imshow(image, origin="lower", cmap="gray_r", norm=norm)
            ax.set_axis_off()
            title = (f"{name}\ncontrast {manifest['contrast'][k]:g}" if column == 0 else name)
            ax.set_title(title, fontsize=8)
    return figure


def targets(summary, mismatch, name):
    """The issue's targets for the PSFGAN called ``name``: measured values and verdicts."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a scatter of 0 from one galaxy
        return _targets(summary, mismatch, name)


def _targets(summary, mismatch, name):
    bright = summary[summary["contrast"] > 2]
    gan, fit = bright[bright["method"] == name], bright[bright["method"] == FIT_NAME]
    result = {}
    for part in ("ps", "host"):
        ratio = gan[f"{part}_scatter"].value / fit[f"{part}_scatter"].value
        result[f"{part}_scatter_ratio_contrast_gt_2"] = [float(v) for v in ratio]
        result[f"{part}_scatter_50pct_lower"] = bool(np.all(ratio <= 0.5))
        result[f"{part}_bias_no_larger"] = bool(np.all(np.abs(gan[f"{part}_bias"].value)
                                                       <= np.abs(fit[f"{part}_bias"].value)))
    result["speedup_end_to_end"] = float(np.mean(fit["seconds_per_galaxy"].value)
                                         / np.mean(gan["seconds_per_galaxy"].value))
    if mismatch is not None:
        for method in (name, FIT_NAME):
            rows = mismatch[mismatch["method"] == method]
            matched = rows[rows["psf_scale"] == 1.0]
            for part in ("ps", "host"):
                growth = rows[f"{part}_scatter"].value / matched[f"{part}_scatter"].value[0]
                result[f"{method} {part} scatter growth by PSF scale"] = {
                    f"{scale:g}": float(g) for scale, g in zip(rows["psf_scale"], growth)}
    return result


TABLE_COLUMNS = ("method", "n", "failed_fraction", "ps_bias", "ps_scatter", "host_bias",
                 "host_scatter", "seconds_per_galaxy")


def rst_table(summary, key, title):
    """An RST list-table of a summary, grouped by ``key``, for the user guide."""
    columns = (key,) + TABLE_COLUMNS
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    lines += ["   * - " + "\n     - ".join(columns)]
    for row in summary[np.lexsort((summary["method"], summary[key]))]:
        cells = [f"{row[key]:g}"] + [_cell(row[name]) for name in TABLE_COLUMNS]
        lines += ["   * - " + "\n     - ".join(cells)]
    return "\n".join(lines) + "\n"


def _cell(value):
    value = getattr(value, "value", value)
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.3g}" if abs(value) < 0.01 or abs(value) >= 10 else f"{value:.3f}"


def write_table(table, path, overwrite):
    with atomic_output(path, overwrite=overwrite) as temporary:
        table.write(temporary, format="ascii.ecsv")


def update_card(model_path, summary, mismatch, verdict, command):
    if model_path is None:
        raise InvalidParameterError("--update-card needs --model (the shipped model is read-only)")
    PSFGAN.update_card(model_path, metrics={
        "evaluation": "held-out galaxies (RA above the median) of the training field",
        "command": command, "n_test_galaxies": summary.meta["n_test_galaxies"],
        "by_contrast": _records(summary),
        "psf_mismatch": None if mismatch is None else _records(mismatch),
        "targets": verdict})


def _records(table):
    """The rows of a table as JSON-ready dicts (units dropped: magnitudes and seconds)."""
    def plain(value):
        value = getattr(value, "value", value)
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and not np.isfinite(value) else value

    return [{name: plain(row[name]) for name in table.colnames} for row in table]


def main(argv=None):
    args = parser().parse_args(argv)
    model = PSFGAN.pretrained() if args.model is None else PSFGAN.load(args.model)
    models = [model] + [PSFGAN.load(path) for path in args.compare]
    names = [method_name(m) for m in models] + [FIT_NAME]
    args.output.mkdir(parents=True, exist_ok=True)
    contrasts = floats(args.contrasts)
    test, catalog = held_out_pairs(model, args, contrasts, args.realisations, 1.0)
    n_galaxies = int(len(np.unique(test.manifest["galaxy_id"])))
    print(f"{n_galaxies} held-out galaxies, {len(test)} pairs per method")
    shown = [float(c) for c in (0.3, 3.0, 10.0) if c in contrasts]
    keep = [int(np.flatnonzero(test.manifest["contrast"] == c)[0]) for c in shown]
    runs, examples = all_methods(models, test, args, keep)
    summary = summarize_decomposition(runs)
    summary.meta["n_test_galaxies"] = n_galaxies
    write_table(runs, args.output / "psfgan_runs.ecsv", args.overwrite)
    write_table(summary, args.output / "psfgan_summary.ecsv", args.overwrite)
    save_figure(plot_magnitude_errors(runs, names),
                args.output / "psfgan_magnitude_errors.png", overwrite=args.overwrite)
    save_figure(gallery(examples, test.manifest), args.output / "psfgan_gallery.png",
                overwrite=args.overwrite)
    summary.pprint(max_lines=-1, max_width=250)

    mismatch = None
    scales = floats(args.mismatch_scales)
    if scales:
        mismatch_contrasts = floats(args.mismatch_contrasts)
        matched = runs[np.isin(runs["contrast"], mismatch_contrasts)]
        studies = [matched]
        for scale in scales:
            pairs, _ = held_out_pairs(model, args, mismatch_contrasts,
                                      args.mismatch_realisations, scale, catalog)
            studies.append(all_methods(models, pairs, args)[0])
        mismatch_runs = vstack(studies)
        mismatch = summarize_decomposition(mismatch_runs, by=("method", "psf_scale"))
        write_table(mismatch_runs, args.output / "psfgan_mismatch_runs.ecsv", args.overwrite)
        write_table(mismatch, args.output / "psfgan_mismatch_summary.ecsv", args.overwrite)
        save_figure(plot_psf_mismatch(mismatch, names),
                    args.output / "psfgan_psf_mismatch.png", overwrite=args.overwrite)
        mismatch.pprint(max_lines=-1, max_width=250)

    tables = rst_table(summary, "contrast", "Magnitude errors by contrast")
    if mismatch is not None:
        tables += "\n" + rst_table(mismatch, "psf_scale", "Magnitude errors by test PSF width")
    with atomic_output(args.output / "psfgan_tables.rst", overwrite=args.overwrite) as temp:
        temp.write_text(tables)

    verdict = targets(summary, mismatch, names[0])
    with atomic_output(args.output / "psfgan_targets.json", overwrite=args.overwrite) as temp:
        temp.write_text(json.dumps(verdict, indent=2) + "\n")
    print(json.dumps(verdict, indent=2))
    if args.update_card:
        update_card(args.model, summary, mismatch, verdict,
                    " ".join(["python", "scripts/evaluate_psfgan.py"]
                             + (sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
