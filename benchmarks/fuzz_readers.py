# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Fuzz galaxyml's readers: how many broken or hostile inputs end in a named error.

Every input is a valid seed damaged at random (bytes flipped, truncated, a
header value made absurd, bytes spliced or repeated; `galaxyml.tests.hostile`)
or a file crafted to cost time or memory (decompression bombs, absurd FITS
headers, a YAML alias bomb, a 13000 x 13000 PNG, CMYK and 16-bit images).
Each is read, as galaxyml reads that kind of input, in a worker process
with an address-space limit; the outcome is one of

* ``ok`` (read) or ``galaxyml_error`` (a `GalaxymlError`): as it should be;
* ``other_error``: any other exception escaped (its type is counted);
* ``hang``: no answer within ``--timeout`` seconds (the worker is killed);
* ``blowup``: a ``MemoryError``, the worker killed by the memory limit, or
  its peak resident memory above ``--memory-mib`` during the input.

The first input of each escaped outcome is named (``input-N``); it is
``hostile.random_input(kind, seeds, hostile.new_rng(seed * 1_000_003 + N), directory, N)``.
``--galaxyml DIR`` fuzzes another checkout (an older version, to compare),
with the inputs of this one.  Figures go to ``results/fuzz_readers.json``.

    python benchmarks/fuzz_readers.py --inputs 2000
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import REPO, write_results

HOSTILE = REPO / "galaxyml" / "tests" / "hostile.py"


