#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Write simulated SDSS fields and a field table, to try ``galaxyml batch`` without SDSS data.

Each field is a set of g, r, i ``frame``, ``fpM`` and ``psField`` files like
SDSS's (`galaxyml.datasets.simulate_sdss_field`), numbered 1, 2, ... of run
9999, camcol 3; ``fields.ecsv`` lists them.  Then, for example::

    python scripts/simulate_fields.py --n-fields 16 --output sim-fields
    galaxyml batch sim-fields/fields.ecsv --mirror sim-fields \\
        --tasks catalog,cutouts,morphology --executor processes --workers 2 \\
        --output sim-run
    galaxyml batch sim-fields --tasks catalog,cutouts,mergers --executor dask \\
        --workers 2 --output sim-run-dask   # a directory of frames works too
"""

import argparse
import sys
from pathlib import Path

from astropy.table import QTable

from galaxyml.datasets import simulate_sdss_field
from galaxyml.io.writing import atomic_output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-fields", type=int, default=16)
    parser.add_argument("--n-galaxies", type=int, default=30, help="galaxies per field")
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 640),
                        metavar=("ROWS", "COLUMNS"))
    parser.add_argument("--seed", type=int, default=0, help="field k is simulated with seed+k")
    parser.add_argument("--output", type=Path, default=Path("sim-fields"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for number in range(1, args.n_fields + 1):
        simulated = simulate_sdss_field(args.output, bands="gri", shape=tuple(args.shape),
                                        n_galaxies=args.n_galaxies, field=number,
                                        seed=args.seed + number, overwrite=args.overwrite)
        files = simulated.files
        rows.append((files.run, files.camcol, files.field, files.rerun))
        print(f"[{number}/{args.n_fields}] {files.frames['r'].name}")
    table = QTable(rows=rows, names=("run", "camcol", "field", "rerun"))
    with atomic_output(args.output / "fields.ecsv", overwrite=args.overwrite) as temporary:
        table.write(temporary, format="ascii.ecsv")
    print(f"field table: {args.output / 'fields.ecsv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
