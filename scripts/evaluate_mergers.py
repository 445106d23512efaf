#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate the merger CNN against CAS, Gini-M20 and a logistic regression on both.

Two labelled sets:

* Galaxy Zoo 1 (``../shared/data/galaxyzoo1``): SDSS gri colour JPEGs,
  split by ``objid``, stratified (60% train, 20% validation, 20% test);
* simulated mergers made from the real field (`make_merger_samples`):
  train on the galaxies with RA below the median (a fifth of those
  galaxies held out for validation), test on the other half.

For each, the CNN is trained from scratch and with transfer from the
natural-image backbone on training sets of several sizes with several
seeds (the learning curves); the full-size run of the first seed is the
one in the score table.  CAS and Gini-M20 are measured with statmorph on
the same stamps (the green channel of the JPEG with its median
subtracted; the linear r band of the simulated stamps), and a logistic
regression is fitted on them.  Every threshold is chosen on the
validation side; the test side gives ROC AUC, average precision, and the
error, precision and recall at that threshold, beside the base rate (the
error of calling nothing a merger).

A training set of ``n`` galaxies takes up to ``n / 2`` of the training
mergers and fills the rest with non-mergers: at Galaxy Zoo's 1.7% merger
rate a random 50 would hold one merger.  Training oversamples the mergers
to half of each batch.  Each training's scores are cached under
``OUTPUT/runs``, so a rerun after a crash only does what is missing.

    python scripts/evaluate_mergers.py --output merger-evaluation
