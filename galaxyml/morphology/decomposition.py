# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Point source plus host galaxy: what every decomposition method shares.

An AGN image is split into a point source and its host galaxy by PSFGAN
(`~galaxyml.gan.PSFGAN.remove_point_source`) or by a parametric fit
(`~galaxyml.morphology.fit_point_source_sersic`).  Both take the same
inputs (`prepare_agn_images`: a CCDData, one band of a MultiBandCutout, an
array in nanomaggies, or a batch of them, with a PSF and a position), return
the host in the input's type, and report the same catalogue
(`decomposition_table`), with the fluxes measured in the same way:

* the point-source flux by PSF photometry (`point_source_photometry`,
  photutils' `~photutils.psf.PSFPhotometry` with the PSF as an
  `~photutils.psf.ImagePSF`), on the image minus the host for PSFGAN;
* the host flux in the Kron aperture of the host image
  (`host_photometry`), the definition of the truth table of
  `~galaxyml.degrade.add_point_source`.
"""

import functools
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import mad_std
from astropy.table import QTable
from astropy.utils.exceptions import AstropyUserWarning
from photutils.psf import ImagePSF, PSFPhotometry

from ..degrade.core import sky_noise
from ..exceptions import (BandMismatchError, InvalidInputTypeError, InvalidShapeError,
                          NonFiniteDataError, PSFError)
from ..io.cutout import MultiBandCutout
from ..io.sdss import nanomaggies_to_mag
from ..psf.models import PSFModel, SampledPSF
from ..psf.sdss import SDSSPSFBasis
from ..sources import source_nearest, total_flux
from ..utils._images import inpaint, pixel_position

__all__ = ["DECOMPOSITION_FLAGS", "AGNImage", "SourceBox", "prepare_image", "prepare_agn_images",
           "point_source_photometry", "host_photometry", "decomposition_table",
           "decode_decomposition_flags"]

#: Bits of the ``flags`` column of a decomposition table.
DECOMPOSITION_FLAGS = {
    1: "no source was detected near the image centre: the point source was placed there",
    2: "the point source is near the image edge: the network's box or the fit region is "
       "shifted or padded",
    4: "NaN or masked pixels near the point source were in-painted",
    8: "pixels brighter than the network's stretch range were clipped",
    16: "the fit (PSF photometry or the two-component fit) did not converge, left the image "
        "or has no covariance",
    32: "no host galaxy was detected: the host flux is NaN",
    64: "a flux is zero or negative: its magnitude is NaN",
    128: "the fit failed: fluxes are NaN",
}
FLAG_CENTRE = 1
FLAG_EDGE = 2
FLAG_INPAINTED = 4
FLAG_CLIPPED = 8
FLAG_PS_FIT = 16
FLAG_NO_HOST = 32
FLAG_NONPOSITIVE = 64
FLAG_FAILED = 128

# photutils' PSF photometry flags that mean the flux is not to be trusted.
_PSF_BAD_FLAGS = 2 | 8 | 16 | 32
# 2.5 / ln(10): magnitude error of a relative flux error.
_MAG_PER_RELATIVE_FLUX = 2.5 / np.log(10)


def decode_decomposition_flags(flags):
    """The descriptions of the bits set in a ``flags`` value of a decomposition table."""
    return [text for bit, text in DECOMPOSITION_FLAGS.items() if int(flags) & bit]


class AGNImage:
    """One image prepared for a decomposition: data, errors, mask, PSF, position.

    Made by `prepare_agn_images`; ``data`` and ``error`` are 2-D float
    arrays in nanomaggies, masked and NaN pixels in-painted in ``data``
    (and True in ``mask``); ``sky_noise`` the blank sky's noise, which
    sets the detection thresholds; ``x``, ``y`` the point source's pixel
    position; ``flags`` the bits of `DECOMPOSITION_FLAGS` set so far.
    """

    def __init__(self, original, data, error, mask, sky_noise, psf, x, y, flags, band=None,
                 meta=None, origin=(0, 0)):
        self.original = original
        self.meta = meta or {}
        self.origin = origin
        self.data = data
        self.error = error
        self.sky_noise = sky_noise
        self.mask = mask
        self.psf = psf
        self.x = x
        self.y = y
        self.flags = flags
        self.band = band

    @property
    def shape(self):
        """(ny, nx)."""
        return self.data.shape

    @property
    def wcs(self):
        """The input's WCS, or None for arrays."""
        return getattr(self.original, "wcs", None)

    def wrap(self, host, spread=None, method="decomposition"):
        """The host image in the input's type and unit, with WCS, mask and uncertainty.

        Parameters
        ----------
        host : 2-D array
            In nanomaggies.
        spread : 2-D array, optional
            The method's own per-pixel standard deviation (nanomaggies),
            added in quadrature to the input's uncertainty.
        method : str
            Recorded in the metadata as ``point_source_removed_by``.
        """
        original = self.original
        if not isinstance(original, (CCDData, MultiBandCutout)):
            return host
        scale = original.unit.to(u.nanomaggy)
        data = (host / scale).astype(np.float32)
        error = self.error if spread is None else np.hypot(self.error, spread)
        error = error / scale if original.uncertainty is not None or spread is not None else None
        meta = dict(original.meta, point_source_removed_by=method)
        if isinstance(original, MultiBandCutout):
            meta["bands"] = {self.band: original.meta["bands"].get(self.band, {})}
            return MultiBandCutout(data[None], (self.band,), original.wcs.deepcopy(),
                                   original.unit, mask=self.mask[None], meta=meta,
                                   uncertainty=None if error is None else error[None])
        return CCDData(data, unit=original.unit, wcs=original.wcs, mask=self.mask, meta=meta,
                       uncertainty=None if error is None else StdDevUncertainty(error))


