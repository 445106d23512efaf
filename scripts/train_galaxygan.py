#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Train GalaxyGAN on g, r, i stamps of an SDSS field and write the model and its card.

Galaxies are selected with `galaxy_catalog`; the half of the field with RA
below the median is the training side (the other half is for
`scripts/evaluate_galaxygan.py`), with a guard strip between them.  Every
training galaxy (r < 21 by default: all the selection keeps) gets
``--draws`` pairs, each with a degradation drawn from FWHM 1.2-2.7 arcsec x
sigma 1-12 (log-uniform), which encloses the paper's grid, and a random
shift of up to ``--max-shift`` pixels; training adds flips and rotations.
The stretch clips nothing the training stamps hold (``--stretch data``).
In refine mode the loss weighs L1 at 10000 and the flux term at 1000 against
the GAN term's 1 (pix2pix: 100 and none).  Pairs are made once and kept in
memory.  Training stops after ``--steps``
or ``--minutes``, at a checkpoint; run the same command again after a
crash to resume.  The model card records the exact command and the wall
time.

A refine-mode model on the example field::

    python scripts/train_galaxygan.py --mode refine --minutes 120 \\
        --output galaxygan-refine-small.keras

(the card records the exact command; the shipped model's card lists the resumed runs
that made it, in ``training.phases``).  To train on your own field, point
``--field-dir`` at its frame, psField and fpM files; to fine-tune the shipped model
there, add ``--initial-model galaxyml/gan/data/galaxygan-small.keras``.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

import keras
import numpy as np

from galaxyml.datasets import (degradation_distribution, example_field_dir, galaxy_catalog,
                               local_field_files, make_galaxygan_pairs)
from galaxyml.gan import GALAXYGAN_MODES, GalaxyGAN
from galaxyml.stretch import GalaxyGANStretch

