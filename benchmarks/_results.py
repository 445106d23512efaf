# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Writing benchmark figures to JSON, with the machine they were measured on."""

import json
import os
import platform


def write_results(results, path):
    """Add the machine's description to ``results`` and write them as JSON."""
    results["machine"] = {"python": platform.python_version(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "system": platform.platform()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"written: {path}")
