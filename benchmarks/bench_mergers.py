#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Benchmark: the merger CNN's backbones against statmorph's CAS and Gini-M20.

On g, r, i stamps (64 x 64) of galaxies of the real SDSS field 2583-2-136,
each case in its own process for its own peak memory, in one run:

* inference, batch 64, for each backbone (galaxyml's small CNN at the 64
  pixels of the evaluation and at its default 96, MobileNetV2 at 96,
  Xception at the paper's 299): `MergerClassifier.predict` end to end (the
  stamps in nanomaggies made colour images, resized, classified) and the
  network alone;
* fine-tuning, batch 32: training steps per second with the backbone
  frozen and unfrozen, for each backbone;
* statmorph (`galaxyml.morphology.nonparametric_morphology`, CAS and
  Gini-M20 on the r band): seconds per galaxy, the baseline the ratios
  are taken against.

Prints cutouts per second, steps per second, peak RSS and the ratios to
statmorph, and writes them to JSON.

    python benchmarks/bench_mergers.py [--field-dir DIR] [--n-galaxies 128]
        [--output benchmarks/results/bench_mergers.json]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import (field_galaxies, field_parser, run_case, run_requested_case,  # noqa: E402
                      seconds_per_call, timed, write_results)

#: (backbone, input size) of the inference and fine-tuning cases.
NETWORKS = (("small", 64), ("small", 96), ("mobilenet", 96), ("xception", 299))
PREDICT_BATCH = 64
TRAIN_BATCH = 32
STATMORPH_GALAXIES = 32
WARM_STEPS = 3


def stamps(field_dir, n_galaxies):
    """``n_galaxies`` g, r, i `MultiBandCutout` (64 x 64) of the field's galaxies, or None."""
    from galaxyml.io import multiband_cutout

    field = field_galaxies(field_dir, "gri", (14.0, 20.0))
    if field is None:
        return None
    _, frames, catalog = field
    rows = [catalog[k % len(catalog)] for k in range(int(n_galaxies))]
    return [multiband_cutout(frames, (float(row["x"]), float(row["y"])), 64, mode="strict")
            for row in rows]


def _quiet():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def predict_case(field_dir, n_galaxies, backbone, size):
    """Cutouts per second of `MergerClassifier.predict` and of the network alone."""
    _quiet()
    import numpy as np

    from galaxyml.datasets.colour import resize_rgb
    from galaxyml.mergers import MergerClassifier, as_rgb

    cutouts = stamps(field_dir, n_galaxies)
    if cutouts is None:
        return {"skipped": True}
    model = MergerClassifier(backbone, weights=None, input_size=int(size))
    end_to_end = seconds_per_call(lambda: model.predict(cutouts, batch_size=PREDICT_BATCH), 2)
    batch = np.stack([resize_rgb(as_rgb(c)[0], int(size)) for c in cutouts])
    network = seconds_per_call(
        lambda: model.network.predict(batch, batch_size=PREDICT_BATCH, verbose=0), 2)
    return {"backbone": backbone, "input_size": int(size), "n_cutouts": len(cutouts),
            "parameters": int(model.network.count_params()),
            "cutouts_per_s": len(cutouts) / end_to_end,
            "network_cutouts_per_s": len(cutouts) / network}


def fine_tune_case(backbone, size, steps):
    """Training steps per second, backbone frozen and unfrozen (random images: speed only)."""
    _quiet()
    import numpy as np

    from galaxyml.datasets.colour import ColourImages
    from galaxyml.mergers import MergerClassifier

    size, steps = int(size), int(steps)
    rng = np.random.default_rng(0)
    images = ColourImages.from_arrays(
        rng.integers(0, 256, (4 * TRAIN_BATCH, size, size, 3), dtype=np.uint8),
        rng.random(4 * TRAIN_BATCH) < 0.5, size)
    figures = {"backbone": backbone, "input_size": size, "batch_size": TRAIN_BATCH,
               "steps": steps}
    for stage in ("frozen", "unfrozen"):
        # Every fine_tune call compiles and traces anew: time WARM_STEPS and
        # WARM_STEPS + steps, and take the difference.
        seconds = []
        for n in (WARM_STEPS, WARM_STEPS + steps):
            model = MergerClassifier(backbone, weights=None, input_size=size)
            stages = {"frozen_steps": n if stage == "frozen" else 0,
                      "unfrozen_steps": n if stage == "unfrozen" else 0}
            seconds.append(timed(model.fine_tune, images, batch_size=TRAIN_BATCH,
                                 checkpoint_every=n, progress=False, **stages)[1])
        figures[f"{stage}_steps_per_s"] = steps / (seconds[1] - seconds[0])
    return figures


