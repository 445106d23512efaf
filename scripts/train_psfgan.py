#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Train PSFGAN on r-band stamps of an SDSS field and write the model and its card.

Galaxies are selected with `galaxy_catalog` down to ``--mag-limit`` (all the
usable galaxies: resolved, isolated, unmasked); the half of the field with RA
below the median is the training side (the other half is for
`scripts/evaluate_psfgan.py`), with a guard strip between them.  Every training
galaxy gets ``--pairs-per-galaxy`` artificial point sources at its centroid,
with contrasts (point-source over host flux) log-uniform in [0.1, 10], the
psField PSF at the galaxy's position and the source's photon noise; with
``--psf-scale 0.5,1.5`` each point source's PSF is made a random factor
(log-uniform) wider or narrower: the robustness mode of Stark et al. (2018).
A fifth of the pairs (``--no-agn-fraction``) have no point source, so that the network
learns to leave such galaxies alone.  One training galaxy in ten is kept for the
validation losses of the CSV log; after training, the errors are calibrated on two fresh
pairs per training galaxy (`calibrate_decomposition_errors`) and written into the card.
The run checkpoints and resumes: run the same command again after a crash.
The model card records the exact command and the wall time.

The shipped model (refine generator, a fifth of the pairs without a point source) was
made by this command (48 minutes on 2 CPU cores shared with other work; an accelerator
is used where TensorFlow finds one); its card records it exactly, and the errors were
then calibrated by ``scripts/evaluate_psfgan.py --calibrate-model``::

    python scripts/train_psfgan.py --psf-scale 0.5,1.5 --steps 12000 \\
        --output galaxyml/gan/data/psfgan-small.keras

To train on your own field, point ``--field-dir`` at its frame, psField and
fpM files (any run, camcol and field).
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from galaxyml.datasets import (example_field_dir, galaxy_catalog, local_field_files,
                               make_psfgan_pairs)
