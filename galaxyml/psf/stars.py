# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Isolated, unsaturated stars of an image, and a PSF built from them."""

import warnings

import numpy as np
from astropy import units as u
from astropy.nddata import NDData
from astropy.table import QTable
from astropy.utils.exceptions import AstropyUserWarning
from photutils.psf import EPSFBuilder, extract_stars
from scipy.spatial import cKDTree

from ..sources import source_catalog
from ..exceptions import NoStarsError, UnitMismatchError
from ..io.fits import wcs_pixel_scale
from ..io.sdss import nanomaggies_to_mag
from .measure import measure_fwhm
from ..utils._kernels import check_odd
from .models import SampledPSF

__all__ = ["find_stars", "empirical_psf"]


def find_stars(image, mag_range=None, isolation=15, max_elongation=1.3, locus_tolerance=0.15,
               nsigma=5.0):
    """Isolated, unsaturated point sources of a sky-subtracted image.

    Sources are detected with `~galaxyml.sources.source_catalog`; a star
    is a source with no other detection within ``isolation`` pixels, no
    masked pixel (saturated, cosmic ray, bad column) near its centre, a
    round shape, and a Gaussian-fit FWHM on the stellar locus: within
    ``locus_tolerance`` of the median FWHM of the most compact sources.
    Galaxies are broader than the locus and drop out.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`
        Sky-subtracted image with a WCS (fluxes in nanomaggies for
        ``mag_range``).
    mag_range : tuple of float, optional
        (bright, faint) AB magnitude limits, e.g. ``(16, 18)``.
    isolation : float
        Smallest distance in pixels to any other detection, and to the edge.
    max_elongation : float
        Largest ratio of major to minor axis.
    locus_tolerance : float
        Largest fractional distance of a star's FWHM from the stellar locus.
    nsigma : float
        Detection threshold, in units of the noise.

    Returns
    -------
    stars : `~astropy.table.QTable`
        ``x``, ``y``, ``flux``, ``mag``, ``fwhm`` (Gaussian fit), brightest first.

    Raises
    ------
    NoStarsError
        If no source passes the cuts.
    """
    # No deblending: a blend is not an isolated star, and watershed on crowded fields is slow.
    catalog = source_catalog(image, nsigma=nsigma, npixels=5, deblend=False)
    keep = _isolated(catalog, image.shape, isolation)
    keep &= np.asarray(catalog["elongation"], dtype=float) <= max_elongation
    flux = u.Quantity(catalog["flux"])
    in_nanomaggies = flux.unit.is_equivalent(u.nanomaggy)
    catalog["mag"] = (nanomaggies_to_mag(flux) if in_nanomaggies
                      else np.full(len(catalog), np.nan) * u.ABmag)
    if mag_range is not None:
        if not in_nanomaggies:
            raise UnitMismatchError(f"mag_range needs fluxes in nanomaggies, the image is in "
                                    f"{flux.unit}")
        mag = catalog["mag"].value
        keep &= (mag >= min(mag_range)) & (mag <= max(mag_range))
    if image.mask is not None:
        keep &= ~_masked_near(image.mask, catalog, radius=3)
    candidates = catalog[keep]
    if len(candidates) == 0:
        raise NoStarsError(f"no isolated, unmasked, round source {_range_text(mag_range)}"
                           f"in the image of shape {image.shape}")
    positions = np.column_stack([candidates["x"], candidates["y"]])
    fwhm = measure_fwhm(image, positions)
    on_locus = _on_stellar_locus(fwhm.value, locus_tolerance)
    stars = QTable()
    for name in ("x", "y", "flux", "mag"):
        stars[name] = candidates[name][on_locus]
    stars["fwhm"] = fwhm[on_locus]
    if len(stars) == 0:
        raise NoStarsError(f"no source {_range_text(mag_range)}lies on the stellar locus")
    return stars