def statmorph_case(field_dir, n_galaxies):
    """statmorph's seconds per galaxy (CAS and Gini-M20 of the r band)."""
    _quiet()
    from galaxyml.morphology import nonparametric_morphology

    cutouts = stamps(field_dir, n_galaxies)
    if cutouts is None:
        return {"skipped": True}
    nonparametric_morphology(cutouts[:2], band="r")  # imports, first-call set-up
    table, seconds = timed(nonparametric_morphology, cutouts, band="r")
    return {"n_galaxies": len(cutouts), "seconds_per_galaxy": seconds / len(cutouts),
            "galaxies_per_s": len(cutouts) / seconds,
            "flagged": int((table["flags"] != 0).sum())}


def parser():
    parser = field_parser(__doc__, "bench_mergers")
    parser.add_argument("--n-galaxies", type=int, default=128,
                        help="cutouts classified per call (batches of 64)")
    parser.add_argument("--steps", type=int, default=20,
                        help="timed fine-tuning steps (Xception: a fifth)")
    return parser


def main(argv=None):
    cases = {"predict": predict_case, "fine_tune": fine_tune_case, "statmorph": statmorph_case}
    if run_requested_case(cases, argv):
        return 0
    args = parser().parse_args(argv)
    field_dir = "-" if args.field_dir is None else str(args.field_dir)
    results = {"benchmark": "bench_mergers", "stamp_size": 64, "predict_batch": PREDICT_BATCH,
               "train_batch": TRAIN_BATCH}
    statmorph = run_case(__file__, "statmorph", field_dir, STATMORPH_GALAXIES)
    if statmorph.get("skipped"):
        return 0
    results["statmorph"] = statmorph
    print(f"statmorph CAS + Gini-M20: {statmorph['seconds_per_galaxy'] * 1e3:.0f} ms a galaxy "
          f"({statmorph['flagged']} of {statmorph['n_galaxies']} flagged), peak RSS "
          f"{statmorph['peak_rss_mib']:.0f} MiB")
    for backbone, size in NETWORKS:
        name = f"{backbone}_{size}"
        run = run_case(__file__, "predict", field_dir, args.n_galaxies, backbone, size)
        run["speedup_over_statmorph"] = run["cutouts_per_s"] / statmorph["galaxies_per_s"]
        results[f"predict_{name}"] = run
        print(f"predict {backbone} at {size} px ({run['parameters']:,} parameters): "
              f"{run['cutouts_per_s']:.0f} cutouts/s end to end, "
              f"{run['network_cutouts_per_s']:.0f} network only, "
              f"{run['speedup_over_statmorph']:.0f}x statmorph; peak RSS "
              f"{run['peak_rss_mib']:.0f} MiB")
        steps = args.steps if backbone != "xception" else max(2, args.steps // 5)
        train = run_case(__file__, "fine_tune", backbone, size, steps)
        results[f"fine_tune_{name}"] = train
        print(f"fine-tune {backbone} at {size} px, batch {TRAIN_BATCH}: "
              f"{train['frozen_steps_per_s']:.2f} steps/s frozen, "
              f"{train['unfrozen_steps_per_s']:.2f} unfrozen; peak RSS "
              f"{train['peak_rss_mib']:.0f} MiB")
    write_results(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
