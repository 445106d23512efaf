# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Reading SDSS imaging files: corrected frames, psField noise parameters, fpM masks."""

import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty

from ..exceptions import (DefaultNoiseModelWarning, FITSReadError, InvalidParameterError,
                          MixedFieldsError, NoImageHDUError)
from ..utils._fits import celestial_wcs, mask_non_finite
from ..utils._sdss import (DEFAULT_DARK_VARIANCE, DEFAULT_GAIN, FRAME_OFFSET, SDSS_BANDS,
                           band_index, sky_counts)
from ._limits import conf
from ._open import open_fits

__all__ = ["SDSS_BANDS", "SDSS_PIXEL_SCALE", "FPM_MASK_PLANES", "read_sdss_frame",
           "sdss_noise_parameters", "read_fpm_mask", "nanomaggies_to_mag"]

#: Pixel scale of the SDSS imaging camera.
SDSS_PIXEL_SCALE = 0.396 * u.arcsec / u.pix

#: Mask planes of an fpM file, in the order of its HDUs 1 to 10.
FPM_MASK_PLANES = ("INTERP", "SATUR", "NOTCHECKED", "OBJECT", "BRIGHTOBJECT", "BINOBJECT",
                   "CATOBJECT", "SUBTRACTED", "GHOST", "CR")

_DEFAULT_MASK_PLANES = ("INTERP", "SATUR", "CR")


def _field_id(header, path="file"):
    """(run, camcol, field) of an SDSS header.

    psField and fpM files have FIELD.  Frames only have FRAME, the frame
    number of their own filter row, which runs ahead of the field number by
    the row's offset in the camera (see ``FRAME_OFFSET``).
    """
    try:
        field = header.get("FIELD")
        if field is None and header.get("FRAME") is not None:
            band = str(header.get("FILTER", "")).strip()
            field = int(header["FRAME"]) - FRAME_OFFSET.get(band, 0)
        return tuple(int(value) if value is not None else None
                     for value in (header.get("RUN"), header.get("CAMCOL"), field))
    except (TypeError, ValueError) as exc:
        raise FITSReadError(f"{path}: RUN, CAMCOL, FIELD or FRAME is not an integer "
                            f"({exc})") from None


def _header_number(header, keyword, path):
    """A header value as a float: NaN where the keyword is absent."""
    value = header.get(keyword)
    if value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FITSReadError(f"{path}: {keyword} = {str(value)[:40]!r} is not a number") from None


