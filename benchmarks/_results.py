# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""What the benchmarks share: cases in child processes, timers, the real field, JSON output."""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASE_FLAG = "--case"


def run_case(script, case, *arguments):
    """Run ``case`` of the benchmark ``script`` in a fresh Python process.

    The child (`run_requested_case` in the script's ``main``) calls the
    case's function with ``arguments`` (as strings), and reports its result
    (a dict) with ``seconds`` (its wall time, or the ``seconds`` it
    measured itself) and ``peak_rss_mib`` (the child's peak resident
    memory).  The child prints to the terminal as it goes.

    Returns
    -------
    figures : dict
    """
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "case.json"
        subprocess.run([sys.executable, str(script), CASE_FLAG, case, str(output),
                        *map(str, arguments)], check=True, cwd=REPO)
        return json.loads(output.read_text())


def run_requested_case(cases, argv=None):
    """In a child started by `run_case`: run the case, write its figures, and return True.

    Returns False when this process is not such a child.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != CASE_FLAG:
        return False
    name, output, arguments = argv[1], Path(argv[2]), argv[3:]
    start = time.perf_counter()
    result = cases[name](*arguments)
    seconds = time.perf_counter() - start
    figures = dict(result) if isinstance(result, dict) else {}
    if isinstance(result, float):  # the case timed itself, leaving out its set-up
        figures["seconds"] = result
    figures.setdefault("seconds", seconds)
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    output.write_text(json.dumps(figures))
    return True


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


def main_in_child(script, name, measure, parser, argv=None):
    """A benchmark's ``main``: run ``measure(*argv)`` as case ``name`` in a child process.

    The parent prints the child's seconds and peak RSS and writes its figures
    (with them) to the ``--output`` JSON of ``parser()``; a case that returns
    ``{"skipped": ...}`` (no real field) writes nothing.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if run_requested_case({name: measure}, argv):
        return 0
    args = parser().parse_args(argv)
    results = run_case(script, name, *argv)
    if results.get("skipped"):
        return 0
    print(f"process peak RSS {results['peak_rss_mib']:.0f} MiB, {results['seconds']:.1f} s")
    write_results(results, args.output)
    return 0


def field_parser(description, name):
    """An argument parser with ``--field-dir`` and ``--output`` (results/NAME.json)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field-dir", type=Path, default=None,
                        help="directory of the real field 2583-2-136 (default: where "
                             "galaxyml.datasets.example_field finds it)")
    parser.add_argument("--output", type=Path,
                        default=REPO / "benchmarks" / "results" / f"{name}.json")
    return parser


def field_files(field_dir, bands):
    """The real field's files (in ``field_dir``, else where example_field finds them) or None."""
    from galaxyml.datasets import EXAMPLE_FIELD, example_field_dir, sdss_field_files
    from galaxyml.exceptions import SDSSDataNotFoundError

    field_dir = example_field_dir() if field_dir is None else field_dir
    try:
        if field_dir is not None:
            return sdss_field_files(*EXAMPLE_FIELD, bands=bands,
                                    data_dirs=[field_dir, field_dir.parent], download=False)
    except SDSSDataNotFoundError:
        pass
    print(f"SKIPPED: the real SDSS field 2583-2-136 is not at "
          f"{field_dir or '../shared/data/sdss or $GALAXYML_SDSS_DIR'} (pass --field-dir)",
          file=sys.stderr)
    return None


def field_galaxies(field_dir, bands, mag_range, size=64):
    """The real field's files, frames and galaxies (for ``size``-pixel stamps), or None.

    ``field_dir`` is a case's argument: a directory, or ``"-"`` for the default.
    """
    from galaxyml.datasets import galaxy_catalog

    files = field_files(None if field_dir == "-" else Path(field_dir), bands)
    if files is None:
        return None
    frames = files.read(bands)
    return files, frames, galaxy_catalog(frames, size=size, mag_range=mag_range)


def write_results(results, path):
    """Add the machine's description to ``results`` and write them as JSON."""
    results["machine"] = {"python": platform.python_version(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "system": platform.platform()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"written: {path}")
