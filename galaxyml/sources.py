# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Source detection on one image, as a catalogue of positions and fluxes.

Re-exported by `galaxyml.datasets`; kept at the top level because the PSF and
degradation subpackages, which `galaxyml.datasets` builds on, use it too.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.convolution import Gaussian2DKernel
from astropy.nddata import StdDevUncertainty
from astropy.stats import sigma_clipped_stats, gaussian_fwhm_to_sigma
from astropy.table import QTable
from scipy.ndimage import center_of_mass
from scipy.ndimage import convolve as ndimage_convolve
from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
from photutils.utils.exceptions import NoDetectionsWarning

__all__ = ["source_catalog", "source_nearest", "total_flux", "sources_inside"]


_COLUMNS = ("id", "x", "y", "sky_centroid", "flux", "flux_err", "kron_flux", "kron_flux_err",
            "area", "fwhm", "elongation")
# photutils' names of the catalogue's columns.
_PHOTUTILS_NAMES = {"id": "label", "x": "x_centroid", "y": "y_centroid", "flux": "segment_flux",
                    "flux_err": "segment_flux_err"}


def source_catalog(image, nsigma=3.0, npixels=10, smooth_fwhm=2.0, deblend=True, max_area=None,
                   segment_map=False, columns=_COLUMNS, noise=None):
    """Detect sources in a sky-subtracted image and measure them.

    Thin wrapper around photutils' segmentation: the image is smoothed
    with a Gaussian of ``smooth_fwhm`` pixels, pixels above ``nsigma``
    times the noise that form groups of ``npixels`` are sources, and
    blended sources are split (`photutils.segmentation.deblend_sources`).

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`
        Sky-subtracted image with a WCS; its uncertainty, where present,
        is the noise (else the sigma-clipped scatter); its mask is honoured.
    nsigma : float
        Detection threshold in units of the noise.
    npixels : int
        Smallest number of connected pixels of a source.
    smooth_fwhm : float
        FWHM in pixels of the smoothing kernel (0 for none).
    deblend : bool
        Split blended sources.
    max_area : int, optional
        Drop segments larger than this many pixels before deblending (a
        globular cluster or a bright star's halo would take minutes to
        deblend and is no use as a source); their pixels are masked in the
        other sources' photometry.
    segment_map : bool
        Also return the segmentation image.
    columns : sequence of str
        The columns to measure, among those below (all by default; fewer
        are faster).
    noise : float or array, optional
        The noise the detection threshold is set from, instead of the
        uncertainty: for example the blank sky's, so that images of one
        galaxy with different error planes (with and without an AGN's
        photon noise) are segmented alike.  Flux errors still come from
        the uncertainty.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        ``id``, ``x``, ``y`` (0-based pixel centroid), ``sky_centroid``,
        ``flux`` (segment flux, in the image's unit) and ``flux_err``,
        ``kron_flux`` (in the Kron aperture, NaN where undefined) and
        ``kron_flux_err`` (errors from the noise above), ``area`` (pix2),
        ``fwhm`` (pix, from the second moments) and ``elongation``,
        brightest first.
    segments : `~numpy.ndarray`
        With ``segment_map``: the label of each pixel's source (the
        catalogue's ``id``), 0 for the background.
    """
    detection = _detect(image, nsigma, npixels, smooth_fwhm, max_area, noise)
    if detection is None:
        empty = _empty_catalog(image.unit)
        return (empty, np.zeros(image.shape, int)) if segment_map else empty
    segments = detection.segments
    if deblend:
        segments = deblend_sources(detection.smoothed, segments, n_pixels=npixels,
                                   progress_bar=False)
    table = detection.measure(segments, columns)
    table.sort("flux", reverse=True)
    return (table, segments.data) if segment_map else table


class _Detection:
    """The segmentation of an image and what measuring its sources needs."""

    def __init__(self, image, clean, smoothed, mask, error, segments):
        self.image = image
        self.clean = clean
        self.smoothed = smoothed
        self.mask = mask
        self.error = error
        self.segments = segments

    def measure(self, segments, columns=_COLUMNS, labels=None):
        """The catalogue of the sources of ``segments`` (of ``labels`` only, if given)."""
        image = self.image
        catalog = SourceCatalog(self.clean, segments, convolved_data=self.smoothed,
                                mask=self.mask, wcs=image.wcs,
                                error=np.broadcast_to(self.error, self.clean.shape))
        if labels is not None:
            catalog = catalog.select_labels(labels)
        columns = [name for name in _COLUMNS if name in columns or name in ("id", "flux")]
        # The properties one by one: photutils' to_table costs more than measuring them.
        table = QTable({name: np.atleast_1d(getattr(catalog, _PHOTUTILS_NAMES.get(name, name)))
                        for name in columns})
        for name in ("flux", "flux_err", "kron_flux", "kron_flux_err"):
            if name in columns:
                table[name] = u.Quantity(table[name]).value * image.unit
        return table