"""

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.table import QTable, vstack

from galaxyml.datasets import example_field_dir, local_field_files
from galaxyml.datasets.colour import ColourImages
from galaxyml.datasets.galaxyzoo import read_galaxyzoo_images, stratified_split
from galaxyml.datasets.mergers import make_merger_samples
from galaxyml.io.writing import atomic_output
from galaxyml.mergers import (MergerClassifier, balanced, best_threshold,
                              classification_scores, lupton_rgb, score_table)
from galaxyml.morphology import nonparametric_morphology
from galaxyml.visualization import save_figure

FEATURES = ("concentration", "asymmetry", "smoothness", "gini", "m20")
METHODS = {"CNN scratch": None, "CNN transfer": "natural"}
REPOSITORY = Path(__file__).resolve().parents[1]


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--galaxyzoo", type=Path,
                        default=REPOSITORY.parent / "shared" / "data" / "galaxyzoo1")
    parser.add_argument("--field", default="2583-2-136")
    parser.add_argument("--field-dir", type=Path, default=example_field_dir())
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--frozen-steps", type=int, default=75,
                        help="transfer: steps with the backbone frozen")
    parser.add_argument("--steps", type=int, default=300,
                        help="total training steps of every CNN (scratch: all unfrozen)")
    parser.add_argument("--scratch-learning-rate", type=float, default=1e-3,
                        help="Adam's rate from scratch (transfer: 1e-3 frozen, 1e-4 unfrozen)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--galaxyzoo-sizes", default="50,300,all",
                        help="training-set sizes of the Galaxy Zoo learning curves")
    parser.add_argument("--simulated-sizes", default="50,all")
    parser.add_argument("--mag-range", default="14,20",
                        help="r magnitudes of the field's galaxies the simulated set uses")
    parser.add_argument("--simulated-per-class", type=int, default=274,
                        help="simulated images of each class on each side of the field")
    parser.add_argument("--train-nonmergers", type=int, default=300,
                        help="Galaxy Zoo training non-mergers measured by statmorph for the "
                             "logistic regression (with every training merger)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data", default="galaxyzoo,simulated")
    parser.add_argument("--output", type=Path, default=Path("merger-evaluation"))
    parser.add_argument("--save-model", type=Path,
                        help="write the Galaxy Zoo transfer model of the score table here "
                             "(.keras, with its card)")
    parser.add_argument("--recard-model", type=Path,
                        help="only recompute the decision threshold and test metrics in the "
                             "card of this saved Galaxy Zoo model (and rewrite it)")
    parser.add_argument("--quiet", action="store_true")
    return parser


# Data sets ------------------------------------------------------------------------------

def galaxyzoo_sets(directory, size, progress):
    """Train, validation and test ColourImages of the Galaxy Zoo 1 subset, in memory."""
    table = read_galaxyzoo_images(directory)
    split = stratified_split(table["is_merger"], seed=0)
    images = ColourImages.from_files(table["path"], table["is_merger"].astype(float), size,
                                     split=split, label_names=("is_merger",),
                                     extra={"objid": table["objid"]})
    images = images.in_memory(progress=progress)
    return {side: images.subset(side) for side in ("train", "validation", "test")}


def green_channel(samples, index):
    """What statmorph measures in a Galaxy Zoo image: the green channel (SDSS r), the
    median (the sky) subtracted."""
    image = samples.sample(index)[0][..., 1]
    return image - np.median(image)


def simulated_sets(field, field_dir, size, per_class, mag_range, progress):
    """Simulated mergers and isolated galaxies of the real field as colour images.

    The images are SDSS-like colour images (`~galaxyml.mergers.lupton_rgb`)
    of the simulated g, r, i stamps in nanomaggies.  Also returns what
    statmorph measures: the linear r band of the same stamps.
    """
    from astropy.utils.console import ProgressBar

    frames = local_field_files(field, "gri", field_dir).read("gri")
    samples = make_merger_samples(frames, bands="gri", size=size, n_per_class=per_class,
                                  mag_range=mag_range, seed=0)
    indices = ProgressBar(range(len(samples))) if progress else range(len(samples))
    stamps = [samples.linear_sample(k)[0] for k in indices]
    rgb = np.stack([lupton_rgb(stamp.data) for stamp in stamps])
    r_band = np.stack([stamp.data[1] for stamp in stamps])
    split = np.array(samples.manifest["split"], "U10")
    # A fifth of the training side's galaxies (all their images) for validation.
    galaxies = np.unique(samples.manifest["galaxy_id"][split == "train"])
    held = np.random.default_rng(0).choice(galaxies, max(2, len(galaxies) // 5),
                                           replace=False)
    split[(split == "train") & np.isin(samples.manifest["galaxy_id"], held)] = "validation"
    images = ColourImages.from_arrays(rgb, samples.manifest["is_merger"], size, split=split,
                                      label_names=("is_merger",),
                                      extra={"galaxy_id": samples.manifest["galaxy_id"]})
    sets = {side: images.subset(side) for side in ("train", "validation", "test")}

    def linear_r(samples, index):
        return r_band[int(samples.manifest["image_index"][index])]

    return sets, linear_r


def labels_of(samples):
    return np.asarray(samples.manifest["is_merger"]) > 0.5


def training_subset(train, n_train, seed):
    """``n_train`` training galaxies: up to half of them mergers, the rest non-mergers."""
    if n_train is None or n_train >= len(train):
        return train
    labels = labels_of(train)
    rng = np.random.default_rng(seed)
    mergers = np.flatnonzero(labels)
    mergers = rng.choice(mergers, min(n_train // 2, mergers.size), replace=False)
    others = rng.choice(np.flatnonzero(~labels), n_train - mergers.size, replace=False)
    return train.select(np.sort(np.concatenate([mergers, others])))


# The CNN --------------------------------------------------------------------------------

def train_cnn(train, weights, args, seed, progress):
    """A small-backbone classifier trained on ``train`` (mergers oversampled to half)."""
    model = MergerClassifier("small", weights=weights, input_size=train.size, seed=seed)
    frozen = args.frozen_steps if weights is not None else 0
    # Fine-tuning a pretrained network takes a lower rate than training one from scratch.
    rates = (1e-3, 1e-4) if weights is not None else (1e-3, args.scratch_learning_rate)
    model.fine_tune(balanced(train, "is_merger", seed=seed), frozen_steps=frozen,
                    unfrozen_steps=args.steps - frozen, batch_size=args.batch_size,
                    learning_rates=rates,
                    checkpoint_every=int(np.gcd.reduce([s for s in (frozen, args.steps - frozen)
                                                        if s])),
                    progress=progress)
    return model


def cnn_scores(model, samples):
    arrays = np.stack([samples.sample(k)[0] for k in range(len(samples))])
    return np.asarray(model.network.predict(arrays, batch_size=64, verbose=0)).ravel()


def cnn_runs(name, sets, args, sizes, seeds):
    """Every (size, seed, method) training, cached as JSON under OUTPUT/runs."""
    runs = []
    cache = args.output / "runs"
    cache.mkdir(parents=True, exist_ok=True)
    labels = {side: labels_of(s) for side, s in sets.items()}
    for size in sizes:
        for seed in seeds:
            for method, weights in METHODS.items():
                path = cache / f"{_slug(name)}-{_slug(method)}-{size or 'all'}-{seed}.json"
                if path.is_file():
                    runs.append(json.loads(path.read_text()))
                    continue
                start = time.perf_counter()
                train = training_subset(sets["train"], size, seed)
                model = train_cnn(train, weights, args, seed, progress=False)
                validation = cnn_scores(model, sets["validation"])
                test = cnn_scores(model, sets["test"])
                threshold = best_threshold(labels["validation"], validation)
                run = {"data": name, "method": method, "n_train": len(train),
                       "n_train_mergers": int(labels_of(train).sum()), "seed": seed,
                       "full": size is None, **classification_scores(labels["test"], test,
                                                                     threshold),
                       "threshold": threshold, "seconds": time.perf_counter() - start,
                       "test_scores": test.tolist()}
                if size is None and seed == seeds[0] and method == "CNN transfer":
                    _save_model(model, name, labels, validation, test, run, args)
                with atomic_output(path, overwrite=True) as temporary:
                    temporary.write_text(json.dumps(run) + "\n")
                runs.append(run)
                if not args.quiet:
                    print(f"{name} {method} n={run['n_train']} seed={seed}: AUC "
                          f"{run['auc']:.3f} AP {run['average_precision']:.3f} error "
                          f"{run['error']:.4f} ({run['seconds']:.0f} s)", flush=True)
    return runs


def _save_model(model, name, labels, validation, test, run, args):
    if args.save_model is None or name != "Galaxy Zoo 1":
        return
    model.card["training"].update(
        data="Galaxy Zoo 1 subset (../shared/data/galaxyzoo1), train side of a stratified "
             "60/20/20 split by objid", wall_time_s=round(run["seconds"], 1),
        command=_command(args.argv))
    model.card.update(decision_entries(labels, validation, test))
    model.save(args.save_model, overwrite=True)


def decision_entries(labels, validation, test):
    """The card's ``decision_threshold`` and ``metrics`` of a Galaxy Zoo model, from its
    scores of the validation and test sides (``labels``: side -> bool array).

    The threshold maximises the balanced accuracy on the validation side: the
    one with the lowest error calls no galaxy a merger at a 1.7% merger rate.
    The metrics are the test side's at that threshold.
    """
    threshold = best_threshold(labels["validation"], validation, criterion="balanced")
    metrics = classification_scores(labels["test"], test, threshold)
    metrics["lowest_error_threshold"] = best_threshold(labels["validation"], validation)
    return {"decision_threshold": threshold,
            "decision_threshold_rule": "highest balanced accuracy on the validation side",
            "metrics": metrics}


def recard(path, args):
    """Recompute the decision threshold and metrics in the card of a saved model."""
    sets = galaxyzoo_sets(args.galaxyzoo, args.input_size, not args.quiet)
    model = MergerClassifier.load(path)
    labels = {side: labels_of(s) for side, s in sets.items()}
    entries = decision_entries(labels, cnn_scores(model, sets["validation"]),
                               cnn_scores(model, sets["test"]))
    model.card.update(entries)
    model.save(path, overwrite=True)
    print(json.dumps(entries, indent=2))
    return 0


# The non-parametric baselines -----------------------------------------------------------

def morphology_features(samples, morphology_image, rows=None, progress=False):
    """CAS and Gini-M20 with statmorph of (some of) the samples."""
    from astropy.utils.console import ProgressBar

    rows = range(len(samples)) if rows is None else rows
    images = [morphology_image(samples, k) for k in rows]
    if progress:
        return vstack([nonparametric_morphology(image)
                       for image in ProgressBar(images)])
    return nonparametric_morphology(images)


def baseline_scores(name, sets, morphology_image, args):
    """CAS, Gini-M20 and the logistic regression on both: scores and test scores."""
    labels = {side: labels_of(s) for side, s in sets.items()}
    train_rows = np.arange(len(sets["train"]))
    if name == "Galaxy Zoo 1":  # statmorph takes 0.3 s a galaxy: not all 2673 needed
        rng = np.random.default_rng(0)
        others = np.flatnonzero(~labels["train"])
        train_rows = np.sort(np.concatenate([np.flatnonzero(labels["train"]), rng.choice(
            others, min(args.train_nonmergers, others.size), replace=False)]))
    features = {side: morphology_features(sets[side], morphology_image, rows,
                                          progress=not args.quiet)
                for side, rows in (("train", train_rows), ("validation", None),
                                   ("test", None))}
    features_labels = {"train": labels["train"][train_rows],
                       "validation": labels["validation"], "test": labels["test"]}
    results, test_scores = {}, {}
    for method, column in (("CAS (asymmetry)", "asymmetry"),
                           ("Gini-M20 (merger statistic)", "gini_m20_merger")):
        validation = np.asarray(features["validation"][column], float)
        threshold = best_threshold(features_labels["validation"], validation)
        test = np.asarray(features["test"][column], float)
        results[method] = {**classification_scores(features_labels["test"], test, threshold),
                           "threshold": threshold}
        test_scores[method] = test
    regression = _logistic(features["train"], features_labels["train"])
    validation = regression.predict_proba(_matrix(features["validation"]))[:, 1]
    test = regression.predict_proba(_matrix(features["test"]))[:, 1]
    threshold = best_threshold(features_labels["validation"], validation)
    method = "logistic regression (CAS + Gini-M20)"
    results[method] = {**classification_scores(features_labels["test"], test, threshold),
                       "threshold": threshold}
    test_scores[method] = test
    # Standard criteria, fixed thresholds: asymmetry > 0.35, above the Lotz et al. line.
    for method, column in (("CAS criterion (A > 0.35)", "asymmetry_merger"),
                           ("Lotz et al. 2008 line", "lotz_merger")):
        flag = np.asarray(features["test"][column], float)
        results[method] = {**classification_scores(features_labels["test"], flag, 0.5),
                           "threshold": 0.5}
    failed = {side: int(np.sum(np.asarray(f["flags"]) != 0)) for side, f in features.items()}
    return results, test_scores, failed


def _matrix(features):
    return np.column_stack([np.nan_to_num(np.asarray(features[n], float)) for n in FEATURES])


def _logistic(features, labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")).fit(
        _matrix(features), labels)


# Figures --------------------------------------------------------------------------------

def plot_learning_curves(curves):
    names = list(dict.fromkeys(curves["data"]))
    figure, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 7), squeeze=False,
                                layout="constrained")
    for column, name in enumerate(names):
        for method in METHODS:
            rows = curves[(curves["data"] == name) & (curves["method"] == method)]
            sizes = np.unique(rows["n_train"])
            for row, metric in enumerate(("auc", "average_precision")):
                values = [np.asarray(rows[metric][rows["n_train"] == n]) for n in sizes]
                axes[row, column].errorbar(sizes, [v.mean() for v in values],
                                           yerr=[v.std() for v in values], marker="o",
                                           capsize=3, label=method)
        axes[0, column].set_title(name)
        for row, label in enumerate(("test ROC AUC", "test average precision")):
            axes[row, column].set(xscale="log", xlabel="training galaxies",
                                  ylabel=f"{label}\n(mean, seed-to-seed std)")
            axes[row, column].legend()
    return figure


def plot_roc(test_scores, labels, name):
    from sklearn.metrics import precision_recall_curve, roc_curve

    figure, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for method, scores in test_scores.items():
        finite = np.asarray(scores, float)
        finite = np.where(np.isfinite(finite), finite, np.nanmin(finite) - 1)
        fpr, tpr, _ = roc_curve(labels, finite)
        precision, recall, _ = precision_recall_curve(labels, finite)
        roc.plot(fpr, tpr, label=method)
        pr.plot(recall, precision, label=method)
    roc.plot([0, 1], [0, 1], color="0.6", lw=0.8)
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{name}: ROC")
    pr.axhline(labels.mean(), color="0.6", lw=0.8, label="base rate")
    pr.set(xlabel="recall", ylabel="precision", title=f"{name}: precision-recall")
    roc.legend(fontsize=8)
    return figure


def plot_gallery(samples, scores, name, n=8):
    """The test images the transfer CNN finds most merger-like, and the mergers it misses most."""
    labels = labels_of(samples)
    order = np.argsort(scores)
    rows = (("most merger-like", order[::-1][:n]),
            ("mergers with the lowest p_merger", order[labels[order]][:n]))
    figure, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.9), layout="constrained")
    for row, (title, indices) in enumerate(rows):
        for ax, index in zip(axes[row], indices):
            ax.imshow(samples.sample(int(index))[0])
            ax.set_title(f"p={scores[index]:.2f} {'M' if labels[index] else 'not M'}",
                         fontsize=8)
        for ax in axes[row]:
            ax.set_axis_off()
        axes[row, 0].text(0, -0.25, title, transform=axes[row, 0].transAxes, fontsize=9)
    figure.suptitle(f"{name}: CNN with transfer, test side (M: labelled merger)")
    return figure


# Driver ---------------------------------------------------------------------------------

def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _command(argv):
    return " ".join(["python", "scripts/evaluate_mergers.py", *argv])


def _sizes(text):
    return [None if s == "all" else int(s) for s in text.split(",")]


def evaluate(name, sets, morphology_image, args, sizes, seeds):
    """Learning curves, the score table and the figures of one data set."""
    runs = cnn_runs(name, sets, args, sizes, seeds)
    labels = labels_of(sets["test"])
    results, test_scores = {}, {}
    for run in runs:
        if run["full"] and run["seed"] == seeds[0]:
            results[run["method"]] = {key: run[key] for key in (
                "auc", "average_precision", "error", "balanced_error", "precision",
                "recall", "base_rate", "n", "n_mergers", "threshold")}
            test_scores[run["method"]] = np.asarray(run["test_scores"])
    baselines, baseline_test, failed = baseline_scores(name, sets, morphology_image, args)
    results.update(baselines)
    test_scores.update(baseline_test)
    table = score_table(results)
    table.add_column(name, name="data", index=0)
    table.meta[f"statmorph failures ({name})"] = failed
    slug = _slug(name)
    save_figure(plot_roc(test_scores, labels, name), args.output / f"roc_{slug}.png",
                overwrite=True)
    save_figure(plot_gallery(sets["test"], test_scores["CNN transfer"], name),
                args.output / f"gallery_{slug}.png", overwrite=True)
    curves = QTable(rows=[{key: value for key, value in run.items() if key != "test_scores"}
                          for run in runs])
    return table, curves


def targets(scores, curves):
    """The issue's two targets, per data set, with their margins."""
    verdict = {}
    for name in dict.fromkeys(scores["data"]):
        rows = scores[scores["data"] == name]
        error = {row["method"]: row["error"] for row in rows}
        baseline = min(value for method, value in error.items() if not method.startswith("CNN"))
        cnn = min(error["CNN scratch"], error["CNN transfer"])
        smallest = curves[(curves["data"] == name)]
        n_min = smallest["n_train"].min()
        auc = {method: np.asarray(smallest["auc"][(smallest["n_train"] == n_min)
                                                  & (smallest["method"] == method)])
               for method in METHODS}
        gain = float(auc["CNN transfer"].mean() - auc["CNN scratch"].mean())
        spread = float(max(auc["CNN transfer"].std(), auc["CNN scratch"].std()))
        verdict[name] = {
            "best_baseline_error": baseline, "cnn_error": cnn,
            "error_ratio": cnn / baseline if baseline else float("nan"),
            "error_target_met": bool(cnn <= baseline / 2),
            "smallest_n_train": int(n_min), "transfer_auc_gain": gain,
            "seed_spread_auc": spread, "transfer_target_met": bool(gain > spread)}
    return verdict


