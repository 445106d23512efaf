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
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import mad_std
from astropy.table import QTable
from scipy.optimize import brentq, minimize

from ..degrade.core import sky_noise
from ..exceptions import (BandMismatchError, InvalidInputTypeError, InvalidParameterError,
                          InvalidShapeError, NonFiniteDataError, PSFError)
from ..io.cutout import MultiBandCutout
from ..io.fits import wcs_pixel_scale
from ..io.sdss import nanomaggies_to_mag
from ..psf.models import PSFModel, SampledPSF
from ..psf.sdss import SDSSPSFBasis
from ..sources import source_nearest, total_flux
from ..utils._images import inpaint, pixel_position
from ._config import conf
from .pointsource import psf_photometry

__all__ = ["DECOMPOSITION_FLAGS", "AGNImage", "SourceBox", "DecompositionErrors",
           "prepare_image", "prepare_agn_images", "point_source_photometry", "render_psf",
           "host_photometry", "decide_and_measure", "decomposition_table",
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
    128: "the decomposition failed: fluxes are NaN",
    256: "more than half of the pixels around the point source are masked: nothing is measured",
}
FLAG_CENTRE = 1
FLAG_EDGE = 2
FLAG_INPAINTED = 4
FLAG_CLIPPED = 8
FLAG_PS_FIT = 16
FLAG_NO_HOST = 32
FLAG_NONPOSITIVE = 64
FLAG_FAILED = 128
FLAG_MASKED = 256

