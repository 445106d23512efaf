#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Evaluate the merger CNN against CAS, Gini-M20 and a logistic regression on both.

On the Galaxy Zoo 1 subset (split by objid, stratified: 60% train, 20%
validation, 20% test) and on simulated mergers of the real field (train
on RA below the median, test above), trains the CNN from scratch and with
transfer from the natural-image backbone, measures CAS and Gini-M20 with
statmorph on the same stamps, fits a logistic regression on them, and
reports for each method the ROC AUC, average precision, and the error rate,
precision and recall at the threshold chosen on the validation side (and
the base rate: the error of calling nothing a merger).  The learning
curves train scratch and transfer on training sets of about 50 to all
galaxies, several seeds each.  Writes ECSV tables, figures (ROC, precision-
recall, learning curves) and a gallery of the most and least confident
mergers.

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

from galaxyml.datasets import example_field_dir
from galaxyml.datasets.colour import ColourImages
from galaxyml.datasets.galaxyzoo import read_galaxyzoo_images, stratified_split
from galaxyml.io.writing import atomic_output
from galaxyml.mergers import (MergerClassifier, balanced, best_threshold,
                              classification_scores, score_table)
from galaxyml.morphology import nonparametric_morphology
from galaxyml.visualization import save_figure

FEATURES = ("concentration", "asymmetry", "smoothness", "gini", "m20")


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--galaxyzoo", type=Path,
                        default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
                        / "galaxyzoo1")
    parser.add_argument("--field-dir", type=Path, default=example_field_dir())
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--frozen-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=800,
                        help="total fine-tuning steps (scratch: all unfrozen)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sizes", default="50,100,200,500,1000,all",
                        help="training-set sizes of the learning curves")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", type=Path, default=Path("merger-evaluation"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser


def galaxyzoo_sets(directory, size, seed=0):
    """Train, validation and test ColourImages of the Galaxy Zoo 1 subset (in memory)."""
    table = read_galaxyzoo_images(directory)
    split = stratified_split(table["is_merger"], seed=seed)
    images = ColourImages.from_files(table["path"], table["is_merger"].astype(float), size,
                                     split=split, label_names=("is_merger",),
                                     extra={"objid": table["objid"]})
    images = images.in_memory(progress=False)
    return {side: images.subset(side) for side in ("train", "validation", "test")}


def train_cnn(sets, weights, steps, frozen_steps, batch_size, seed, n_train=None,
              progress=False):
    """A small-backbone classifier fine-tuned on (a subset of) the training side."""
    train = sets["train"]
    if n_train is not None and n_train < len(train):
        labels = np.asarray(train.manifest["is_merger"]) > 0.5
        side = stratified_split(labels, (n_train / len(train), 1 - n_train / len(train)),
                                ("keep", "drop"), seed=seed)
        if not labels[side == "keep"].any():  # keep at least one merger
            side[np.flatnonzero(labels)[0]] = "keep"
        train = train.select(side == "keep")
    model = MergerClassifier("small", weights=weights, input_size=train.size, seed=seed)
    frozen = frozen_steps if weights is not None else 0
    model.fine_tune(balanced(train, "is_merger", ratio=0.5, seed=seed), frozen_steps=frozen,
                    unfrozen_steps=steps - frozen, batch_size=batch_size,
                    checkpoint_every=_every(frozen, steps - frozen), progress=progress)
    return model


def _every(*stages):
    steps = [s for s in stages if s]
    return int(np.gcd.reduce(steps)) if steps else 1


def cnn_scores(model, samples):
    arrays = np.stack([samples.sample(k)[0] for k in range(len(samples))])
    return np.asarray(model.network.predict(arrays, verbose=0)).ravel()


def morphology_features(samples):
    """CAS and Gini-M20 of each sample, on the green channel (SDSS r) of the colour image."""
    images = [samples.sample(k)[0][..., 1] for k in range(len(samples))]
    # The colour images are sky-black: subtract the median so that the sky is zero.
    images = [image - np.median(image) for image in images]
    return nonparametric_morphology(images)


def evaluate_set(name, sets, args, seeds):
    """All methods on one data set: the score table and per-method test scores."""
    results, test_scores = {}, {}
    labels = {side: np.asarray(s.manifest["is_merger"]) > 0.5 for side, s in sets.items()}
    for method, weights in (("CNN scratch", None), ("CNN transfer", "natural")):
        model = train_cnn(sets, weights, args.steps, args.frozen_steps, args.batch_size,
                          seeds[0], progress=not args.quiet)
        validation, test = cnn_scores(model, sets["validation"]), cnn_scores(model, sets["test"])
        threshold = best_threshold(labels["validation"], validation)
        results[method] = classification_scores(labels["test"], test, threshold)
        test_scores[method] = test
    features = {side: morphology_features(s) for side, s in sets.items()}
    for method, column in (("CAS (asymmetry)", "asymmetry"),
                           ("Gini-M20 (merger statistic)", "gini_m20_merger")):
        threshold = best_threshold(labels["validation"], features["validation"][column])
        results[method] = classification_scores(labels["test"], features["test"][column],
                                                threshold)
        test_scores[method] = np.asarray(features["test"][column])
    regression = _logistic(features["train"], labels["train"])
    validation = _predict_logistic(regression, features["validation"])
    test = _predict_logistic(regression, features["test"])
    results["logistic regression (CAS + Gini-M20)"] = classification_scores(
        labels["test"], test, best_threshold(labels["validation"], validation))
    test_scores["logistic regression (CAS + Gini-M20)"] = test
    table = score_table(results)
    table["data"] = name
    return table, test_scores, labels["test"]