#: The refine mode's L1 weight: the GAN term weighs a hundredth of pix2pix's, as its
#: texture, uncorrelated with the true noise, costs PSNR and SSIM (see docs/gan.rst).
REFINE_L1_WEIGHT = 10000.0


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--field", default="2583-2-136", help="RUN-CAMCOL-FIELD")
    parser.add_argument("--mode", default="refine", choices=GALAXYGAN_MODES)
    parser.add_argument("--config", default="small", choices=["small", "paper"])
    parser.add_argument("--size", type=int, default=128, help="stamp size in pixels")
    parser.add_argument("--mag-limit", type=float, default=21.0,
                        help="faintest r Kron magnitude of the galaxies")
    parser.add_argument("--draws", type=int, default=8,
                        help="pairs per galaxy, each with its own degradation and shift")
    parser.add_argument("--max-shift", type=float, default=4.0,
                        help="largest random shift of a stamp, in pixels")
    parser.add_argument("--stretch", default="data", choices=["data", "paper"],
                        help="'data': clip nothing the training stamps hold; 'paper': the "
                             "paper's stretch, clipped at 4 nanomaggies")
    parser.add_argument("--l1-weight", type=float, default=None,
                        help="weight of the L1 term against the GAN term's 1 (GalaxyGAN's "
                             "l1_weight; default 100, pix2pix's, in paper mode and 10000 in "
                             "refine mode, where GAN texture costs PSNR and SSIM)")
    parser.add_argument("--flux-weight", type=float, default=None,
                        help="weight of the flux term (GalaxyGAN's flux_weight; default a "
                             "tenth of the L1 weight in refine mode, 0, the paper's loss, in "
                             "paper mode)")
    parser.add_argument("--l2-weight", type=float, default=0.0,
                        help="weight of a mean-squared-error term (GalaxyGAN's l2_weight; "
                             "default 0)")
    parser.add_argument("--initial-model", type=Path, default=None,
                        help="fine-tune this .keras model (with its card): its network, "
                             "mode, config and stretch; --mode, --config and --stretch are "
                             "then ignored, and the discriminator starts afresh")
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--lr-decay", action="store_true",
                        help="let the learning rate fall linearly from GalaxyGAN's 2e-4 to "
                             "zero at --steps (pix2pix's second half); end such a run at "
                             "--steps rather than --minutes")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop at the first checkpoint after this many minutes")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("galaxygan-checkpoints"))
    parser.add_argument("--output", type=Path, default=Path("galaxygan.keras"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser


def field_pairs(args, stretch=None):
    """The field's GalaxyGAN pairs (random degradations and shifts) and its catalogue,
    in ``stretch`` if one is given, else as ``--stretch`` says."""
    if stretch is None:
        stretch = "data" if args.stretch == "data" else GalaxyGANStretch()
    frames = local_field_files(args.field, "gri", args.field_dir).read()
    catalog = galaxy_catalog(frames, size=args.size, mag_range=(12.0, args.mag_limit))
    pairs = make_galaxygan_pairs(frames, catalog=catalog, size=args.size,
                                 grid=degradation_distribution(), n_per_galaxy=args.draws,
                                 max_shift=args.max_shift,
                                 stretch=stretch,
                                 seed=args.seed, progress=not args.quiet)
    return pairs, catalog


def loss_weights(args, mode):
    """{l1_weight, l2_weight, flux_weight}: the options, or the defaults of ``mode``."""
    l1_weight = args.l1_weight
    if l1_weight is None:
        l1_weight = REFINE_L1_WEIGHT if mode == "refine" else 100.0
    flux_weight = args.flux_weight
    if flux_weight is None:
        flux_weight = 0.1 * l1_weight if mode == "refine" else 0.0
    return {"l1_weight": l1_weight, "l2_weight": args.l2_weight, "flux_weight": flux_weight}


def learning_rate(args):
    """The learning rate: GalaxyGAN's, or with ``--lr-decay`` a linear fall to zero at
    ``--steps`` (the optimizer's step count, so a resumed run continues the fall)."""
    if not args.lr_decay:
        return GalaxyGAN.default_learning_rate
    return keras.optimizers.schedules.PolynomialDecay(
        GalaxyGAN.default_learning_rate, decay_steps=args.steps, end_learning_rate=0.0)


def model_to_train(args, initial, stretch):
    """A new model in ``stretch`` as the options say, or ``initial`` (``--initial-model``)
    with the options' loss weights."""
    if initial is None:
        return GalaxyGAN(config=args.config, stretch=stretch, mode=args.mode, seed=args.seed,
                         **loss_weights(args, args.mode))
    for name, weight in loss_weights(args, initial.mode).items():
        setattr(initial, name, float(weight))
    return initial


def main(argv=None):
    args = parser().parse_args(argv)
    command = " ".join(["python", "scripts/train_galaxygan.py"]
                       + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    start = time.monotonic()
    initial = None if args.initial_model is None else GalaxyGAN.load(args.initial_model)
    pairs, catalog = field_pairs(args, None if initial is None else initial.stretch)
    train = pairs.subset("train")
    model = model_to_train(args, initial, train.stretch)
    galaxies = np.unique(train.manifest["galaxy_id"])
    print(f"{len(catalog)} galaxies selected ({catalog.meta['selection']}); training on "
          f"{len(galaxies)} (RA below the median), {len(train)} pairs, stretch "
          f"{train.stretch.to_dict()}")
    history = model.train(train, steps=args.steps, batch_size=args.batch_size,
                          learning_rate=learning_rate(args),
                          checkpoint_dir=args.checkpoint_dir,
                          checkpoint_every=args.checkpoint_every,
                          log_path=args.checkpoint_dir / "log.csv", in_memory=True,
                          time_limit=None if args.minutes is None else args.minutes * 60,
                          progress=not args.quiet)
    model.card["training"].update(
        command=command, field=args.field, bands="gri", stamp_size=args.size,
        mag_range=[12.0, args.mag_limit], split="RA below the field's median RA (train side)",
        n_galaxies=int(len(galaxies)), draws_per_galaxy=args.draws, max_shift=args.max_shift,
        degradations="drawn: FWHM uniform in 1.2-2.7 arcsec, sigma log-uniform in 1-12",
        wall_time_minutes=round((time.monotonic() - start) / 60, 1),
        initial_model=None if args.initial_model is None else str(args.initial_model),
        final_l1=float(history["l1"][-1]) if history.get("l1") else None)
    model.save(args.output, overwrite=args.overwrite)
    print(f"written: {args.output} and {args.output.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
