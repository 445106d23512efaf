# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Finding SDSS imaging files locally, or downloading them from the SDSS archive."""

import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from astropy import config as _config
from astropy.utils.data import download_file

from ..exceptions import InvalidParameterError, SDSSDataNotFoundError
from ..io.writing import atomic_output
from ..utils._sdss import SDSS_BANDS, band_index

__all__ = ["conf", "Conf", "SDSSFieldFiles", "sdss_field_files", "local_field_files",
           "sdss_file_urls", "download_verified", "set_aside", "EXAMPLE_FIELD", "example_field",
           "example_field_dir"]

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
    download_timeout = _config.ConfigItem(
        600.0, "Seconds one file's download may take in all; a slower one is abandoned.",
        cfgtype="float")


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
        url = sdss_file_urls(run, camcol, field, band or "r", rerun)[kind]
        found = _find_local(_names(kind, run, camcol, field, band), directories)
        if found is not None and download and not _starts_as_fits(found) \
                and _is_download(found, url, download_dir):
            set_aside(found)  # an earlier download that is not FITS: fetched again below
            found = None
        if found is not None:
            return found
        if not download:
            searched = ", ".join(str(d) for d in directories) or "none configured"
            raise SDSSDataNotFoundError(
                f"{_names(kind, run, camcol, field, band)[0]} is not in the local SDSS "
                f"directories ({searched}) and downloading is off; set "
                f"{DATA_DIR_VARIABLE} or galaxyml.datasets.conf.sdss_data_dirs, or allow "
                f"downloads from {url}")
        try:
            if download_dir is None:
                return _download_to_cache(url, show_progress)
            return _download_to_mirror(url, download_dir, show_progress)
        except Exception as exc:  # network, HTTP and cache errors all mean "not available"
            raise SDSSDataNotFoundError(f"{url}: download failed "
                                        f"({' '.join(str(exc).split())[:300]})") from None

    ordered = [band for band in SDSS_BANDS if band in bands]
    return SDSSFieldFiles(run, camcol, field, rerun,
                          frames={band: locate("frame", band) for band in ordered},
                          psfield=locate("psField"),
                          fpm={band: locate("fpM", band) for band in ordered})


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


def _mirror_path(url, mirror):
    """Where a mirror keeps the file of ``url``: its path below the archive's root."""
    return Path(mirror) / url[len(conf.sdss_base_url.rstrip("/")) + 1:]


def _download_to_mirror(url, mirror, show_progress):
    """Download ``url`` into ``mirror`` at its path below the archive's root, atomically."""
    destination = _mirror_path(url, mirror)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(destination, overwrite=True) as temporary:
        download_verified(url, temporary, show_progress)
    return destination


def _download_to_cache(url, show_progress):
    """``url``'s file in astropy's download cache, downloaded and checked if not there."""
    from astropy.utils.data import clear_download_cache, import_file_to_cache, \
        is_url_in_cache

    if is_url_in_cache(url):
        cached = Path(download_file(url, cache=True, show_progress=False))
        if _starts_as_fits(cached):
            return cached
        clear_download_cache(url)  # an earlier download that is not FITS
    with tempfile.TemporaryDirectory() as directory:
        temporary = Path(directory) / Path(url).name
        download_verified(url, temporary, show_progress)
        return Path(import_file_to_cache(url, str(temporary), remove_original=True))


_READ_SIZE = 1 << 16


def download_verified(url, path, show_progress=False, timeout=None):
    """Download ``url`` to ``path`` and check that it is a complete FITS file.

    The download is abandoned when the server sends an HTML page (an error
    page served with status 200), fewer bytes than its ``Content-Length``,
    or when it takes longer than ``timeout`` seconds in all (by default
    ``conf.download_timeout``), however slowly the bytes trickle in.  The
    file is then checked as galaxyml reads FITS (whole-file compression
    undone, every header and data unit complete).  Callers write ``path``
    under a temporary name and rename it only when this returns.

    Raises
    ------
    SDSSDataNotFoundError
        Any of the above, or a network or HTTP error.
    """
    import urllib.request

    from astropy.utils.console import ProgressBarOrSpinner

    from ..exceptions import FITSReadError
    from ..io._open import open_fits

    timeout = float(conf.download_timeout if timeout is None else timeout)
    start = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": "galaxyml"})
    with urllib.request.urlopen(request, timeout=min(timeout, 30.0)) as response, \
            open(path, "wb") as output:
        content_type = response.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
            raise SDSSDataNotFoundError(f"{url}: the server sent a web page ({content_type}), "
                                        f"not the file")
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        read = getattr(response, "read1", response.read)  # returns what has arrived
        received = 0
        with ProgressBarOrSpinner(length, f"Downloading {url}",
                                  file=None if show_progress else io.StringIO()) as bar:
            while chunk := read(_READ_SIZE):
                output.write(chunk)
                received += len(chunk)
                bar.update(received)
                if time.monotonic() - start > timeout:
                    raise SDSSDataNotFoundError(
                        f"{url}: the download took more than {timeout:.0f} s "
                        f"(galaxyml.datasets.conf.download_timeout) and was abandoned")
    if length is not None and received != length:
        raise SDSSDataNotFoundError(f"{url}: the download is incomplete ({received} of "
                                    f"{length} bytes)")
    try:
        with open_fits(path):
            pass
    except FITSReadError as exc:
        raise SDSSDataNotFoundError(f"{url}: the downloaded file is not a complete FITS file "
                                    f"({' '.join(str(exc).split())[:200]})") from None
    return Path(path)


def _starts_as_fits(path):
    """Whether a file begins as FITS does, after any whole-file compression (a cheap check)."""
    import bz2
    import zlib

    try:
        with open(path, "rb") as stream:
            head = stream.read(4096)
        if head[:3] == b"BZh":
            head = bz2.BZ2Decompressor().decompress(head, max_length=80)
        elif head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, 80)
    except (OSError, EOFError, ValueError, zlib.error):
        return False
    return head.startswith(b"SIMPLE  =")


def _is_download(path, url, download_dir):
    """Whether ``path`` is where galaxyml puts the download of ``url``."""
    return download_dir is not None and Path(path).absolute() == \
        _mirror_path(url, download_dir).absolute()


def set_aside(path):
    """Rename a bad file to ``NAME.corrupt-TIME`` beside it (never deleted); the new path."""
    path = Path(path)
    stem = f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
    aside, number = path.with_name(stem), 1
    while aside.exists():  # set aside twice in a second: keep both
        aside, number = path.with_name(f"{stem}-{number}"), number + 1
    os.replace(path, aside)
    return aside
