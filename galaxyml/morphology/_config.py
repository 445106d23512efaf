# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The decompositions' settings, ``galaxyml.morphology.conf``."""

from astropy import config as _config

__all__ = ["Conf", "conf"]

_SECTION = "galaxyml.morphology"


class Conf(_config.ConfigNamespace):
    """Settings of the point source + host decompositions (``[morphology]`` in
    ``galaxyml.cfg``)."""

    detection_threshold = _config.ConfigItem(
        5.0, "A point source is detected when its flux exceeds this many times its "
        "calibrated error (ps_snr); below it the host is the input and the point source "
        "gets an upper limit.", cfgtype="float", module=_SECTION)


conf = Conf()