from galaxyml.gan import PSFGAN
from galaxyml.morphology import calibrate_decomposition_errors


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--field", default="2583-2-136", help="RUN-CAMCOL-FIELD")
    parser.add_argument("--band", default="r")
    parser.add_argument("--config", default="small", choices=["small", "paper"])
    parser.add_argument("--size", type=int, default=64, help="stamp size in pixels")
    parser.add_argument("--window", type=int, default=32,
                        help="side of the central window the discriminator sees")
    parser.add_argument("--generator", default="refine", choices=["refine", "residual", "paper"],
                        help="'paper': the pix2pix U-Net ending in tanh; 'residual': the same "
                             "U-Net taking its output away from the input; 'refine': the U-Net "
                             "correcting PSF photometry's residual (it also sees the PSF)")
    parser.add_argument("--mag-limit", type=float, default=21.0,
                        help="faintest Kron magnitude of the galaxies")
    parser.add_argument("--pairs-per-galaxy", type=int, default=20)
    parser.add_argument("--no-agn-fraction", type=float, default=0.2,
                        help="share of the pairs without a point source (contrast 0)")
    parser.add_argument("--calibration-pairs", type=int, default=2,
                        help="pairs per training galaxy, made afresh, on which the errors are "
                             "calibrated after training (0: no calibration)")
    parser.add_argument("--psf-scale", default="1",
                        help="PSF width factor of the point sources: one value, or LOW,HIGH "
                             "for a log-uniform range (training on several PSFs)")
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam's learning rate (default: the paper's 9e-5)")
    parser.add_argument("--aggregator", default="mean", choices=["mean", "majority_vote"],
                        help="how replicas combine gradients under a distribution strategy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("psfgan-checkpoints"))
    parser.add_argument("--output", type=Path, default=Path("psfgan.keras"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser


def psf_scale(text):
    """``"1"`` -> 1.0; ``"0.5,1.5"`` -> (0.5, 1.5)."""
    values = tuple(float(v) for v in str(text).split(","))
    return values[0] if len(values) == 1 else values


def field_pairs(field_dir, field, band, size, mag_limit, pairs_per_galaxy, scale, seed,
                quiet, stretch=None, contrasts=None, catalog=None, no_agn_fraction=0.0):
    """The field's PSFGAN pairs (both sides of the split) and its galaxy catalogue.

    Shared with ``scripts/evaluate_psfgan.py``, which rebuilds the selection
    from the model card and passes fixed ``contrasts``, a ``scale``, the
    model's ``stretch`` and, after the first call, the ``catalog``.
    """
    files = local_field_files(field, band, field_dir)
    frames = files.read(band)
    if catalog is None:
        catalog = galaxy_catalog(frames, detection_band=band, size=size,
                                 mag_range=(12.0, mag_limit))
    pairs = make_psfgan_pairs(frames, files.psfield, catalog=catalog, band=band, size=size,
                              contrasts=contrasts, n_per_galaxy=pairs_per_galaxy,
                              no_agn_fraction=no_agn_fraction, psf_scale=scale, stretch=stretch,
                              seed=seed, progress=not quiet)
    return pairs, catalog, files


def validation_rows(train, every=10, per_galaxy=2):
    """(training rows, validation rows) as masks: one galaxy in ``every`` validates, with
    ``per_galaxy`` of its pairs."""
    galaxies = np.unique(train.manifest["galaxy_id"])
    held = np.isin(train.manifest["galaxy_id"], galaxies[::every])
    first = np.zeros(len(train), bool)
    for galaxy in galaxies[::every]:
        first[np.flatnonzero(train.manifest["galaxy_id"] == galaxy)[:per_galaxy]] = True
    return ~held, first


def main(argv=None):
    args = parser().parse_args(argv)
    command = " ".join(["python", "scripts/train_psfgan.py"]
                       + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    scale = psf_scale(args.psf_scale)
    pairs, catalog, _ = field_pairs(args.field_dir, args.field, args.band, args.size,
                                    args.mag_limit, args.pairs_per_galaxy, scale, args.seed,
                                    args.quiet, no_agn_fraction=args.no_agn_fraction)
    train_side = pairs.subset("train")
    fitted, validated = validation_rows(train_side)
    train, validation = train_side.select(fitted), train_side.select(validated)
    galaxies = np.unique(train.manifest["galaxy_id"])
    print(f"{len(catalog)} galaxies selected ({catalog.meta['selection']}); training on "
          f"{len(galaxies)} (RA below the median), {len(train)} pairs; validating on "
          f"{len(validation)} pairs of {len(np.unique(validation.manifest['galaxy_id']))} more")
    model = PSFGAN(config=args.config, bands=(args.band,), image_size=args.size,
                   window=args.window, mode=args.generator, seed=args.seed)
    start = time.perf_counter()
    history = model.train(train, steps=args.steps, batch_size=args.batch_size,
                          validation=validation, checkpoint_dir=args.checkpoint_dir,
                          checkpoint_every=args.checkpoint_every,
                          log_path=args.checkpoint_dir / "log.csv",
                          learning_rate=args.learning_rate, aggregator=args.aggregator,
                          in_memory=args.generator == "refine", progress=not args.quiet)
    model.card["training"].update(
        command=command, field=args.field, band=args.band, stamp_size=args.size,
        mag_range=[12.0, args.mag_limit], split="RA below the field's median RA (train side)",
        n_galaxies=int(len(galaxies)), pairs_per_galaxy=args.pairs_per_galaxy,
        contrast_range=[0.1, 10.0], contrast_distribution="log-uniform",
        no_agn_fraction=args.no_agn_fraction,
        psf="SDSS psField KL-PSF at each galaxy's frame position",
        psf_scale=list(np.atleast_1d(scale).astype(float)),
        wall_seconds_this_run=round(time.perf_counter() - start, 1),
        final_l1=float(history["l1"][-1]) if history.get("l1") else None,
        final_val_l1=float(history["val_l1"][-1]) if history.get("val_l1") else None)
    if args.calibration_pairs:
        fresh, _, _ = field_pairs(args.field_dir, args.field, args.band, args.size,
                                  args.mag_limit, args.calibration_pairs, scale,
                                  args.seed + 1, args.quiet, stretch=model.stretch,
                                  catalog=catalog, no_agn_fraction=args.no_agn_fraction)
        errors = calibrate_decomposition_errors(fresh.subset("train"),
                                                model.remove_point_source,
                                                progress=not args.quiet)
        model.card["error_model"] = errors.to_dict()
        print(f"calibrated errors: {errors}")
    model.save(args.output, overwrite=args.overwrite)
    print(f"written: {args.output} and {args.output.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
