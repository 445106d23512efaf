# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Source detection on one image, as a catalogue of positions and fluxes.

Re-exported by `galaxyml.datasets`; kept at the top level because the PSF and
degradation subpackages, which `galaxyml.datasets` builds on, use it too.
"""

import numpy as np
from astropy import units as u
from astropy.convolution import Gaussian2DKernel, convolve
from astropy.nddata import StdDevUncertainty
from astropy.stats import sigma_clipped_stats, gaussian_fwhm_to_sigma
from astropy.table import QTable
from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources

__all__ = ["source_catalog", "sources_inside"]


def source_catalog(image, nsigma=3.0, npixels=10, smooth_fwhm=2.0, deblend=True, max_area=None):
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
        deblend and is no use as a source).

    Returns
    -------
    catalog : `~astropy.table.QTable`
        ``id``, ``x``, ``y`` (0-based pixel centroid), ``sky_centroid``,
        ``flux`` (segment flux, in the image's unit), ``kron_flux`` (in
        the Kron aperture, NaN where undefined), ``area`` (pix2),
        ``fwhm`` (pix, from the second moments) and ``elongation``,
        brightest first.
    """
    data = np.asarray(image.data, dtype=float)
    mask = None if image.mask is None else np.asarray(image.mask, dtype=bool)
    mask = ~np.isfinite(data) if mask is None else (mask | ~np.isfinite(data))
    if image.uncertainty is not None:
        noise = image.uncertainty.represent_as(StdDevUncertainty).array
    else:
        noise = sigma_clipped_stats(data, mask=mask)[2]
    clean = np.where(mask, 0.0, data)
    smoothed = clean
    if smooth_fwhm > 0:
        kernel = Gaussian2DKernel(smooth_fwhm * gaussian_fwhm_to_sigma)
        kernel.normalize()
        smoothed = convolve(clean, kernel, boundary="extend")
    # Smoothing lowers the noise: scale the threshold by the kernel's noise reduction.
    reduction = 1.0 if smooth_fwhm <= 0 else float(np.sqrt((kernel.array ** 2).sum()))
    threshold = nsigma * noise * reduction
    segments = detect_sources(smoothed, threshold, n_pixels=npixels, mask=mask)
    if segments is None:
        return _empty_catalog(image.unit)
    if max_area is not None:
        segments.remove_labels(segments.labels[segments.areas > max_area])
        if segments.n_labels == 0:
            return _empty_catalog(image.unit)
    if deblend:
        segments = deblend_sources(smoothed, segments, n_pixels=npixels, progress_bar=False)
    catalog = SourceCatalog(clean, segments, convolved_data=smoothed, mask=mask, wcs=image.wcs)
    table = catalog.to_table(columns=["label", "x_centroid", "y_centroid", "sky_centroid",
                                      "segment_flux", "kron_flux", "area", "fwhm",
                                      "elongation"])
    table.rename_columns(["label", "x_centroid", "y_centroid", "segment_flux"],
                         ["id", "x", "y", "flux"])
    table["flux"] = u.Quantity(table["flux"]).value * image.unit
    table["kron_flux"] = u.Quantity(table["kron_flux"]).value * image.unit
    table = QTable(table)  # a plain QTable, without photutils' deprecated column aliases
    table.sort("flux", reverse=True)
    return table


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
    return QTable(names=["id", "x", "y", "flux", "kron_flux", "area", "fwhm", "elongation"],
                  dtype=[int, float, float, float, float, float, float, float],
                  units={"flux": unit, "kron_flux": unit, "area": u.pix ** 2, "fwhm": u.pix})