def _load_hostile():
    spec = importlib.util.spec_from_file_location("hostile", HOSTILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(seeds_json, memory_mib):
    """In the worker: read ``kind path`` lines from stdin, answer one JSON line each."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_mib * 3 << 20, memory_mib * 3 << 20))
    hostile = _load_hostile()
    from galaxyml.exceptions import GalaxymlError

    seeds = {kind: [Path(path) for path in paths]
             for kind, paths in json.loads(seeds_json).items()}
    for line in sys.stdin:
        kind, path = line.rstrip("\n").split(" ", 1)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            hostile.read(kind, Path(path), seeds)
            outcome, error = "ok", ""
        except GalaxymlError as exc:
            outcome, error = "galaxyml_error", type(exc).__name__
        except MemoryError:
            outcome, error = "blowup", "MemoryError"
        except Exception as exc:  # noqa: BLE001  (what is counted)
            outcome, error = "other_error", f"{type(exc).__name__}: {str(exc)[:120]}"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if outcome != "blowup" and peak > before and peak > memory_mib * 1024:
            outcome = "blowup"
        print(json.dumps({"outcome": outcome, "error": error, "peak_mib": peak / 1024,
                          "seconds": time.perf_counter() - start}), flush=True)


class _Worker:
    """A worker process of the galaxyml under test, restarted after a hang or a kill."""

    def __init__(self, galaxyml, seeds, memory_mib):
        self.command = [sys.executable, __file__, "--worker", json.dumps(seeds),
                        str(memory_mib)]
        self.environment = dict(os.environ)
        if galaxyml:
            self.environment["PYTHONPATH"] = str(Path(galaxyml).resolve())
        self.process = None

    def ask(self, kind, path, timeout):
        import select

        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True,
                                            stderr=subprocess.DEVNULL, env=self.environment,
                                            cwd=tempfile.gettempdir())
        self.process.stdin.write(f"{kind} {path}\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"outcome": "hang", "error": f"no answer in {timeout} s"}
        line = self.process.stdout.readline()
        if not line:  # killed: the memory limit, or a crash in C
            code = self.process.wait()
            self.process = None
            return {"outcome": "blowup" if code in (-9, -6) else "other_error",
                    "error": f"the worker died (status {code})"}
        answer = json.loads(line)
        if answer["peak_mib"] > 0 and answer["outcome"] == "blowup":
            self.stop()  # its peak memory is spent: a fresh worker for the next input
        return answer

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def fuzz(args):
    hostile = _load_hostile()
    scratch = Path(tempfile.mkdtemp(prefix="galaxyml-fuzz-"))
    seeds = hostile.seed_files(scratch / "seeds")
    crafted = hostile.crafted_files(scratch / "crafted")
    inputs = [(kind, path, "crafted") for kind, paths in crafted.items() for path in paths]
    per_kind = max(1, args.inputs // len(hostile.KINDS))
    for number in range(per_kind * len(hostile.KINDS)):
        kind = hostile.KINDS[number % len(hostile.KINDS)]
        rng = hostile.new_rng(args.seed * 1_000_003 + number)
        inputs.append((kind, hostile.random_input(kind, seeds, rng, scratch, number), "random"))
    worker = _Worker(args.galaxyml, {kind: [str(p) for p in paths]
                                     for kind, paths in seeds.items()}, args.memory_mib)
    counts, escapes, examples, crafted_outcomes = {}, {}, {}, {}
    start = time.perf_counter()
    try:
        for index, (kind, path, origin) in enumerate(inputs, start=1):
            answer = worker.ask(kind, path, args.timeout)
            key = (kind, answer["outcome"])
            counts[key] = counts.get(key, 0) + 1
            if answer["outcome"] != "ok" and answer["outcome"] != "galaxyml_error":
                name = f"{kind}: {answer['outcome']}: {answer['error'].split(':')[0]}"
                escapes[name] = escapes.get(name, 0) + 1
                examples.setdefault(name, f"{path.name}: {answer['error']}")
            if origin == "crafted":
                crafted_outcomes[path.name] = f"{answer['outcome']} {answer['error']}".strip()
            if index % 200 == 0:
                print(f"{index}/{len(inputs)} inputs, {time.perf_counter() - start:.0f} s",
                      flush=True)
    finally:
        worker.stop()
    return _figures(hostile.KINDS, counts, escapes, examples, crafted_outcomes, len(inputs),
                    time.perf_counter() - start, args)


def _figures(kinds, counts, escapes, examples, crafted, n_inputs, seconds, args):
    outcomes = ("ok", "galaxyml_error", "other_error", "hang", "blowup")
    table = {kind: {outcome: counts.get((kind, outcome), 0) for outcome in outcomes}
             for kind in kinds}
    totals = {outcome: sum(row[outcome] for row in table.values()) for outcome in outcomes}
    print(f"{'kind':12s} " + " ".join(f"{outcome:>15s}" for outcome in outcomes))
    for kind, row in table.items():
        print(f"{kind:12s} " + " ".join(f"{row[outcome]:15d}" for outcome in outcomes))
    print(f"{'all':12s} " + " ".join(f"{totals[outcome]:15d}" for outcome in outcomes))
    for name, count in sorted(escapes.items(), key=lambda item: -item[1]):
        print(f"  {count:5d}  {name}  (first: {examples[name]})")
    for name, outcome in crafted.items():
        print(f"  crafted {name}: {outcome}")
    print(f"{n_inputs} inputs in {seconds:.0f} s")
    return {"inputs": n_inputs, "seconds": seconds, "seed": args.seed,
            "timeout_s": args.timeout, "memory_mib": args.memory_mib,
            "galaxyml": str(args.galaxyml or REPO), "outcomes": table, "totals": totals,
            "escapes": escapes, "first_escapes": examples, "crafted": crafted}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker(argv[1], int(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=2000,
                        help="random inputs, shared equally among the kinds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds an input may take before it counts as a hang")
    parser.add_argument("--memory-mib", type=int, default=1024,
                        help="peak resident memory above which an input is a blow-up")
    parser.add_argument("--galaxyml", type=Path, default=None,
                        help="the root of another galaxyml checkout to fuzz")
    parser.add_argument("--output", type=Path,
                        default=REPO / "benchmarks" / "results" / "fuzz_readers.json")
    args = parser.parse_args(argv)
    write_results(fuzz(args), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