# A PSF on pixels more than 2% larger or smaller than the image's is refused.
_PIXEL_SCALE_TOLERANCE = 0.02
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
    position; ``flags`` the bits of `DECOMPOSITION_FLAGS` set so far;
    ``source`` the input's source at the position (a
    `~galaxyml.sources.source_nearest` row, or None); ``neighbours`` the
    pixels of the other sources detected in the input; ``raw`` the input's
    values before in-painting.
    """

    def __init__(self, original, data, error, mask, sky_noise, psf, x, y, flags, band=None,
                 meta=None, origin=(0, 0), source=None, neighbours=None, raw=None):
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
        self.source = source
        self.neighbours = np.zeros(data.shape, bool) if neighbours is None else neighbours
        self.raw = data if raw is None else raw

    @property
    def shape(self):
        """(ny, nx)."""
        return self.data.shape

    @functools.cached_property
    def kernel(self):
        """The PSF rendered for photometry (`render_psf`), once per image."""
        return render_psf(self.psf)

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
        # Masked pixels the method left alone get the input's own values back.
        host = np.where(self.mask & (host == self.data), self.raw, host)
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


def prepare_agn_images(images, psf=None, position=None, band=None, bands=None, window=7):
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
    window : int
        Side of the square around the point source where masked (in-painted)
        pixels set flag 4, and more than half of them masked flag 256.

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
        image = prepare_image(item, item_position, band, bands, window)
        image.psf = _resolve_psf(item_psf, image.meta, image.band, image.origin, image.x,
                                 image.y)
        _check_pixel_scale(image)
        prepared.append(image)
    return prepared, single


def _per_image(value, n, name):
    if isinstance(value, list):
        if len(value) != n:
            raise InvalidShapeError(f"{len(value)} values of {name} for {n} images")
        return value
    return [value] * n


def prepare_image(image, position=None, band=None, bands=None, window=7):
    """One image in nanomaggies with its errors, mask and the position of its central source.

    The part of `prepare_agn_images` that does not need a PSF, shared with
    the non-parametric morphology (`~galaxyml.morphology.cas`).

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`, `~galaxyml.io.MultiBandCutout` or 2-D array
        In nanomaggies (or a unit convertible to them).
    position, band, bands, window
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
    x, y, flags, source, segments = _position(ccd, filled, error, mask, noise, position)
    around = mask[_window(data.shape, x, y, int(window) // 2)]
    if around.any():
        flags |= FLAG_INPAINTED
    if around.mean() > 0.5:
        flags |= FLAG_MASKED
    neighbours = (segments > 0) & (segments != (0 if source is None else source["id"]))
    return AGNImage(image, filled, error, mask, noise, None, x, y, flags, band, ccd.meta,
                    origin, source, neighbours, raw=data)


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
    """(x, y, flags, the source there, the segmentation) of the point source."""
    ny, nx = data.shape
    flags = 0
    given = None if position is None else pixel_position(position, data.shape, ccd.wcs)
    # The convention of add_point_source: the centroid of the central source.
    source, segments = source_nearest(CCDData(data, unit=u.nanomaggy, mask=mask,
                                              uncertainty=StdDevUncertainty(error)),
                                      given, noise=noise, segment_map=True)
    if given is not None:
        x, y = given
    elif source is None:
        x, y, flags = (nx - 1) / 2, (ny - 1) / 2, FLAG_CENTRE
    else:
        x, y = float(source["x"]), float(source["y"])
    return x, y, flags, source, segments


def _check_pixel_scale(image):
    """A PSF sampled on another pixel grid than the image's cannot fit its point source."""
    wcs = image.wcs
    if wcs is None or not wcs.has_celestial:
        return
    scale = wcs_pixel_scale(wcs).to_value(u.arcsec / u.pix)
    psf_scale = image.psf.pixel_scale.to_value(u.arcsec / u.pix)
    if abs(psf_scale / scale - 1) > _PIXEL_SCALE_TOLERANCE:
        raise PSFError(f"the PSF is sampled at {psf_scale:.4g} arcsec per pixel and the image at "
                       f"{scale:.4g}: resample one of them (for example with "
                       "galaxyml.psf.SampledPSF(..., pixel_scale=)) first")


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

    def to_box(self, x, y):
        """(x, y) in the image -> (x, y) in the box."""
        (top, _), (left, _) = self.padding or ((0, 0), (0, 0))
        return x - self.slices[1].start + left, y - self.slices[0].start + top

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


def point_source_photometry(image, psf, position, error, mask=None, max_shift=2.0):
    """Flux of a point source by PSF photometry, at a position known to a pixel.

    One image of `~galaxyml.morphology.psf_photometry`, the batch version.

    Parameters
    ----------
    image : 2-D array
        The point source alone (for PSFGAN: the image minus the host), in
        nanomaggies.
    psf : `~galaxyml.psf.PSFModel`
        Its PSF; fitted over a box of about four FWHM.
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
        ``x``, ``y``, ``flags`` (`DECOMPOSITION_FLAGS` bit 16 where the
        fit has no covariance).
    """
    fit = psf_photometry([image], [error], [render_psf(psf)], [position],
                         masks=None if mask is None else [mask], max_shift=max_shift)
    return {"flux": float(fit.flux[0]), "flux_err": float(fit.flux_err[0]),
            "x": float(fit.x[0]), "y": float(fit.y[0]),
            "flags": 0 if fit.ok[0] else FLAG_PS_FIT}


def render_psf(psf):
    """The PSF model's kernel, wide enough for photometry: at least 25 pixels a side."""
    return psf.render(max(psf.default_size, 25))


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


class DecompositionErrors:
    """Errors of a decomposition that include the method's own, calibrated on known truth.

    A method's photometric errors (from the error plane alone) leave out
    how well it separates the point source from its host.  That depends on
    how much host light lies under the PSF, ``core`` (the host image's PSF
    flux at the point source, `host_core_flux`), and on the fluxes
    themselves::

        ps_flux_err**2   = e_ps**2   + (ps_core * core)**2 + (ps_relative * ps_flux)**2
        host_flux_err**2 = e_host**2 + (host_core * core)**2 + (host_ps * ps_flux)**2
                           + (host_relative * host_flux)**2

    with ``e`` the photometric errors.  `calibrate` fits the coefficients
    by maximum likelihood on pairs of known truth (the training side); the
    model card or the fit's calibration file records them.

    Parameters
    ----------
    ps_core, ps_relative, host_core, host_ps, host_relative : float
        The coefficients (0: photometric errors only).
    meta : dict, optional
        How they were calibrated.
    """

    terms = ("ps_core", "ps_relative", "host_core", "host_ps", "host_relative")

    def __init__(self, ps_core=0.0, ps_relative=0.0, host_core=0.0, host_ps=0.0,
                 host_relative=0.0, meta=None):
        values = dict(ps_core=ps_core, ps_relative=ps_relative, host_core=host_core,
                      host_ps=host_ps, host_relative=host_relative)
        for name, value in values.items():
            if not (np.isfinite(value) and value >= 0):
                raise InvalidParameterError(f"{name} must be finite and not negative, not "
                                            f"{value}")
            setattr(self, name, float(value))
        self.meta = dict(meta or {})

    def __repr__(self):
        values = ", ".join(f"{name}={getattr(self, name):.4g}" for name in self.terms)
        return f"DecompositionErrors({values})"

    def ps_error(self, photometric, core, ps_flux):
        """The point-source flux's error (arrays in nanomaggies)."""
        return np.sqrt(np.square(photometric) + np.square(self.ps_core * core)
                       + np.square(self.ps_relative * ps_flux))

    def host_error(self, photometric, core, ps_flux, host_flux):
        """The host flux's error (arrays in nanomaggies)."""
        return np.sqrt(np.square(photometric) + np.square(self.host_core * core)
                       + np.square(self.host_ps * ps_flux)
                       + np.square(self.host_relative * host_flux))

    def to_dict(self):
        """The coefficients and ``meta``, for a model card."""
        return {**{name: getattr(self, name) for name in self.terms}, "meta": self.meta}

    @classmethod
    def from_dict(cls, values):
        """The inverse of `to_dict`; None gives photometric errors only."""
        return cls(**(values or {}))

    @classmethod
    def calibrate(cls, table, ps_true, host_true, meta=None):
        """Coefficients that make the errors match the scatter about the truth.

        Parameters
        ----------
        table : `~astropy.table.QTable`
            A decomposition table made with photometric errors only
            (``errors=DecompositionErrors()``) and every point source kept
            (``threshold=-numpy.inf``), on pairs of known truth, including
            pairs without a point source.
        ps_true, host_true : array
            The true fluxes in nanomaggies.

        Returns
        -------
        errors : `DecompositionErrors`
            Fitted by maximum likelihood with Student's t (5 degrees of
            freedom) for the residuals, so that the few failures do not set
            the width of the rest.
        """
        ps_flux = np.asarray(table["ps_flux"].value, float)
        host_flux = np.asarray(table["host_flux"].value, float)
        core = np.asarray(table["host_core_flux"].value, float)
        ps = _fit_error_terms(ps_flux - np.asarray(ps_true, float),
                              table["ps_flux_err"].value, [core, ps_flux])
        host = _fit_error_terms(host_flux - np.asarray(host_true, float),
                                table["host_flux_err"].value, [core, ps_flux, host_flux])
        return cls(*ps, *host, meta=dict(meta or {}, n_pairs=int(len(table))))


def _fit_error_terms(residual, photometric, scales):
    """Coefficients c of sigma**2 = photometric**2 + sum((c_j scale_j)**2), by maximum
    likelihood of Student's t with `_DEGREES_OF_FREEDOM`: a decomposition fails now and
    then by far more than its errors, and those rows must not set the width of the rest."""
    residual, photometric = np.asarray(residual, float), np.asarray(photometric, float)
    scales = np.abs(np.asarray(scales, float))
    rows = np.isfinite(residual) & np.isfinite(photometric) & np.isfinite(scales).all(axis=0)
    residual, photometric, scales = residual[rows], photometric[rows], scales[:, rows]
    nu = _DEGREES_OF_FREEDOM

    def negative_log_likelihood(log_c):
        variance = photometric ** 2 + (np.exp(2 * log_c)[:, None] * scales ** 2).sum(axis=0)
        return float(np.sum(0.5 * np.log(variance)
                            + 0.5 * (nu + 1) * np.log1p(residual ** 2 / (nu * variance))))

    start = np.log(np.full(len(scales), 0.05))
    result = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                      options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 4000})
    coefficients = np.exp(result.x)

    def excess_width(factor):
        sigma = np.sqrt(photometric ** 2 + ((factor * coefficients[:, None] * scales) ** 2)
                        .sum(axis=0))
        low, high = np.percentile(residual / sigma, [16, 84])
        return (high - low) / 2 - 1.0

    # The t likelihood sets how the terms share the error; one factor on the model's terms
    # then makes the pulls' 16-84% half-width 1, as for Gaussian errors.
    if excess_width(0.1) > 0 > excess_width(10.0):
        coefficients = coefficients * brentq(excess_width, 0.1, 10.0, xtol=1e-4)
    return [float(c) if c > 1e-6 else 0.0 for c in coefficients]


# Student's t with 5 degrees of freedom: its 16-84% half-width is 0.96 times its scale.
_DEGREES_OF_FREEDOM = 5.0


def decide_and_measure(prepared, hosts, errors, method, threshold=None, spreads=None,
                       point=None, extra=None):
    """The catalogue and host images of a decomposition, with detection and calibrated errors.

    Shared by PSFGAN and the fit, so that both are judged alike.  The
    point source is measured by PSF photometry on the input minus the host
    (unless ``point`` is given), its error calibrated by ``errors``, and it
    is *detected* when ``ps_snr`` = flux / error exceeds ``threshold``:
    for a flux fitted linearly this is the likelihood-ratio test of host +
    PSF against the host alone.  Where it is not detected, the host is the
    input, its flux the input's Kron flux (its error holds the point
    source's flux error), and ``ps_flux_upper`` = max(flux, 0) +
    ``threshold`` x error an upper limit on the point source.

    Parameters
    ----------
    prepared : list of `AGNImage`
    hosts : list of 2-D arrays
        The method's host images, nanomaggies.
    errors : `DecompositionErrors`
    method : str
    threshold : float, optional
        ``conf.detection_threshold`` by default.
    spreads : list of 2-D arrays, optional
        The method's own per-pixel spread, added to the error planes.
    point : `~galaxyml.morphology.PointSourceFit`, optional
        The point source as the method measured it (photometric errors).
    extra : list of dict, optional
        More columns per image.

    Returns
    -------
    table : `~astropy.table.QTable`
        See `decomposition_table`.
    hosts : list of 2-D arrays
        The host images (the input where nothing is detected).
    """
    threshold = conf.detection_threshold if threshold is None else float(threshold)
    planes = [item.error if spread is None else np.hypot(item.error, spread)
              for item, spread in zip(prepared, spreads or [None] * len(prepared))]
    kernels = [item.kernel for item in prepared]
    masks = [item.mask for item in prepared]
    if point is None:
        point = psf_photometry([item.data - host for item, host in zip(prepared, hosts)],
                               planes, kernels, [(item.x, item.y) for item in prepared],
                               masks=masks)
    core = psf_photometry(hosts, planes, kernels, np.c_[point.x, point.y], masks=masks,
                          fit_position=False).flux
    ps_err = errors.ps_error(point.flux_err, core, point.flux)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(point.ok, point.flux / ps_err, np.nan)
    rows, host_images = [], []
    for k, item in enumerate(prepared):
        usable = point.ok[k] and not item.flags & FLAG_MASKED
        detected = bool(usable and snr[k] > threshold)
        host = hosts[k] if detected else item.data
        galaxy = (host_photometry(host, planes[k], (point.x[k], point.y[k]), mask=item.mask,
                                  noise=item.sky_noise)
                  if detected else _input_host(item))
        ps_flux = point.flux[k] if detected else 0.0
        host_err = errors.host_error(galaxy["flux_err"], core[k], ps_flux, galaxy["flux"])
        if not detected:  # the input's flux holds the undetected point source's
            host_err = np.hypot(host_err, ps_err[k])
        row = {"ps_flux": point.flux[k], "ps_flux_err": ps_err[k], "ps_snr": snr[k],
               "ps_detected": detected,
               "ps_flux_upper": np.nan if detected else max(point.flux[k], 0.0)
               + threshold * ps_err[k],
               "host_flux": galaxy["flux"],
               "host_flux_err": host_err,
               "host_core_flux": core[k], "x": point.x[k], "y": point.y[k],
               "flags": item.flags | galaxy["flags"] | (0 if point.ok[k] else FLAG_PS_FIT)}
        if not usable:
            row.update({name: np.nan for name in ("ps_flux", "ps_flux_err", "ps_snr",
                                                  "ps_flux_upper", "host_flux",
                                                  "host_flux_err")})
            row["flags"] |= FLAG_FAILED
        rows.append({**row, **(extra[k] if extra else {})})
        host_images.append(host)
    return decomposition_table(rows, prepared, method), host_images


def _input_host(item):
    """The Kron photometry of the input's source at the point source (prepare's)."""
    if item.source is None:
        return {"flux": np.nan, "flux_err": np.nan, "flags": FLAG_NO_HOST}
    flux, flux_err = total_flux(item.source)
    return {"flux": flux.to_value(u.nanomaggy), "flux_err": flux_err.to_value(u.nanomaggy),
            "flags": 0}


def decomposition_table(rows, images, method):
    """The catalogue of a decomposition: one row per image.

    Parameters
    ----------
    rows : list of dict
        Per image: ``ps_flux``, ``ps_flux_err``, ``ps_snr``, ``ps_detected``,
        ``ps_flux_upper``, ``host_flux``, ``host_flux_err``,
        ``host_core_flux`` (nanomaggies), ``x``, ``y`` (the point source's
        fitted position), ``flags``, and any extra columns.
    images : list of `AGNImage`
        The inputs, for the sky position of the point source.
    method : str
        Recorded in ``meta['method']``.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``ps_detected`` (bool), ``ps_snr``, ``ps_flux``, ``ps_flux_err``
        (the measured flux, also where nothing is detected), ``ps_mag``,
        ``ps_mag_err`` (NaN where nothing is detected), ``ps_flux_upper``
        (the upper limit where nothing is detected, else NaN),
        ``host_flux``, ``host_flux_err``, ``host_mag``, ``host_mag_err``,
        ``host_core_flux`` (the host's PSF flux at the point source),
        ``x``, ``y``, ``sky_centroid`` (where the image has a celestial
        WCS), ``flags``, then the extra columns; ``meta['flags']``
        describes the bits.
    """
    table = QTable()
    detected = np.array([bool(row["ps_detected"]) for row in rows], bool)
    table["ps_detected"] = detected
    table["ps_snr"] = np.array([row["ps_snr"] for row in rows], float)
    for part in ("ps", "host"):
        flux = np.array([row[f"{part}_flux"] for row in rows], float)
        flux_err = np.array([row[f"{part}_flux_err"] for row in rows], float)
        table[f"{part}_flux"] = flux * u.nanomaggy
        table[f"{part}_flux_err"] = flux_err * u.nanomaggy
        shown = flux if part == "host" else np.where(detected, flux, np.nan)
        table[f"{part}_mag"] = nanomaggies_to_mag(shown)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{part}_mag_err"] = np.where(shown > 0, _MAG_PER_RELATIVE_FLUX * flux_err
                                                / shown, np.nan) * u.mag
        if part == "ps":
            table["ps_flux_upper"] = np.array([row["ps_flux_upper"] for row in rows],
                                              float) * u.nanomaggy
    table["host_core_flux"] = np.array([row["host_core_flux"] for row in rows],
                                       float) * u.nanomaggy
    table["x"] = [row["x"] for row in rows] * u.pix
    table["y"] = [row["y"] for row in rows] * u.pix
    wcs_list = [image.wcs for image in images]
    if rows and all(w is not None and w.has_celestial for w in wcs_list):
        table["sky_centroid"] = SkyCoord([w.pixel_to_world(row["x"], row["y"])
                                          for w, row in zip(wcs_list, rows)])
    with np.errstate(invalid="ignore"):
        nonpositive = ((detected & ~(table["ps_flux"].value > 0))
                       | (np.isfinite(table["host_flux"].value)
                          & ~(table["host_flux"].value > 0)))
    table["flags"] = np.array([int(row["flags"]) for row in rows], np.int32) \
        | np.where(nonpositive, FLAG_NONPOSITIVE, 0).astype(np.int32)
    standard = {"ps_flux", "ps_flux_err", "ps_snr", "ps_detected", "ps_flux_upper",
                "host_flux", "host_flux_err", "host_core_flux", "x", "y", "flags"}
    for name in rows[0] if rows else ():
        if name not in standard:
            table[name] = [row[name] for row in rows]
    table.meta["method"] = method
    table.meta["flags"] = {bit: text for bit, text in DECOMPOSITION_FLAGS.items()}
    return table