def write_table(table, path):
    with atomic_output(path, overwrite=True) as temporary:
        table.write(temporary, format="ascii.ecsv")


def main(argv=None):
    args = parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.recard_model is not None:
        return recard(args.recard_model, args)
    args.output.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = args.data.split(",")
    tables, curves = [], []
    if "galaxyzoo" in chosen:
        sets = galaxyzoo_sets(args.galaxyzoo, args.input_size, not args.quiet)
        table, curve = evaluate("Galaxy Zoo 1", sets, green_channel, args,
                                _sizes(args.galaxyzoo_sizes), seeds)
        tables.append(table)
        curves.append(curve)
    if "simulated" in chosen:
        sets, linear_r = simulated_sets(args.field, args.field_dir, args.input_size,
                                        args.simulated_per_class,
                                        [float(m) for m in args.mag_range.split(",")],
                                        not args.quiet)
        table, curve = evaluate("simulated (real field)", sets, linear_r, args,
                                _sizes(args.simulated_sizes), seeds)
        tables.append(table)
        curves.append(curve)
    scores, curves = vstack(tables), vstack(curves)
    write_table(scores, args.output / "merger_scores.ecsv")
    write_table(curves, args.output / "merger_learning_curves.ecsv")
    save_figure(plot_learning_curves(curves), args.output / "merger_learning_curves.png",
                overwrite=True)
    verdict = targets(scores, curves)
    with atomic_output(args.output / "merger_targets.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps({"command": _command(args.argv), "targets": verdict},
                                        indent=2) + "\n")
    scores.pprint(max_lines=-1, max_width=250)
    print(json.dumps(verdict, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
