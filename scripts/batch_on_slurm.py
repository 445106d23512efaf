#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Run ``galaxyml batch`` on a Slurm (or PBS) cluster through dask-jobqueue.

Starts Dask workers as batch jobs (one single-threaded worker per job), runs the
batch on them and releases them.  Needs ``pip install "galaxyml[dask]" dask-jobqueue``,
galaxyml installed on the compute nodes, and the mirror and output directories on a
file system that every node sees.  Rerunning the same command resumes the batch.
Example::

    python scripts/batch_on_slurm.py fields.csv --mirror /scratch/sdss \\
        --tasks catalog,cutouts,morphology --jobs 32 --memory 4GB \\
        --walltime 02:00:00 --output /scratch/stripe82-run
"""

import argparse
import sys

from galaxyml.utils._optional import optional_import


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fields", help="field table or directory of frames")
    parser.add_argument("--mirror", action="append", default=None)
    parser.add_argument("--tasks", default="catalog,cutouts")
    parser.add_argument("--config", default=None, help="TOML or YAML task parameters")
    parser.add_argument("--output", default="galaxyml-batch")
    parser.add_argument("--jobs", type=int, default=8, help="batch jobs, one worker each")
    parser.add_argument("--memory", default="4GB", help="memory of each job")
    parser.add_argument("--walltime", default="02:00:00")
    parser.add_argument("--queue", default=None, help="partition (Slurm) or queue (PBS)")
    parser.add_argument("--system", default="slurm", choices=("slurm", "pbs"))
    args = parser.parse_args(argv)

    jobqueue = optional_import("dask_jobqueue", "Slurm and PBS clusters", "dask")
    from galaxyml.batch import run_batch

    cluster_class = jobqueue.SLURMCluster if args.system == "slurm" else jobqueue.PBSCluster
    with cluster_class(cores=1, processes=1, memory=args.memory, walltime=args.walltime,
                       queue=args.queue) as cluster:
        cluster.scale(jobs=args.jobs)
        manifest, catalog = run_batch(args.fields, mirror=args.mirror, tasks=args.tasks,
                                      executor="dask", scheduler=cluster.scheduler_address,
                                      output=args.output, config=args.config)
    bad = sum(state != "done" for state in manifest["state"])
    print(f"{len(manifest) - bad} of {len(manifest)} fields done, {len(catalog)} galaxies")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
