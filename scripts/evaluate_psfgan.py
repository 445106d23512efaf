#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate PSFGAN against the two-component parametric fit on held-out galaxies of a field.

Rebuilds the galaxy selection the model was trained on (field, band, stamp
size, magnitude range and seed from its model card) and, on the held-out half
(RA above the median), adds artificial point sources at contrasts
{0, 0.1, 0.3, 1, 2, 3, 5, 10} (contrast 0: no point source) with the psField
PSF at each galaxy's position.  Every PSFGAN (the model and any given with
``--compare``) runs on all held-out galaxies; the point source + Sérsic fit,
at about 3 seconds a galaxy, on ``--fit-galaxies`` of them spread from the
brightest to the faintest, and the side-by-side tables compare every method on
those.  Measured, per method and contrast: the fraction detected (at contrast
0 the false-positive rate), the bias and scatter of the point-source and host
magnitudes, the widths of the pulls (measured - true flux) / error, the
failures and the seconds per galaxy; the same for hosts brighter than r = 19;
the false-positive rate on simulated bulge + disk + bar galaxies with compact
bulges; how far any host differs from its input outside the network's
window; the PSF-mismatch study (test point sources made with PSFs 0.5 to 1.5
times as wide as the PSF the methods are given).  Writes ECSV tables, figures
(magnitude errors, completeness, pulls, PSF mismatch, a gallery with galaxies
without a point source and with close neighbours), RST tables and a JSON
summary.

    python scripts/evaluate_psfgan.py --output psfgan-evaluation --workers 2 \
        [--compare other-psfgan.keras] [--update-card]

``--calibrate-fit FILE`` instead calibrates the fit's errors on pairs of the
training side and writes them (the file galaxyml ships as
``galaxyml/morphology/data/fit-errors.json``).
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.table import vstack

from galaxyml.datasets import example_field_dir, local_field_files, simulate_galaxy_stamps
from galaxyml.exceptions import InvalidParameterError
from galaxyml.gan import PSFGAN
from galaxyml.io.writing import atomic_output
from galaxyml.morphology import (calibrate_decomposition_errors, evaluate_decomposition,
                                 false_positive_rate, fit_point_source_sersic, plot_completeness,
                                 plot_magnitude_errors, plot_psf_mismatch, plot_pulls,
                                 prepare_image, summarize_decomposition)
from galaxyml.psf.sdss import SDSSPSFBasis
from galaxyml.visualization import image_norm, save_figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_psfgan import field_pairs  # noqa: E402

