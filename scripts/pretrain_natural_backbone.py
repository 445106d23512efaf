#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Pretrain galaxyml's small CNN on natural photographs: the offline transfer source.

Trains `galaxyml.mergers.small_cnn` to tell which of the natural
photographs shipped in scikit-image and scikit-learn a random crop comes
from (`galaxyml.mergers.natural_crops`: random scales, flips, rotations,
some crops grey), and writes the backbone's weights with a JSON card
recording this command, the data and the held-out crop accuracy.  This is
``MergerClassifier(weights="natural")``; the shipped file is
``galaxyml/mergers/data/natural-backbone.weights.h5``.

    python scripts/pretrain_natural_backbone.py --output natural-backbone.weights.h5
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from galaxyml import __version__
from galaxyml.datasets.colour import ColourImages
from galaxyml.distribute import fit_resumable
from galaxyml.io.writing import atomic_output
from galaxyml.mergers import NATURAL_PHOTOGRAPHS, natural_crops, small_cnn


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("natural-backbone.weights.h5"))
    parser.add_argument("--size", type=int, default=64, help="side of the crops")
    parser.add_argument("--crops", type=int, default=20000, help="training crops")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="resume from and save checkpoints here")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None):
    args = parser().parse_args(argv)
    start = time.perf_counter()
    crops, labels = natural_crops(args.crops, args.size, seed=args.seed)
    test_crops, test_labels = natural_crops(max(args.crops // 10, 100), args.size,
                                            seed=args.seed + 1)
    samples = ColourImages.from_arrays(crops, labels, args.size, kind="natural crops",
                                       seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    backbone = small_cnn((args.size, args.size, 3), seed=args.seed)
    inputs = keras.Input((args.size, args.size, 3))
    outputs = keras.layers.Dense(len(NATURAL_PHOTOGRAPHS), activation="softmax")(
        keras.layers.Dropout(0.3, seed=args.seed)(backbone(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)
    every = min(500, args.steps)
    fit_resumable(model, samples, args.steps, batch_size=args.batch_size, seed=args.seed,
                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=every,
                  progress=not args.quiet)
    predicted = np.argmax(model.predict(test_crops.astype(np.float32) / 255, verbose=0), axis=1)
    accuracy = float(np.mean(predicted == test_labels))
    with atomic_output(args.output, overwrite=args.overwrite) as temporary:
        backbone.save_weights(temporary)
    card = {"model_type": "natural-image backbone", "backbone": "small",
            "galaxyml_version": __version__, "parameters": int(backbone.count_params()),
            "task": "which photograph a crop comes from", "photographs": list(NATURAL_PHOTOGRAPHS),
            "crop_size": args.size, "n_crops": args.crops, "steps": args.steps,
            "batch_size": args.batch_size, "learning_rate": args.learning_rate,
            "seed": args.seed, "held_out_accuracy": accuracy,
            "chance_accuracy": 1 / len(NATURAL_PHOTOGRAPHS),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "command": " ".join(["python", "scripts/pretrain_natural_backbone.py"]
                                + (sys.argv[1:] if argv is None else argv))}
    card_path = args.output.with_name(args.output.name.replace(".weights.h5", ".json"))
    with atomic_output(card_path, overwrite=args.overwrite) as temporary:
        temporary.write_text(json.dumps(card, indent=2) + "\n")
    print(f"held-out crop accuracy {accuracy:.3f} (chance {1 / len(NATURAL_PHOTOGRAPHS):.3f}); "
          f"{card['wall_seconds']:.0f} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
