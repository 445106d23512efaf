# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Finding SDSS imaging files locally, or downloading them from the SDSS archive."""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from astropy import config as _config
from astropy.utils.data import download_file

from ..exceptions import InvalidParameterError, SDSSDataNotFoundError
from ..io.writing import atomic_output
from ..utils._sdss import SDSS_BANDS, band_index

__all__ = ["conf", "Conf", "SDSSFieldFiles", "sdss_field_files", "local_field_files",
           "sdss_file_urls", "EXAMPLE_FIELD", "example_field", "example_field_dir"]

#: Environment variable with extra local SDSS directories, separated by os.pathsep.
DATA_DIR_VARIABLE = "GALAXYML_SDSS_DIR"

#: (run, camcol, field) of the real SDSS field that galaxyml's tests, benchmarks, scripts
#: and notebooks use where it is present: 2583-2-136, rerun 301, on Stripe 82.
EXAMPLE_FIELD = (2583, 2, 136)

# Where a development checkout of galaxyml finds the example field: shared/data/sdss beside
# the repository (../shared from its root).
_CHECKOUT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "sdss"


class Conf(_config.ConfigNamespace):
    """Configuration of SDSS file access (``[datasets.sdss]`` in ``galaxyml.cfg``)."""

    sdss_data_dirs = _config.ConfigItem(
        [], "Local directories searched for SDSS frame, psField and fpM files, before the "
        "directories in the GALAXYML_SDSS_DIR environment variable.", cfgtype="string_list")
    sdss_base_url = _config.ConfigItem(
        "https://data.sdss.org/sas/dr17/eboss", "Root of the SDSS Science Archive Server.")
    allow_download = _config.ConfigItem(
        True, "Download SDSS files that are not found locally (into astropy's cache).")


conf = Conf()


@dataclass
class SDSSFieldFiles:
    """The files of one SDSS field.

    Attributes
    ----------
    run, camcol, field : int
        The field.
    rerun : int
        Processing rerun.
    frames : dict
        Band -> path of the ``frame`` file.
    psfield : `~pathlib.Path`
        The ``psField`` file (PSF and noise parameters of all bands).
    fpm : dict
        Band -> path of the ``fpM`` mask file.
    """

    run: int
    camcol: int
    field: int
    rerun: int
    frames: dict = field(default_factory=dict)
    psfield: Path = None
    fpm: dict = field(default_factory=dict)

    def read(self, bands=None, **kwargs):
        """Read the frames with their psField and fpM: band -> CCDData.

        Keyword arguments are passed to `~galaxyml.io.read_sdss_frame`.
        """
        from ..io import read_sdss_frame

        bands = self.frames if bands is None else bands
        return {band: read_sdss_frame(self.frames[band], psfield=self.psfield,
                                      fpm=self.fpm.get(band), **kwargs) for band in bands}


def _names(kind, run, camcol, field, band=None):
    """Accepted file names: the archive's and the ``.fits`` copies."""
    if kind == "frame":
        stem = f"frame-{band}-{run:06d}-{camcol}-{field:04d}"
        return [f"{stem}.fits.bz2", f"{stem}.fits", f"{stem}.fits.gz"]
    if kind == "psField":
        stem = f"psField-{run:06d}-{camcol}-{field:04d}"
        return [f"{stem}.fit", f"{stem}.fits", f"{stem}.fit.gz", f"{stem}.fits.gz"]
    stem = f"fpM-{run:06d}-{band}{camcol}-{field:04d}"
    return [f"{stem}.fit.gz", f"{stem}.fit", f"{stem}.fits", f"{stem}.fits.gz"]


def sdss_file_urls(run, camcol, field, band, rerun=301, base_url=None):
    """Archive URLs of the frame, psField and fpM files of one field and band.

    Returns
    -------
    urls : dict
        ``{"frame": url, "psField": url, "fpM": url}``.
    """
    base = (base_url or conf.sdss_base_url).rstrip("/")
    objcs = f"{base}/photo/redux/{rerun}/{run}/objcs/{camcol}"
    return {
        "frame": f"{base}/photoObj/frames/{rerun}/{run}/{camcol}/"
                 + _names("frame", run, camcol, field, band)[0],
        "psField": f"{objcs}/" + _names("psField", run, camcol, field)[0],
        "fpM": f"{objcs}/" + _names("fpM", run, camcol, field, band)[0],
    }


def _search_dirs(run, camcol, field, rerun, data_dirs):
    """Directories to look in, for each configured root: flat, per field, archive tree."""
    roots = list(data_dirs or []) + list(conf.sdss_data_dirs)
    roots += [root for root in os.environ.get(DATA_DIR_VARIABLE, "").split(os.pathsep) if root]
    for root in map(Path, roots):
        yield root
        yield root / f"{run}-{camcol}-{field}"
        yield root / "photoObj" / "frames" / str(rerun) / str(run) / str(camcol)
        yield root / "photo" / "redux" / str(rerun) / str(run) / "objcs" / str(camcol)


def _find_local(names, directories):
    for directory in directories:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    return None


