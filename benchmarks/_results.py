# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""What the benchmarks share: timers, the real field's location, writing figures to JSON."""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIELD = (2583, 2, 136)
DEFAULT_FIELD = REPO.parent / "shared" / "data" / "sdss" / "2583-2-136"


def timed(function, *args, **kwargs):
    """``function(*args, **kwargs)`` and the seconds it took."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def seconds_per_call(function, repeats):
    """Mean seconds of ``function()`` over ``repeats`` calls, after one warm-up call."""
    function()  # compilation, tracing, page faults
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def field_parser(description, name):
    """An argument parser with ``--field-dir`` and ``--output`` (results/NAME.json)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field-dir", type=Path,
                        default=Path(os.environ.get("GALAXYML_TEST_SDSS_DIR", DEFAULT_FIELD)))
    parser.add_argument("--output", type=Path,
                        default=REPO / "benchmarks" / "results" / f"{name}.json")
    return parser


def field_files(field_dir, bands):
    """The real field's files, or None (saying why) where it is not there."""
    if not (field_dir / "frame-r-002583-2-0136.fits.bz2").exists():
        print(f"SKIPPED: the real SDSS field is not at {field_dir} "
              "(pass --field-dir or set GALAXYML_TEST_SDSS_DIR)", file=sys.stderr)
        return None
    from galaxyml.datasets import sdss_field_files

    return sdss_field_files(*FIELD, bands=bands, data_dirs=[field_dir.parent], download=False)


def write_results(results, path):
    """Add the machine's description to ``results`` and write them as JSON."""
    results["machine"] = {"python": platform.python_version(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "system": platform.platform()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"written: {path}")
