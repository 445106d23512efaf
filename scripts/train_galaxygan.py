#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Train GalaxyGAN on g, r, i stamps of an SDSS field and write the model and its card.

Galaxies are selected with `galaxy_catalog`; the half of the field with RA
below the median is the training side (the other half is for
`scripts/evaluate_galaxygan.py`), with a guard strip between them.  Every
training galaxy is degraded over the paper's 20 cells (FWHM 1.4-2.5 arcsec
x noise 1-10).  The run checkpoints and resumes: run the same command again
after a crash.  The model card records the exact command.

The shipped model was made with the defaults (4000 steps of 8 pairs, about
15 minutes on 2 CPU cores); its card records the exact command::

    python scripts/train_galaxygan.py --field-dir ../shared/data/sdss/2583-2-136 \\
        --output galaxyml/gan/data/galaxygan-small.keras

To train on your own field, point ``--field-dir`` at its frame, psField and
fpM files (any run, camcol and field).
"""

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from galaxyml.datasets import (example_field_dir, galaxy_catalog, local_field_files,
                               make_galaxygan_pairs)
from galaxyml.gan import GalaxyGAN


def parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field-dir", type=Path, default=example_field_dir(),
                        help="directory of the field's files (default: galaxyml's example "
                             "field 2583-2-136 where example_field finds it)")
    parser.add_argument("--field", default="2583-2-136", help="RUN-CAMCOL-FIELD")
    parser.add_argument("--config", default="small", choices=["small", "paper"])
    parser.add_argument("--size", type=int, default=128, help="stamp size in pixels")
    parser.add_argument("--mag-limit", type=float, default=19.0,
                        help="faintest r Kron magnitude of the galaxies")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("galaxygan-checkpoints"))
    parser.add_argument("--output", type=Path, default=Path("galaxygan.keras"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser


def field_pairs(args):
    """The field's frames, its GalaxyGAN pairs over the paper's grid, and the catalogue."""
    frames = local_field_files(args.field, "gri", args.field_dir).read()
    catalog = galaxy_catalog(frames, size=args.size, mag_range=(12.0, args.mag_limit))
    pairs = make_galaxygan_pairs(frames, catalog=catalog, size=args.size, seed=args.seed,
                                 progress=not args.quiet)
    return frames, pairs, catalog


def main(argv=None):
    args = parser().parse_args(argv)
    command = " ".join(["python", "scripts/train_galaxygan.py"]
                       + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    _, pairs, catalog = field_pairs(args)
    train = pairs.subset("train")
    galaxies = np.unique(train.manifest["galaxy_id"])
    print(f"{len(catalog)} galaxies selected ({catalog.meta['selection']}); training on "
          f"{len(galaxies)} (RA below the median), {len(train)} pairs")
    model = GalaxyGAN(config=args.config, seed=args.seed)
    history = model.train(train, steps=args.steps, batch_size=args.batch_size,
                          checkpoint_dir=args.checkpoint_dir,
                          checkpoint_every=args.checkpoint_every,
                          log_path=args.checkpoint_dir / "log.csv", progress=not args.quiet)
    model.card["training"].update(
        command=command, field=args.field, bands="gri", stamp_size=args.size,
        mag_range=[12.0, args.mag_limit], split="RA below the field's median RA (train side)",
        n_galaxies=int(len(galaxies)),
        degradations="GalaxyGAN grid: FWHM 1.4, 1.8, 2.2, 2.5 arcsec x sigma 1, 1.2, 2, 5, 10",
        final_l1=float(history["l1"][-1]) if history.get("l1") else None)
    model.save(args.output, overwrite=args.overwrite)
    print(f"written: {args.output} and {args.output.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