def prepare_agn_images(images, psf=None, position=None, band=None, bands=None):
    """Normalise the inputs of a point source + host decomposition.

    Parameters
    ----------
    images : `~astropy.nddata.CCDData`, `~galaxyml.io.MultiBandCutout`, array, or list
        In nanomaggies (or a unit convertible to them): a CCDData, a
        cutout (with ``band`` when it has several), a 2-D array, a 3-D
        array (a batch of 2-D images), or a list of these.
    psf : `~galaxyml.psf.PSFModel`, 2-D array, path, or list, optional
        The PSF: a model, an image of it (normalised here), or an SDSS
        psField file evaluated at the point source's position on the frame
        (the image's origin on the frame, as cutouts record it, plus
        its position in the image); one for all images or a list with one
        per image.  By default the psField named in the image's metadata
        (``psfield``, as `~galaxyml.io.read_sdss_frame` records it).
    position : tuple of float, `~astropy.coordinates.SkyCoord`, or list, optional
        The point source's (x, y) pixel position or sky position; by
        default the centroid of the source detected nearest the image
        centre, as for `~galaxyml.degrade.add_point_source` (the image
        centre, flagged, if none is detected).  The fits refine it by up to
        2 pixels.
    band : str, optional
        The band to use from a multi-band cutout.
    bands : sequence of str, optional
        Bands the method accepts (a model's training band); any by default.

    Returns
    -------
    prepared : list of `AGNImage`
    single : bool
        Whether ``images`` was one image rather than a batch.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        items, single = list(images), False
    elif isinstance(images, (list, tuple)):
        items, single = list(images), False
    else:
        items, single = [images], True
    psfs = _per_image(psf, len(items), "psf")
    positions = _per_image(position, len(items), "position")
    prepared = []
    for item, item_psf, item_position in zip(items, psfs, positions):
        image = prepare_image(item, item_position, band, bands)
        image.psf = _resolve_psf(item_psf, image.meta, image.band, image.origin, image.x,
                                 image.y)
        prepared.append(image)
    return prepared, single


def _per_image(value, n, name):
    if isinstance(value, list):
        if len(value) != n:
            raise InvalidShapeError(f"{len(value)} values of {name} for {n} images")
        return value
    return [value] * n


def prepare_image(image, position=None, band=None, bands=None):
    """One image in nanomaggies with its errors, mask and the position of its central source.

    The part of `prepare_agn_images` that does not need a PSF, shared with
    the non-parametric morphology (`~galaxyml.morphology.cas`).

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`, `~galaxyml.io.MultiBandCutout` or 2-D array
        In nanomaggies (or a unit convertible to them).
    position, band, bands
        As for `prepare_agn_images`.

    Returns
    -------
    prepared : `AGNImage`
        With ``psf`` None.
    """
    if isinstance(image, MultiBandCutout):
        if band is None:
            if len(image.bands) != 1:
                raise BandMismatchError(f"the cutout has bands {image.bands}: choose one with "
                                        "band=")
            band = image.bands[0]
        ccd = image[band]  # raises UnknownBandError for a band the cutout lacks
        origin = image.meta.get("origin", (0, 0))
    elif isinstance(image, CCDData):
        ccd, origin = image, (image.meta.get("xorigin", 0), image.meta.get("yorigin", 0))
        band = image.meta.get("band") or band
    elif isinstance(image, np.ndarray):
        array = np.asarray(image, dtype=float)
        if array.ndim != 2:
            raise InvalidShapeError(f"an image array must be 2-D (or a batch of 2-D images), "
                                    f"not of shape {array.shape}")
        ccd, origin = CCDData(array, unit=u.nanomaggy), (0, 0)
    else:
        raise InvalidInputTypeError(f"cannot decompose a {type(image).__name__}: pass a "
                                    "CCDData, a MultiBandCutout, or an array in nanomaggies")
    if bands is not None and band is not None and band not in bands:
        raise BandMismatchError(f"the image is in band {band!r}; the model was trained on "
                                f"{tuple(bands)}")
    scale = ccd.unit.to(u.nanomaggy)  # raises UnitConversionError for non-flux images
    data = np.asarray(ccd.data, dtype=float) * scale
    mask = ~np.isfinite(data) if ccd.mask is None else (np.asarray(ccd.mask, bool)
                                                        | ~np.isfinite(data))
    if mask.all():
        raise NonFiniteDataError("every pixel of the image is NaN or masked")
    error = _error_plane(ccd, data, mask, scale)
    filled = inpaint(data[None], mask[None])[0]
    noise = sky_noise(filled, mask)
    x, y, flags = _position(ccd, filled, error, mask, noise, position)
    if mask[_window(data.shape, x, y, 3)].any():
        flags |= FLAG_INPAINTED
    return AGNImage(image, filled, error, mask, noise, None, x, y, flags, band, ccd.meta,
                    origin)


def _error_plane(ccd, data, mask, scale):
    """Per-pixel 1-sigma errors in nanomaggies: the uncertainty, or the image's robust scatter."""
    if ccd.uncertainty is not None:
        error = ccd.uncertainty.represent_as(StdDevUncertainty).array * scale
        error = np.where(np.isfinite(error) & (error > 0), error, np.nan)
        fill = np.nanmedian(error) if np.isfinite(error).any() else 1.0
        return np.where(np.isfinite(error), error, fill)
    sigma = mad_std(data[~mask])
    return np.full(data.shape, sigma if sigma > 0 else 1.0)


def _position(ccd, data, error, mask, noise, position):
    ny, nx = data.shape
    flags = 0
    if position is None:
        # The convention of add_point_source: the centroid of the central source.
        source = source_nearest(CCDData(data, unit=u.nanomaggy, mask=mask,
                                        uncertainty=StdDevUncertainty(error)), noise=noise)
        if source is None:
            x, y, flags = (nx - 1) / 2, (ny - 1) / 2, FLAG_CENTRE
        else:
            x, y = float(source["x"]), float(source["y"])
    else:
        x, y = pixel_position(position, data.shape, ccd.wcs)
    return x, y, flags


def _resolve_psf(psf, meta, band, origin, x, y):
    if psf is None:
        psf = (meta or {}).get("psfield")
        if psf is None:
            raise PSFError("no PSF was given and the image's metadata name no psField file: "
                           "pass psf= (a galaxyml.psf model, a PSF image or a psField path)")
    if isinstance(psf, PSFModel):
        return psf
    if isinstance(psf, (str, Path)):
        if band is None:
            raise PSFError(f"the psField {psf} holds one PSF per band, and the image's band is "
                           "unknown: pass band= or a PSF model")
        return _psf_basis(str(psf), band).at(origin[1] + y, origin[0] + x)
    return SampledPSF(psf)  # raises InvalidPSFError if it cannot be normalised


@functools.lru_cache(maxsize=16)
def _psf_basis(path, band):
    """The KL-PSF of a psField, read once for every image of the field."""
    return SDSSPSFBasis(path, band)


def _window(shape, x, y, half):
    """Slices of the pixels within ``half`` of (x, y)."""
    ix, iy = int(round(x)), int(round(y))
    return (slice(max(iy - half, 0), min(iy + half + 1, shape[0])),
            slice(max(ix - half, 0), min(ix + half + 1, shape[1])))


class SourceBox:
    """Where a ``size`` x ``size`` box centred on (x, y) lies in an image of ``shape``.

    ``slices`` select the image's pixels in the box; with ``pad``, a box
    larger than the image is completed by reflect-padding (``padding``,
    else None), otherwise it is cut to the image.  The source lands within
    half a pixel of the box centre, (size - 1) / 2, as in PSFGAN's training
    stamps; near an edge the box is shifted inside the image.  ``flags``
    holds the edge bit when the box is padded, or shifted so far that the
    source lies over 1.5 pixels from its centre.
    """

    def __init__(self, shape, x, y, size, pad=True):
        axes = [_box_axis(n, centre, size, pad) for n, centre in zip(shape, (y, x))]
        self.slices = tuple(axis[0] for axis in axes)
        padding = tuple(axis[1] for axis in axes)
        self.padding = None if padding == ((0, 0), (0, 0)) else padding
        self.flags = FLAG_EDGE if any(axis[2] for axis in axes) else 0

    def cut(self, image):
        """The box of ``image``, reflect-padded where it extends beyond it."""
        inside = image[self.slices]
        return inside if self.padding is None else np.pad(inside, self.padding, mode="reflect")

    def crop(self, box_image):
        """The part of a box-shaped image that covers the image's pixels."""
        if self.padding is None:
            return box_image
        (top, bottom), (left, right) = self.padding
        return box_image[top:box_image.shape[0] - bottom, left:box_image.shape[1] - right]


def _box_axis(n, centre, size, pad):
    """(slice, (pad before, pad after), flagged) of a box along one axis of length n."""
    start = int(np.floor(centre - (size - 1) / 2 + 0.5))
    if n >= size:
        inside = min(max(start, 0), n - size)
        return slice(inside, inside + size), (0, 0), abs(inside - start) > 1
    if not pad:
        return slice(0, n), (0, 0), abs(start) > 1
    before = min(max(-start, 0), size - n)
    return slice(0, n), (before, size - n - before), True


def _fit_shape(kernel):
    """Odd side of the PSF-fitting box: about four FWHM (from the area above half the
    peak), at least 7 pixels."""
    fwhm = 2 * np.sqrt((kernel >= kernel.max() / 2).sum() / np.pi)
    return max(2 * int(np.ceil(2 * fwhm)) + 1, 7)


def point_source_photometry(image, psf, position, error, mask=None, max_shift=2.0):
    """Flux of a point source by PSF photometry (photutils), at a position known to a pixel.

    Parameters
    ----------
    image : 2-D array
        The point source alone (for PSFGAN: the image minus the host), in
        nanomaggies.
    psf : `~galaxyml.psf.PSFModel`
        Its PSF; fitted as an `~photutils.psf.ImagePSF` over a box of
        about four FWHM.
    position : tuple of float
        Initial (x, y); the fit moves it by at most ``max_shift`` pixels.
    error : 2-D array
        1-sigma errors of ``image`` (all sources of noise).
    mask : 2-D array of bool, optional
        Pixels left out of the fit.

    Returns
    -------
    result : dict
        ``flux``, ``flux_err`` (nanomaggies, from the fit's covariance),
        ``x``, ``y``, ``flags`` (`DECOMPOSITION_FLAGS` bit 16 where
        photutils flags the fit).
    """
    kernel = psf.render()
    photometry = PSFPhotometry(ImagePSF(kernel), _fit_shape(kernel), xy_bounds=max_shift)
    x, y = position
    box = image[_window(image.shape, x, y, 1)]
    init = QTable({"x": [x], "y": [y], "flux": [max(float(np.sum(box)), 1e-3)]})
    with warnings.catch_warnings():
        # A fit that does not converge is flagged in the table (bit 16), not raised.
        warnings.simplefilter("ignore", AstropyUserWarning)
        table = photometry(image, error=error, mask=mask, init_params=init)
    row = table[0]
    flux_err = float(row["flux_err"]) if "flux_err" in table.colnames else np.nan
    flags = FLAG_PS_FIT if int(row["flags"]) & _PSF_BAD_FLAGS or not np.isfinite(flux_err) else 0
    return {"flux": float(row["flux_fit"]), "flux_err": flux_err, "x": float(row["x_fit"]),
            "y": float(row["y_fit"]), "flags": flags}


def host_photometry(host, error, position, mask=None, noise=None):
    """Flux of the host galaxy in its Kron aperture, the definition of the truth tables.

    As `~galaxyml.degrade.add_point_source` and
    `~galaxyml.datasets.make_psfgan_pairs` measure the host (through
    `~galaxyml.degrade.host_galaxy`).

    The host is the source detected in the host image nearest the point
    source's position (`~galaxyml.sources.source_nearest`), above 3 times
    ``noise``: the blank sky's noise of the input image, as the truth
    table's threshold is its stamp's, so that a host image with less noise
    than the input (a network's) is segmented as the galaxy itself was.
    Its flux is the Kron flux (the segment's where the Kron aperture is
    undefined, `~galaxyml.sources.total_flux`), with the error from
    ``error``.

    Returns
    -------
    result : dict
        ``flux``, ``flux_err`` in nanomaggies (NaN if no host is
        detected), ``flags`` (bit 32 then).
    """
    image = CCDData(host, unit=u.nanomaggy, mask=mask, uncertainty=StdDevUncertainty(error))
    source = source_nearest(image, position, noise=noise)
    if source is None:
        return {"flux": np.nan, "flux_err": np.nan, "flags": FLAG_NO_HOST}
    flux, flux_err = total_flux(source)
    return {"flux": flux.to_value(u.nanomaggy), "flux_err": flux_err.to_value(u.nanomaggy),
            "flags": 0}


def decomposition_table(rows, images, method):
    """The catalogue of a decomposition: one row per image.

    Parameters
    ----------
    rows : list of dict
        Per image: ``ps_flux``, ``ps_flux_err``, ``host_flux``,
        ``host_flux_err`` (nanomaggies), ``x``, ``y`` (the point source's
        fitted position), ``flags``, and any extra columns.
    images : list of `AGNImage`
        The inputs, for the sky position of the point source.
    method : str
        Recorded in ``meta['method']``.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``ps_flux``, ``ps_flux_err``, ``ps_mag``, ``ps_mag_err``,
        ``host_flux``, ``host_flux_err``, ``host_mag``, ``host_mag_err``,
        ``x``, ``y``, ``sky_centroid`` (where the image has a celestial
        WCS), ``flags``, then the extra columns; ``meta['flags']``
        describes the bits.
    """
    table = QTable()
    for part in ("ps", "host"):
        flux = np.array([row[f"{part}_flux"] for row in rows], float)
        flux_err = np.array([row[f"{part}_flux_err"] for row in rows], float)
        table[f"{part}_flux"] = flux * u.nanomaggy
        table[f"{part}_flux_err"] = flux_err * u.nanomaggy
        table[f"{part}_mag"] = nanomaggies_to_mag(flux)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{part}_mag_err"] = np.where(flux > 0, _MAG_PER_RELATIVE_FLUX * flux_err / flux,
                                                np.nan) * u.mag
    table["x"] = [row["x"] for row in rows] * u.pix
    table["y"] = [row["y"] for row in rows] * u.pix
    wcs_list = [image.wcs for image in images]
    if rows and all(w is not None and w.has_celestial for w in wcs_list):
        table["sky_centroid"] = SkyCoord([w.pixel_to_world(row["x"], row["y"])
                                          for w, row in zip(wcs_list, rows)])
    nonpositive = ~(table["ps_flux"].value > 0) | ~(table["host_flux"].value > 0)
    table["flags"] = np.array([int(row["flags"]) for row in rows], np.int32) \
        | np.where(nonpositive, FLAG_NONPOSITIVE, 0).astype(np.int32)
    standard = {"ps_flux", "ps_flux_err", "host_flux", "host_flux_err", "x", "y", "flags"}
    for name in rows[0] if rows else ():
        if name not in standard:
            table[name] = [row[name] for row in rows]
    table.meta["method"] = method
    table.meta["flags"] = {bit: text for bit, text in DECOMPOSITION_FLAGS.items()}
    return table
