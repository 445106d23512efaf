# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The readers' limits, ``galaxyml.io.conf``."""

from astropy import config as _config

__all__ = ["Conf", "conf"]

# The configuration file's section, [io], whichever module defines the items.
_SECTION = "galaxyml.io"


class Conf(_config.ConfigNamespace):
    """Limits of the readers (``[io]`` in ``galaxyml.cfg``): a hostile or broken file
    ends in a named error at these bounds instead of taking the machine."""

    max_fits_bytes = _config.ConfigItem(
        1 << 30, "Largest FITS content read, in bytes, after whole-file decompression (an "
        "SDSS frame holds 13 MB); larger files and compressed files or tile-compressed "
        "images that expand beyond it are refused.", cfgtype="integer", module=_SECTION)
    max_compression_ratio = _config.ConfigItem(
        20, "Largest expansion of a gzip or bzip2 FITS file beyond 64 MiB of content (SDSS "
        "frames expand about 3 times); a file that expands more is refused as a "
        "decompression bomb.", cfgtype="integer", module=_SECTION)
    max_image_pixels = _config.ConfigItem(
        25_000_000, "Largest JPEG or PNG image read, in pixels (a Galaxy Zoo image has "
        "180,000); larger images are refused before they are decoded.", cfgtype="integer",
        module=_SECTION)


conf = Conf()
