#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Cut aligned multi-band stamps of the brightest galaxies of an SDSS field.

The field's files are found locally (``--data-dir``, the ``sdss_data_dirs``
configuration item, ``$GALAXYML_SDSS_DIR``) or downloaded from the SDSS
archive.  Each frame is read once; one multi-extension FITS file per stamp,
a catalogue (ECSV) of what was cut and a preview figure are written.

Example, on the field shipped beside the repository::

    python scripts/cut_sdss_stamps.py 2583 2 136 --data-dir ../shared/data/sdss \\
        --bands gri --size 128 --n-stamps 20 --output stamps-2583-2-136
"""

import argparse
import sys
from pathlib import Path

from astropy import units as u

from galaxyml.datasets import sdss_field_files, source_catalog, sources_inside
from galaxyml.io import multiband_cutout
from galaxyml.io.writing import atomic_output
from galaxyml.visualization import plot_cutouts, save_figure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=int)
    parser.add_argument("camcol", type=int)
    parser.add_argument("field", type=int)
    parser.add_argument("--rerun", type=int, default=301)
    parser.add_argument("--bands", default="gri")
    parser.add_argument("--reference-band", default="r")
    parser.add_argument("--size", type=int, default=128, help="stamp size in pixels")
    parser.add_argument("--n-stamps", type=int, default=20)
    parser.add_argument("--min-fwhm", type=float, default=5.0,
                        help="smallest FWHM in pixels of a source taken as a galaxy")
    parser.add_argument("--max-area", type=float, default=5000.0,
                        help="largest segment area in pixels (excludes clusters and blends)")
    parser.add_argument("--data-dir", type=Path, action="append", default=[])
    parser.add_argument("--no-download", action="store_true")
    parser.add_argument("--output", type=Path, default=Path("stamps"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    files = sdss_field_files(args.run, args.camcol, args.field, bands=args.bands,
                             rerun=args.rerun, data_dirs=args.data_dir,
                             download=not args.no_download)
    frames = files.read()
    reference = frames[args.reference_band]
    catalog = source_catalog(reference, deblend=False)
    inside = sources_inside(catalog, reference.shape, args.size)
    keep = ((inside["fwhm"] > args.min_fwhm * u.pix)
            & (inside["area"] < args.max_area * u.pix ** 2))
    selected = inside[keep][:args.n_stamps]
    print(f"{len(catalog)} sources detected, cutting {len(selected)} galaxies")

    cutouts, names = [], []
    for number, row in enumerate(selected):
        cutout = multiband_cutout(frames, row["sky_centroid"], args.size,
                                  reference_band=args.reference_band)
        path = cutout.write(args.output / f"stamp-{number + 1:04d}.fits",
                            overwrite=args.overwrite)
        names.append(path.name)
        cutouts.append(cutout)
        print(f"[{number + 1}/{len(selected)}] {path}")
    selected["file"] = names
    with atomic_output(args.output / "stamps.ecsv", overwrite=args.overwrite) as temporary:
        selected.write(temporary, format="ascii.ecsv")
    if cutouts:
        save_figure(plot_cutouts(cutouts), args.output / "preview.png", overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
