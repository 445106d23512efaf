# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Sphinx configuration of the galaxyml documentation."""

import datetime
import socket
from importlib import metadata

from sphinx_astropy.conf.v2 import *  # noqa: F401, F403
from sphinx_astropy.conf.v2 import exclude_patterns, extensions, intersphinx_mapping

project = "galaxyml"
author = "The galaxyml developers"
copyright = f"{datetime.datetime.now().year}, {author}"
release = metadata.version("galaxyml")
version = ".".join(release.split(".")[:2])

extensions += ["matplotlib.sphinxext.plot_directive"]
exclude_patterns += ["_build", "**.ipynb_checkpoints"]
intersphinx_mapping.update({
    "photutils": ("https://photutils.readthedocs.io/en/stable/", None),
    "reproject": ("https://reproject.readthedocs.io/en/stable/", None),
})


def _online(host="docs.astropy.org"):
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


# Without network access (CI, air-gapped clusters) the inventories cannot be
# fetched and ``-W`` would fail the build: links to other packages' docs then
# render as plain text.
if not _online():
    intersphinx_mapping.clear()
nitpicky = False

html_theme_options = {"github_url": "https://github.com/galaxyml/galaxyml"}
html_title = f"galaxyml {release}"
plot_include_source = True
plot_html_show_source_link = False
plot_formats = [("png", 100)]
automodsumm_inherited_members = False