def empirical_psf(image, stars=None, size=25, oversampling=2, maxiters=10, **find_kwargs):
    """A PSF built from the stars of an image, for images without a PSF model.

    The stars are stacked into an effective PSF with
    `photutils.psf.EPSFBuilder` (Anderson and King 2000) and sampled back
    on the image's pixel grid.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`
        Sky-subtracted image.
    stars : `~astropy.table.QTable`, optional
        ``x``, ``y`` pixel positions of the stars; found with `find_stars`
        (given ``find_kwargs``) when omitted.
    size : int
        Odd side of the PSF in pixels.
    oversampling : int
        Oversampling of the effective PSF while it is built.
    maxiters : int
        Iterations of the builder.

    Returns
    -------
    psf : `~galaxyml.psf.SampledPSF`
        ``meta['n_stars']`` says how many stars went into it.

    Raises
    ------
    NoStarsError
        If fewer than 3 stars are usable.
    """
    check_odd(size, "PSF")
    if stars is None:
        stars = find_stars(image, **find_kwargs)
    data = np.where(np.isfinite(image.data), image.data, 0.0).astype(float)
    positions = QTable({"x": np.asarray(stars["x"], float), "y": np.asarray(stars["y"], float)})
    with warnings.catch_warnings():
        # Stars too close to the edge for the box are dropped; the count is checked below.
        warnings.simplefilter("ignore", AstropyUserWarning)
        cutouts = extract_stars(NDData(data, mask=image.mask), positions, size=size)
    if len(cutouts) < 3:
        raise NoStarsError(f"only {len(cutouts)} stars fit a {size} x {size} box inside the "
                           "image; an empirical PSF needs at least 3")
    builder = EPSFBuilder(oversampling=oversampling, maxiters=maxiters, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        result = builder(cutouts)
    epsf = result[0] if isinstance(result, tuple) else getattr(result, "epsf", result)
    centre = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size].astype(float)
    sampled = epsf.evaluate(xx, yy, flux=1.0, x_0=centre, y_0=centre)
    # Without a WCS, one "arcsec" per pixel: the PSF is then in pixel units.
    scale = wcs_pixel_scale(image.wcs, default=1 * u.arcsec / u.pix)
    return SampledPSF(sampled, pixel_scale=scale,
                      meta={"source": "empirical (EPSFBuilder)", "n_stars": len(cutouts)})


def _isolated(catalog, shape, isolation):
    xy = np.column_stack([catalog["x"], catalog["y"]])
    if len(xy) < 2:
        nearest = np.full(len(xy), np.inf)
    else:
        nearest = cKDTree(xy).query(xy, k=2)[0][:, 1]
    ny, nx = shape
    inside = ((xy[:, 0] >= isolation) & (xy[:, 0] < nx - isolation)
              & (xy[:, 1] >= isolation) & (xy[:, 1] < ny - isolation))
    return (nearest > isolation) & inside


def _masked_near(mask, catalog, radius):
    mask = np.asarray(mask, bool)
    flagged = np.zeros(len(catalog), bool)
    for k, (x, y) in enumerate(zip(np.asarray(catalog["x"]), np.asarray(catalog["y"]))):
        x0, y0 = int(round(x)), int(round(y))
        box = mask[max(y0 - radius, 0):y0 + radius + 1, max(x0 - radius, 0):x0 + radius + 1]
        flagged[k] = box.any()
    return flagged


def _on_stellar_locus(fwhm, tolerance, iterations=5):
    """Sources whose FWHM is within ``tolerance`` of the locus of the most compact ones."""
    finite = np.isfinite(fwhm)
    if not finite.any():
        return finite
    # Stars are the narrowest sources: start from the lower quartile, then refine.
    locus = np.percentile(fwhm[finite], 25)
    for _ in range(iterations):
        near = finite & (np.abs(fwhm / locus - 1) < tolerance)
        if not near.any():
            break
        locus = np.median(fwhm[near])
    return finite & (np.abs(fwhm / locus - 1) < tolerance)


def _range_text(mag_range):
    return "" if mag_range is None else f"with {min(mag_range)} < mag < {max(mag_range)} "