def sdss_field_files(run, camcol, field, bands="ugriz", rerun=301, data_dirs=None,
                     download=None, show_progress=True, download_dir=None):
    """Find, or download, the frame, psField and fpM files of an SDSS field.

    Files are looked for, in this order, in ``data_dirs``, in the
    directories of the ``sdss_data_dirs`` configuration item, and in those
    of the ``GALAXYML_SDSS_DIR`` environment variable; in each directory
    directly, in a ``RUN-CAMCOL-FIELD`` sub-directory, and in the archive's
    own tree.  Files not found are downloaded from the SDSS Science Archive
    Server into astropy's download cache (once; later calls use the cache).

    Parameters
    ----------
    run, camcol, field : int
        The field.
    bands : str or sequence of str
        Bands to find, from ``ugriz``.
    rerun : int
        Processing rerun (301 for DR8 to DR17 imaging).
    data_dirs : sequence of path, optional
        Directories searched before the configured ones.
    download : bool, optional
        Whether files not found locally may be downloaded; by default the
        ``allow_download`` configuration item.
    show_progress : bool
        Show a progress bar while downloading.
    download_dir : path, optional
        Save downloaded files here, in the archive's directory tree (a
        local mirror that later calls search when it is among
        ``data_dirs``), instead of astropy's download cache.  Each file is
        renamed into place once complete.

    Returns
    -------
    files : `SDSSFieldFiles`

    Raises
    ------
    UnknownBandError
        A band is not one of ``ugriz``.
    SDSSDataNotFoundError
        A file is neither local nor downloadable.
    """
    for band in bands:
        band_index(band, where="sdss_field_files")
    run, camcol, field, rerun = int(run), int(camcol), int(field), int(rerun)
    download = conf.allow_download if download is None else download
    directories = list(_search_dirs(run, camcol, field, rerun, data_dirs))

    def locate(kind, band=None):
        found = _find_local(_names(kind, run, camcol, field, band), directories)
        if found is not None:
            return found
        url = sdss_file_urls(run, camcol, field, band or "r", rerun)[kind]
        if not download:
            searched = ", ".join(str(d) for d in directories) or "none configured"
            raise SDSSDataNotFoundError(
                f"{_names(kind, run, camcol, field, band)[0]} is not in the local SDSS "
                f"directories ({searched}) and downloading is off; set "
                f"{DATA_DIR_VARIABLE} or galaxyml.datasets.conf.sdss_data_dirs, or allow "
                f"downloads from {url}")
        try:
            if download_dir is None:
                return Path(download_file(url, cache=True, show_progress=show_progress))
            return _download_to_mirror(url, download_dir, show_progress)
        except Exception as exc:  # network, HTTP and cache errors all mean "not available"
            raise SDSSDataNotFoundError(f"{url}: download failed ({exc})") from exc

    ordered = [band for band in SDSS_BANDS if band in bands]
    return SDSSFieldFiles(run, camcol, field, rerun,
                          frames={band: locate("frame", band) for band in ordered},
                          psfield=locate("psField"),
                          fpm={band: locate("fpM", band) for band in ordered})


def _download_to_mirror(url, mirror, show_progress):
    """Download ``url`` into ``mirror`` at its path below the archive's root, atomically."""
    destination = Path(mirror) / url[len(conf.sdss_base_url.rstrip("/")) + 1:]
    downloaded = download_file(url, cache=False, show_progress=show_progress)
    with atomic_output(destination, overwrite=True) as temporary:
        shutil.move(downloaded, temporary)
    return destination


def local_field_files(field, bands="ugriz", field_dir=None):
    """The files of a field named ``'RUN-CAMCOL-FIELD'``, found locally, never downloaded.

    For scripts and model cards, which name a field by one string.

    Parameters
    ----------
    field : str
        For example ``'2583-2-136'``.
    bands : str or sequence of str
        Bands to find.
    field_dir : path, optional
        Searched first, with its parent; then as `sdss_field_files` searches.

    Returns
    -------
    files : `SDSSFieldFiles`
    """
    try:
        run, camcol, number = (int(v) for v in str(field).split("-"))
    except ValueError as exc:
        raise InvalidParameterError(f"a field is named 'RUN-CAMCOL-FIELD', for example "
                                    f"'2583-2-136', not {field!r}") from exc
    directories = [] if field_dir is None else [Path(field_dir), Path(field_dir).parent]
    return sdss_field_files(run, camcol, number, bands=bands, data_dirs=directories,
                            download=False)


def example_field(bands="ugriz"):
    """The local files of galaxyml's example SDSS field 2583-2-136, or None where they are absent.

    Looked for as by `sdss_field_files` (in the ``sdss_data_dirs``
    configuration item and the ``GALAXYML_SDSS_DIR`` environment variable,
    directly or in a ``2583-2-136`` sub-directory), and in
    ``../shared/data/sdss`` beside a development checkout of galaxyml;
    never downloaded.  Tests that need it skip where it is absent.

    Parameters
    ----------
    bands : str or sequence of str
        Bands whose frames and masks must be there.

    Returns
    -------
    files : `SDSSFieldFiles` or None
    """
    try:
        return sdss_field_files(*EXAMPLE_FIELD, bands=bands, data_dirs=[_CHECKOUT_DATA_DIR],
                                download=False)
    except SDSSDataNotFoundError:
        return None


def example_field_dir():
    """The directory that holds the example field's files (see `example_field`), or None."""
    files = example_field()
    return None if files is None else files.psfield.parent