FIT_NAME = "point source + Sersic fit"
# The bright hosts' table: the held-out 64-pixel stamps of field 2583-2-136 hold no host
# brighter than r = 18 (larger galaxies do not fit); a few are brighter than 19.
BRIGHT = 19.0


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras model with its card (default: the shipped model)")
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="another PSFGAN evaluated on the same pairs; may be repeated")
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--contrasts", default="0,0.1,0.3,1,2,3,5,10",
                        help="contrasts of the test point sources (0: none)")
    parser.add_argument("--realisations", type=int, default=1,
                        help="noise realisations per galaxy and contrast")
    parser.add_argument("--fit-galaxies", type=int, default=40,
                        help="held-out galaxies the fit runs on (0: all)")
    parser.add_argument("--simulated", type=int, default=100,
                        help="simulated bulge + disk + bar galaxies for the false positives")
    parser.add_argument("--mismatch-scales", default="0.5,0.75,1.25,1.5",
                        help="widths of the test PSFs relative to the given PSF ('' for none)")
    parser.add_argument("--mismatch-contrasts", default="5",
                        help="contrasts of the PSF-mismatch study")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the parametric fits")
    parser.add_argument("--calibrate-fit", type=Path, default=None, metavar="FILE",
                        help="calibrate the fit's errors on training pairs, write them to FILE "
                             "and stop")
    parser.add_argument("--calibration-galaxies", type=int, default=60,
                        help="training galaxies for --calibrate-fit (2 pairs each)")
    parser.add_argument("--calibrate-model", action="store_true",
                        help="calibrate the errors of --model on fresh training pairs (as "
                             "scripts/train_psfgan.py does after training), write them into "
                             "its card and stop")
    parser.add_argument("--output", type=Path, default=Path("psfgan-evaluation"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--update-card", action="store_true",
                        help="record the summary in the model's card")
    parser.add_argument("--quiet", action="store_true")
    return parser


def floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def spread_galaxies(pairs, n):
    """The pairs of at most ``n`` galaxies spread evenly over the selection, which runs
    from the brightest to the faintest (all for n = 0)."""
    galaxies = np.array(list(dict.fromkeys(pairs.manifest["galaxy_id"])))
    if not n or n >= len(galaxies):
        return pairs
    picked = galaxies[np.unique(np.linspace(0, len(galaxies) - 1, n).round()).astype(int)]
    return pairs.select(np.isin(pairs.manifest["galaxy_id"], picked))


def side_pairs(model, args, contrasts, realisations, scale, side="test", catalog=None,
               seed_offset=0):
    """PSFGAN pairs of one side of the field at fixed contrasts, made as for training."""
    training = model.card["training"]
    pairs, catalog, _ = field_pairs(args.field_dir, training["field"], model.band,
                                    training["stamp_size"], training["mag_range"][1],
                                    realisations, scale, training["seed"] + seed_offset, True,
                                    stretch=model.stretch, contrasts=contrasts,
                                    catalog=catalog)
    return pairs.subset(side), catalog


def method_name(model):
    """The name of a PSFGAN in the tables: its generator."""
    return f"PSFGAN ({model.mode} generator)"


def network_runs(models, pairs, args, keep=()):
    """Runs of every PSFGAN on the pairs and the first one's gallery examples."""
    runs, examples = [], {}
    for model in models:
        model_runs, model_examples = evaluate_decomposition(
            pairs, model.remove_point_source, method_name(model), keep=keep,
            progress=not args.quiet)
        runs.append(model_runs)
        for k in keep:
            examples.setdefault(k, model_examples[k])
    return vstack(runs), examples


def fit_runs(pairs, args, keep=()):
    return evaluate_decomposition(pairs, fit_point_source_sersic, FIT_NAME, chunk=8,
                                  workers=args.workers, keep=keep, progress=not args.quiet)


def window_changes(model, pairs, limit=400):
    """The largest |host - input| outside the network's central window, over pairs."""
    largest = 0.0
    for k in range(min(len(pairs), limit)):
        condition = pairs.linear_pair(k)[0]
        host, table = model.remove_point_source(condition)
        item = prepare_image(condition)
        yy, xx = np.indices(item.shape)
        outside = ((np.abs(xx - table["x"][0].value) > model.window / 2 + 2)
                   | (np.abs(yy - table["y"][0].value) > model.window / 2 + 2))
        largest = max(largest, float(np.abs(host.data[0] - condition.data[0])[outside].max()))
    return largest


def neighbour_example(pairs, window):
    """The row of the contrast-0 pair whose galaxy has the most pixels of other sources
    within the central window."""
    rows = np.flatnonzero(pairs.manifest["contrast"] == 0)
    counts = []
    for k in rows:
        item = prepare_image(pairs.linear_pair(k)[0])
        yy, xx = np.indices(item.shape)
        inside = (np.abs(xx - item.x) < window / 2) & (np.abs(yy - item.y) < window / 2)
        counts.append(int((item.neighbours & inside).sum()))
    return int(rows[int(np.argmax(counts))]) if len(rows) else None


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
            contrast = manifest["contrast"][k]
            label = "no point source" if contrast == 0 else f"contrast {contrast:g}"
            ax.set_title(f"{name}\n{label}" if column == 0 else name, fontsize=8)
    return figure


def simulated_false_positives(models, args):
    """False positives of every method on simulated galaxies without a point source."""
    training = models[0].card["training"]
    files = local_field_files(training["field"], models[0].band, args.field_dir)
    psf = SDSSPSFBasis(files.psfield, models[0].band).at(744.5, 1023.5)
    stamps, _ = simulate_galaxy_stamps(args.simulated, psf, size=training["stamp_size"],
                                       seed=training["seed"] + 7)
    tables = [false_positive_rate(stamps, model.remove_point_source, method_name(model), psf=psf)
              for model in models]
    fits = stamps[:args.fit_galaxies] if args.fit_galaxies else stamps
    tables.append(false_positive_rate(fits, fit_point_source_sersic, FIT_NAME, chunk=8,
                                      psf=psf))
    return vstack(tables)


TABLE_COLUMNS = ("method", "n", "failed_fraction", "detected_fraction", "ps_bias", "ps_scatter",
                 "ps_pull_width", "host_bias", "host_scatter", "host_pull_width",
                 "seconds_per_galaxy")


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
    if not np.isfinite(value):
        return "--"
    return f"{value:.3g}" if abs(value) < 0.01 or abs(value) >= 10 else f"{value:.3f}"


def write_table(table, path, overwrite):
    with atomic_output(path, overwrite=overwrite) as temporary:
        table.write(temporary, format="ascii.ecsv")


def _records(table):
    """The rows of a table as JSON-ready dicts (units dropped: magnitudes and seconds)."""
    def plain(value):
        value = getattr(value, "value", value)
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and not np.isfinite(value) else value

    return [{name: plain(row[name]) for name in table.colnames} for row in table]


def headline(summary, bright, simulated, names):
    """Per method: false-positive rates, the largest host bias, pull widths, scatter
    against the fit's, seconds per galaxy."""
    result = {}
    fit = summary[summary["method"] == FIT_NAME]
    for name in names:
        rows = summary[summary["method"] == name]
        agn = rows[rows["contrast"] > 0]
        sim = simulated[simulated["method"] == name]
        entry = {
            "false_positive_rate_real": float(
                rows["detected_fraction"][rows["contrast"] == 0][0]),
            "false_positive_rate_simulated": float(np.mean(sim["ps_detected"])),
            "largest_abs_host_bias_mag": float(np.nanmax(np.abs(agn["host_bias"].value))),
            "ps_pull_width_by_contrast": {f"{c:g}": float(w) for c, w in
                                          zip(rows["contrast"], rows["ps_pull_width"])},
            "host_pull_width_by_contrast": {f"{c:g}": float(w) for c, w in
                                            zip(rows["contrast"], rows["host_pull_width"])},
            "seconds_per_galaxy": float(np.mean(rows["seconds_per_galaxy"].value))}
        if name != FIT_NAME and len(fit):
            with np.errstate(divide="ignore", invalid="ignore"):
                entry["ps_scatter_over_fit_by_contrast"] = {
                    f"{c:g}": float(a / b) for c, a, b in zip(
                        agn["contrast"], agn["ps_scatter"].value,
                        fit[fit["contrast"] > 0]["ps_scatter"].value)}
                b_rows = bright[bright["method"] == name]
                b_fit = bright[bright["method"] == FIT_NAME]
                entry[f"ps_scatter_over_fit_hosts_brighter_than_{BRIGHT:g}"] = {
                    f"{c:g}": float(a / b) for c, a, b in zip(
                        b_rows["contrast"], b_rows["ps_scatter"].value,
                        b_fit["ps_scatter"].value) if c > 0}
                entry["speedup_over_fit"] = float(np.mean(fit["seconds_per_galaxy"].value)
                                                  / entry["seconds_per_galaxy"])
        result[name] = entry
    return result


def calibrate_fit(model, args, command):
    """Calibrate the fit's errors on training pairs (contrast 0 included) and write them."""
    contrasts = [0.0, 0.1, 0.3, 1, 2, 3, 5, 10]
    pairs, _ = side_pairs(model, args, contrasts, 1, 1.0, side="train", seed_offset=11)
    galaxies = np.array(list(dict.fromkeys(pairs.manifest["galaxy_id"])))
    rng = np.random.default_rng(0)
    chosen = np.zeros(len(pairs), bool)
    for galaxy in spread_galaxies(pairs, args.calibration_galaxies).manifest["galaxy_id"]:
        chosen |= pairs.manifest["galaxy_id"] == galaxy
    # Two contrasts per galaxy, drawn so that every contrast is covered.
    rows = np.flatnonzero(chosen)
    picked = [rng.choice(rows[pairs.manifest["galaxy_id"][rows] == g], 2, replace=False)
              for g in np.unique(pairs.manifest["galaxy_id"][rows])]
    subset = pairs.select(np.isin(np.arange(len(pairs)), np.concatenate(picked)))
    print(f"calibrating the fit on {len(subset)} training pairs of "
          f"{len(np.unique(subset.manifest['galaxy_id']))} galaxies (of {len(galaxies)})")
    errors = calibrate_decomposition_errors(subset, fit_point_source_sersic, chunk=8,
                                            workers=args.workers, progress=not args.quiet)
    errors.meta.update(command=command, field=model.card["training"]["field"],
                       side="training (RA below the median)")
    print(errors)
    with atomic_output(args.calibrate_fit, overwrite=args.overwrite) as temporary:
        temporary.write_text(json.dumps(errors.to_dict(), indent=2) + "\n")
    return 0


def calibrate_model(model, args, command):
    """Calibrate a PSFGAN's errors on two fresh pairs per training galaxy, a fifth of them
    without a point source, and write them into its card."""
    if args.model is None:
        raise InvalidParameterError("--calibrate-model needs --model (the shipped model is "
                                    "read-only)")
    training = model.card["training"]
    scale = training.get("psf_scale", [1.0])
    scale = scale[0] if len(scale) == 1 else tuple(scale)
    pairs, _, _ = field_pairs(args.field_dir, training["field"], model.band,
                              training["stamp_size"], training["mag_range"][1], 2, scale,
                              training["seed"] + 1, True, stretch=model.stretch,
                              no_agn_fraction=0.2)
    errors = calibrate_decomposition_errors(pairs.subset("train"), model.remove_point_source,
                                            progress=not args.quiet)
    errors.meta["command"] = command
    PSFGAN.update_card(args.model, error_model=errors.to_dict())
    print(errors)
    return 0


def main(argv=None):
    args = parser().parse_args(argv)
    command = " ".join(["python", "scripts/evaluate_psfgan.py"]
                       + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    model = PSFGAN.pretrained() if args.model is None else PSFGAN.load(args.model)
    if args.calibrate_fit is not None:
        return calibrate_fit(model, args, command)
    if args.calibrate_model:
        return calibrate_model(model, args, command)
    models = [model] + [PSFGAN.load(path) for path in args.compare]
    names = [method_name(m) for m in models] + [FIT_NAME]
    args.output.mkdir(parents=True, exist_ok=True)
    contrasts = floats(args.contrasts)
    test, catalog = side_pairs(model, args, contrasts, args.realisations, 1.0)
    n_galaxies = int(len(np.unique(test.manifest["galaxy_id"])))
    common = spread_galaxies(test, args.fit_galaxies)
    n_common = int(len(np.unique(common.manifest["galaxy_id"])))
    print(f"{n_galaxies} held-out galaxies, {len(test)} pairs per network; the fit and the "
          f"side-by-side tables on {n_common} of them ({len(common)} pairs)")

    all_runs, _ = network_runs(models, test, args)
    shown = [float(c) for c in (0.0, 3.0, 10.0) if c in contrasts]
    keep = [int(np.flatnonzero(common.manifest["contrast"] == c)[0]) for c in shown]
    neighbour = neighbour_example(common, model.window)
    if neighbour is not None:
        keep.append(neighbour)
    common_runs, examples = network_runs(models, common, args, keep)
    fitted, fit_examples = fit_runs(common, args, keep)
    examples = {k: (*examples[k], fit_examples[k][1]) for k in keep}
    runs = vstack([common_runs, fitted])
    write_table(runs, args.output / "psfgan_runs.ecsv", args.overwrite)
    write_table(all_runs, args.output / "psfgan_runs_all.ecsv", args.overwrite)

    summary = summarize_decomposition(runs)
    summary_all = summarize_decomposition(all_runs)
    bright = summarize_decomposition(runs[runs["host_mag_true"].value < BRIGHT])
    simulated = simulated_false_positives(models, args)
    outside = {method_name(m): window_changes(m, common) for m in models}
    for table, name in ((summary, "psfgan_summary"), (summary_all, "psfgan_summary_all"),
                        (bright, "psfgan_summary_bright"), (simulated, "psfgan_simulated")):
        write_table(table, args.output / f"{name}.ecsv", args.overwrite)
    figures = {"psfgan_magnitude_errors": plot_magnitude_errors(runs, names),
               "psfgan_completeness": plot_completeness(summary, names),
               "psfgan_pulls": plot_pulls(runs, names, [c for c in (0.0, 1.0, 3.0, 10.0)
                                                        if c in contrasts]),
               "psfgan_gallery": gallery(examples, common.manifest)}
    for name, figure in figures.items():
        save_figure(figure, args.output / f"{name}.png", overwrite=args.overwrite)
    summary.pprint(max_lines=-1, max_width=250)

    mismatch = mismatch_study(models, model, args, catalog, runs, names)
    tables = rst_table(summary, "contrast", f"Side by side on {n_common} held-out galaxies")
    tables += "\n" + rst_table(summary_all, "contrast",
                               f"The networks on all {n_galaxies} held-out galaxies")
    tables += "\n" + rst_table(bright, "contrast", f"Hosts brighter than r = {BRIGHT:g}")
    if mismatch is not None:
        tables += "\n" + rst_table(mismatch, "psf_scale", "Magnitude errors by test PSF width")
    with atomic_output(args.output / "psfgan_tables.rst", overwrite=args.overwrite) as temp:
        temp.write_text(tables)

    results = headline(summary, bright, simulated, names)
    for name, value in outside.items():
        results[name]["largest_change_outside_window_nmgy"] = value
    with atomic_output(args.output / "psfgan_results.json", overwrite=args.overwrite) as temp:
        temp.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    if args.update_card:
        if args.model is None:
            raise InvalidParameterError("--update-card needs --model (the shipped model is "
                                        "read-only)")
        PSFGAN.update_card(args.model, metrics={
            "evaluation": "held-out galaxies (RA above the median) of the training field",
            "command": command, "n_test_galaxies": n_galaxies, "n_fit_galaxies": n_common,
            "by_contrast": _records(summary), "by_contrast_all_galaxies": _records(summary_all),
            f"hosts_brighter_than_{BRIGHT:g}": _records(bright),
            "psf_mismatch": None if mismatch is None else _records(mismatch),
            "summary": results})
    return 0


def mismatch_study(models, model, args, catalog, runs, names):
    """Scatter against the width of the test PSF (the methods are given the psField's)."""
    scales = floats(args.mismatch_scales)
    if not scales:
        return None
    mismatch_contrasts = floats(args.mismatch_contrasts)
    studies = [runs[np.isin(runs["contrast"], mismatch_contrasts)]]
    for scale in scales:
        pairs, _ = side_pairs(model, args, mismatch_contrasts, 1, scale, catalog=catalog)
        pairs = spread_galaxies(pairs, args.fit_galaxies)
        studies += [network_runs(models, pairs, args)[0], fit_runs(pairs, args)[0]]
    mismatch_runs = vstack(studies)
    mismatch = summarize_decomposition(mismatch_runs, by=("method", "psf_scale"))
    write_table(mismatch_runs, args.output / "psfgan_mismatch_runs.ecsv", args.overwrite)
    write_table(mismatch, args.output / "psfgan_mismatch_summary.ecsv", args.overwrite)
    save_figure(plot_psf_mismatch(mismatch, names), args.output / "psfgan_psf_mismatch.png",
                overwrite=args.overwrite)
    mismatch.pprint(max_lines=-1, max_width=250)
    return mismatch


if __name__ == "__main__":
    sys.exit(main())