def _matrix(features):
    return np.column_stack([np.nan_to_num(np.asarray(features[n], float)) for n in FEATURES])


def _logistic(features, labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")).fit(
        _matrix(features), labels)


def _predict_logistic(model, features):
    return model.predict_proba(_matrix(features))[:, 1]


def learning_curves(name, sets, args, sizes, seeds):
    """Test AUC of scratch and transfer against training-set size, per seed."""
    rows = []
    for size in sizes:
        for seed in seeds:
            for method, weights in (("CNN scratch", None), ("CNN transfer", "natural")):
                start = time.perf_counter()
                model = train_cnn(sets, weights, args.steps, args.frozen_steps,
                                  args.batch_size, seed, n_train=size)
                labels = np.asarray(sets["test"].manifest["is_merger"]) > 0.5
                scores = cnn_scores(model, sets["test"])
                validation = cnn_scores(model, sets["validation"])
                threshold = best_threshold(
                    np.asarray(sets["validation"].manifest["is_merger"]) > 0.5, validation)
                rows.append({"data": name, "method": method,
                             "n_train": size or len(sets["train"]), "seed": seed,
                             **classification_scores(labels, scores, threshold),
                             "seconds": time.perf_counter() - start})
                if not args.quiet:
                    print(rows[-1])
    return QTable(rows=rows)


def plot_learning_curves(curves):
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, name in zip(axes, np.unique(curves["data"])):
        for method in np.unique(curves["method"]):
            rows = curves[(curves["data"] == name) & (curves["method"] == method)]
            sizes = np.unique(rows["n_train"])
            auc = [rows["auc"][rows["n_train"] == n] for n in sizes]
            ax.errorbar(sizes, [np.mean(a) for a in auc], yerr=[np.std(a) for a in auc],
                        marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("training galaxies")
        ax.set_ylabel("test ROC AUC (mean, seed-to-seed std)")
        ax.set_title(name)
        ax.legend()
    return figure


def plot_roc(test_scores, labels, name):
    from sklearn.metrics import precision_recall_curve, roc_curve

    figure, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for method, scores in test_scores.items():
        finite = np.nan_to_num(scores, nan=np.nanmin(scores) - 1)
        fpr, tpr, _ = roc_curve(labels, finite)
        precision, recall, _ = precision_recall_curve(labels, finite)
        roc.plot(fpr, tpr, label=method)
        pr.plot(recall, precision, label=method)
    roc.plot([0, 1], [0, 1], color="0.6", lw=0.8)
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{name}: ROC")
    pr.axhline(labels.mean(), color="0.6", lw=0.8)
    pr.set(xlabel="recall", ylabel="precision", title=f"{name}: precision-recall")
    roc.legend(fontsize=8)
    return figure


def write_table(table, path, overwrite):
    with atomic_output(path, overwrite=overwrite) as temporary:
        table.write(temporary, format="ascii.ecsv")


def main(argv=None):
    args = parser().parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    sets = {"Galaxy Zoo 1": galaxyzoo_sets(args.galaxyzoo, args.input_size)}
    tables, curves = [], []
    for name, data in sets.items():
        table, test_scores, labels = evaluate_set(name, data, args, seeds)
        tables.append(table)
        slug = name.lower().replace(" ", "_")
        save_figure(plot_roc(test_scores, labels, name), args.output / f"roc_{slug}.png",
                    overwrite=args.overwrite)
        curves.append(learning_curves(name, data, args, sizes, seeds))
    scores = vstack(tables)
    write_table(scores, args.output / "merger_scores.ecsv", args.overwrite)
    curves = vstack(curves)
    write_table(curves, args.output / "merger_learning_curves.ecsv", args.overwrite)
    save_figure(plot_learning_curves(curves), args.output / "merger_learning_curves.png",
                overwrite=args.overwrite)
    scores.pprint(max_lines=-1, max_width=250)
    with atomic_output(args.output / "merger_command.json", overwrite=args.overwrite) as temp:
        temp.write_text(json.dumps({"command": " ".join(["python", __file__] + (
            sys.argv[1:] if argv is None else argv))}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