def _mask_shape(header, path):
    """(MASKROWS, MASKCOLS) of an fpM header, checked before a mask of that shape is made."""
    try:
        shape = (int(header["MASKROWS"]), int(header["MASKCOLS"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise FITSReadError(f"{path}: MASKROWS and MASKCOLS must be integers ({exc})") from None
    if min(shape) < 1 or shape[0] * shape[1] > conf.max_fits_bytes:
        raise FITSReadError(f"{path}: a mask of {shape[0]} x {shape[1]} pixels is out of "
                            f"bounds (galaxyml.io.conf.max_fits_bytes = {conf.max_fits_bytes})")
    return shape


def _check_same_field(expected, header, path):
    found = _field_id(header, path)
    if None not in found and found != expected:
        raise MixedFieldsError(f"{path}: belongs to run-camcol-field {'-'.join(map(str, found))}"
                               f", not {'-'.join(map(str, expected))}")


def nanomaggies_to_mag(flux):
    """AB magnitude of a flux in nanomaggies: m = 22.5 - 2.5 log10(f / nmgy).

    Parameters
    ----------
    flux : float, array or `~astropy.units.Quantity`
        Flux in nanomaggies (a Quantity is converted); zero or negative
        fluxes give NaN.

    Returns
    -------
    mag : `~astropy.units.Quantity`
        In ``mag(AB)``.
    """
    flux = u.Quantity(flux, u.nanomaggy).value
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(flux > 0, 22.5 - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)
    return mag * u.ABmag


def sdss_noise_parameters(band, camcol, psfield=None, field_id=None):
    """Gain and dark variance of an SDSS CCD.

    Parameters
    ----------
    band : str
        One of ``u, g, r, i, z``.
    camcol : int
        Camera column, 1 to 6.
    psfield : str or `~pathlib.Path`, optional
        psField file of the field; its HDU 6 holds the exact values.
        Without it, typical values of the SDSS frame data model are used and
        a `~galaxyml.exceptions.DefaultNoiseModelWarning` is issued.
    field_id : tuple of int, optional
        (run, camcol, field) the psField must belong to.

    Returns
    -------
    gain : float
        Electrons per count.
    dark_variance : float
        Read noise and dark current variance in counts squared.
    source : str
        ``"psField"`` or ``"default"``.
    """
    index = band_index(band)
    if psfield is not None:
        row = _psfield_row(psfield, ("gain", "dark_variance"), field_id)
        return float(row["gain"][index]), float(row["dark_variance"][index]), "psField"
    if camcol not in DEFAULT_GAIN:
        raise InvalidParameterError(f"camcol must be 1 to 6, not {camcol!r}")
    warnings.warn(f"no psField given: band {band} of camcol {camcol} uses the typical gain "
                  f"{DEFAULT_GAIN[camcol][index]} and dark variance "
                  f"{DEFAULT_DARK_VARIANCE[camcol][index]} of the SDSS data model",
                  DefaultNoiseModelWarning)
    return DEFAULT_GAIN[camcol][index], DEFAULT_DARK_VARIANCE[camcol][index], "default"


def _psfield_row(psfield, columns, field_id=None):
    """The per-band parameters of a psField (its HDU 6 row): column -> 5 values, u to z.

    Raises `~galaxyml.exceptions.NoImageHDUError` where HDU 6 or one of
    ``columns`` is missing, and `~galaxyml.exceptions.MixedFieldsError`
    where the psField is not of ``field_id`` (run, camcol, field).
    """
    psfield = Path(psfield)
    with open_fits(psfield) as hdul:
        if field_id is not None:
            _check_same_field(field_id, hdul[0].header, psfield)
        table = hdul[6] if len(hdul) >= 7 else None
        names = getattr(getattr(table, "columns", None), "names", None) or []
        missing = [column for column in columns if column not in names]
        if missing:
            raise NoImageHDUError(f"{psfield}: HDU 6 with the columns {missing} is missing; is "
                                  "this a psField file?")
        row = hdul[6].data[0]
        return {column: np.asarray(row[column]) for column in columns}


def read_fpm_mask(path, shape=None, planes=_DEFAULT_MASK_PLANES, field_id=None):
    """Boolean pixel mask from an SDSS fpM file.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        ``fpM-RRRRRR-BC-FFFF.fit[s][.gz]`` file.
    shape : tuple of int, optional
        (rows, columns) of the mask; by default MASKROWS and MASKCOLS.
    planes : iterable of str
        Mask planes to combine, from `FPM_MASK_PLANES`.  By default the
        interpolated, saturated and cosmic-ray pixels.
    field_id : tuple of int, optional
        (run, camcol, field) the file must belong to.

    Returns
    -------
    mask : `~numpy.ndarray` of bool
        True where any of the planes is set.
    """
    path = Path(path)
    unknown = set(planes) - set(FPM_MASK_PLANES)
    if unknown:
        raise InvalidParameterError(f"unknown fpM mask planes {sorted(unknown)}; "
                                    f"choose from {FPM_MASK_PLANES}")
    with open_fits(path) as hdul:
        header = hdul[0].header
        if field_id is not None:
            _check_same_field(field_id, header, path)
        if shape is None:
            shape = _mask_shape(header, path)
        mask = np.zeros(shape, dtype=bool)
        for plane in planes:
            objects = hdul[FPM_MASK_PLANES.index(plane) + 1].data
            for encoded in objects["s"]:
                # Each object is a list of spans (row, first column, last column)
                # stored as big-endian int16 triples.
                spans = np.frombuffer(np.asarray(encoded).tobytes(), ">i2").reshape(-1, 3)
                for row, first, last in spans:
                    if 0 <= row < shape[0]:
                        mask[row, max(first, 0):min(last, shape[1] - 1) + 1] = True
    return mask


def read_sdss_frame(path, psfield=None, fpm=None, mask_planes=_DEFAULT_MASK_PLANES):
    """Read an SDSS corrected frame with its uncertainty and mask.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        ``frame-B-RRRRRR-C-FFFF.fits[.bz2]`` file.
    psfield : str or `~pathlib.Path`, optional
        psField file of the same field, for the exact gain and dark
        variance.  Without it, typical values are used (see
        `sdss_noise_parameters`).
    fpm : str or `~pathlib.Path`, optional
        fpM mask file of the same field and band.
    mask_planes : iterable of str
        fpM planes to mask (see `read_fpm_mask`).

    Returns
    -------
    frame : `~astropy.nddata.CCDData`
        Data in nanomaggies as float32 (sky subtracted, as in the file),
        the TAN WCS, a `~astropy.nddata.StdDevUncertainty` in nanomaggies
        and a boolean mask (fpM planes, and NaN or infinite pixels).
        ``meta`` holds ``run``, ``camcol``, ``field``, ``rerun``, ``band``,
        ``exptime`` (Quantity), ``nmgy_per_count``, ``gain``,
        ``dark_variance``, ``noise_model`` (``"psField"`` or ``"default"``),
        ``filename``, ``psfield`` (where given: the PSF of
        `~galaxyml.gan.PSFGAN` and of the parametric fits) and the primary
        ``header``.

    Notes
    -----
    The uncertainty follows the SDSS data model: the image is turned back
    into counts with the calibration vector and the interpolated binned
    sky, ``dn = image / calibvec + sky``; then
    ``sigma_dn = sqrt(dn / gain + dark_variance)`` and
    ``sigma = sigma_dn * calibvec``.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        if len(hdul) < 3 or hdul[0].header.get("NAXIS") != 2:
            raise NoImageHDUError(f"{path}: not an SDSS frame (HDU 0 image, HDU 1 calibration "
                                  "vector and HDU 2 sky table are required)")
        header = hdul[0].header.copy()
        data = np.asarray(hdul[0].data, dtype=np.float32)
        calibvec = np.asarray(hdul[1].data, dtype=np.float32)
        try:
            sky = sky_counts(hdul[2].data, data.shape)
        except (KeyError, TypeError) as exc:
            raise NoImageHDUError(f"{path}: HDU 2 is not an SDSS sky table ({exc})") from exc
    if calibvec.shape != data.shape[1:]:
        raise NoImageHDUError(f"{path}: the calibration vector has {calibvec.size} values for "
                              f"{data.shape[1]} columns")
    wcs = celestial_wcs(header, path)
    band = str(header.get("FILTER", "")).strip()
    band_index(band, where=str(path))
    field_id = _field_id(header, path)

    gain, dark_variance, noise_model = sdss_noise_parameters(
        band, field_id[1], psfield=psfield, field_id=field_id)
    counts = np.clip(data / calibvec + sky, 0, None)
    sigma = np.sqrt(counts / gain + dark_variance) * calibvec

    mask = None
    if fpm is not None:
        mask = read_fpm_mask(fpm, data.shape, mask_planes, field_id=field_id)
    mask = mask_non_finite(data, mask, path)

    meta = {
        "run": field_id[0], "camcol": field_id[1], "field": field_id[2],
        "rerun": str(header.get("RERUN", "")).strip(),
        "band": band,
        "exptime": _header_number(header, "EXPTIME", path) * u.s,
        "nmgy_per_count": _header_number(header, "NMGY", path),
        "gain": gain, "dark_variance": dark_variance, "noise_model": noise_model,
        "filename": str(path),
        "header": header,
    }
    if psfield is not None:
        meta["psfield"] = str(psfield)
    return CCDData(data, unit=u.nanomaggy, wcs=wcs, meta=meta,
                   uncertainty=StdDevUncertainty(sigma.astype(np.float32)), mask=mask)