def _detect(image, nsigma, npixels, smooth_fwhm, max_area, noise):
    """The `_Detection` of ``image`` (see `source_catalog`), or None if nothing is found."""
    data = np.asarray(image.data, dtype=float)
    mask = None if image.mask is None else np.asarray(image.mask, dtype=bool)
    mask = ~np.isfinite(data) if mask is None else (mask | ~np.isfinite(data))
    if image.uncertainty is not None:
        error = image.uncertainty.represent_as(StdDevUncertainty).array
    else:
        error = sigma_clipped_stats(data, mask=mask)[2]
    noise = error if noise is None else noise
    clean = np.where(mask, 0.0, data)
    smoothed = clean
    if smooth_fwhm > 0:
        kernel = Gaussian2DKernel(smooth_fwhm * gaussian_fwhm_to_sigma)
        kernel.normalize()
        # astropy's convolve with boundary="extend", as SciPy computes it (faster).
        smoothed = ndimage_convolve(clean, kernel.array, mode="nearest")
    # Smoothing lowers the noise: scale the threshold by the kernel's noise reduction.
    reduction = 1.0 if smooth_fwhm <= 0 else float(np.sqrt((kernel.array ** 2).sum()))
    threshold = nsigma * noise * reduction
    with warnings.catch_warnings():
        # Nothing detected is an empty catalogue, not a warning.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segments = detect_sources(smoothed, threshold, n_pixels=npixels, mask=mask)
    if segments is not None and max_area is not None:
        large = segments.labels[segments.areas > max_area]
        # Their pixels are masked, not left as background: the Kron apertures of the
        # sources around a bright star's halo must not collect its light.
        mask = mask | np.isin(segments.data, large)
        segments.remove_labels(large)
    if segments is None or segments.n_labels == 0:
        return None
    return _Detection(image, clean, smoothed, mask, error, segments)


def source_nearest(image, position=None, nsigma=3.0, noise=None, segment_map=False):
    """The detected source nearest a position: for the galaxy of a stamp, or an AGN's host.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`
        Sky-subtracted image (its uncertainty and mask are used, see
        `source_catalog`).
    position : tuple of float, optional
        (x, y) in pixels; the image's centre by default.
    nsigma : float
        Detection threshold in units of the noise.
    noise : float, optional
        The noise of the threshold (see `source_catalog`).
    segment_map : bool
        Also return the segmentation image (deblended near the position).

    Returns
    -------
    source : `~astropy.table.Row` or None
        The row of `source_catalog` (``npixels=10``) with ``id``, ``x``,
        ``y`` and the fluxes of `total_flux`; None if nothing is detected.
    segments : `~numpy.ndarray`
        With ``segment_map``: each pixel's source label (0 for the background).
    """
    detection = _detect(image, nsigma, 10, 2.0, None, noise)
    if detection is None:
        return (None, np.zeros(image.shape, int)) if segment_map else None
    ny, nx = image.shape
    x, y = ((nx - 1) / 2, (ny - 1) / 2) if position is None else position
    # Only the segments that can hold the nearest source are deblended and measured (the
    # rest cost most of the time): the one under the position and the one whose
    # centroid is nearest.  Deblending splits a segment without changing the others.
    segments = detection.segments
    labels = segments.labels
    centroids = np.array(center_of_mass(detection.clean, segments.data, labels)).reshape(-1, 2)
    candidates = {int(labels[np.argmin(np.hypot(centroids[:, 1] - x, centroids[:, 0] - y))])}
    iy, ix = int(round(y)), int(round(x))
    if 0 <= iy < ny and 0 <= ix < nx and segments.data[iy, ix] > 0:
        candidates.add(int(segments.data[iy, ix]))
    segments = deblend_sources(detection.smoothed, segments, n_pixels=10, labels=sorted(candidates),
                               relabel=False, progress_bar=False)
    children = [int(label) for label in segments.labels
                if label in candidates or label not in labels]
    sources = detection.measure(segments, ("x", "y", "flux", "flux_err", "kron_flux",
                                           "kron_flux_err"), labels=children)
    source = sources[int(np.argmin(np.hypot(sources["x"] - x, sources["y"] - y)))]
    return (source, segments.data) if segment_map else source


def total_flux(source):
    """A source's total flux and its error: Kron, or the segment's where Kron is undefined.

    Parameters
    ----------
    source : `~astropy.table.Row`
        A row of `source_catalog`.

    Returns
    -------
    flux, error : `~astropy.units.Quantity`
    """
    if np.isfinite(source["kron_flux"]):
        return u.Quantity(source["kron_flux"]), u.Quantity(source["kron_flux_err"])
    return u.Quantity(source["flux"]), u.Quantity(source["flux_err"])


def sources_inside(catalog, shape, size):
    """Rows of ``catalog`` whose ``size`` x ``size`` stamps lie entirely inside ``shape``.

    Parameters
    ----------
    catalog : `~astropy.table.QTable`
        With ``x`` and ``y`` pixel positions, as from `source_catalog`.
    shape : tuple of int
        (ny, nx) of the image.
    size : float
        Stamp size in pixels.
    """
    ny, nx = shape
    half = size / 2
    inside = ((catalog["x"] > half) & (catalog["x"] < nx - half)
              & (catalog["y"] > half) & (catalog["y"] < ny - half))
    return catalog[inside]


def _empty_catalog(unit):
    return QTable(names=["id", "x", "y", "flux", "flux_err", "kron_flux", "kron_flux_err", "area",
                         "fwhm", "elongation"],
                  dtype=[int] + [float] * 9,
                  units={"flux": unit, "flux_err": unit, "kron_flux": unit,
                         "kron_flux_err": unit, "area": u.pix ** 2, "fwhm": u.pix})
