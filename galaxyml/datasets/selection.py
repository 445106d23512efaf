# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Selecting training galaxies in a field, and splitting them by sky region."""

import numpy as np
from astropy import units as u

from ..exceptions import InvalidParameterError, TooFewSourcesError, UnknownBandError
from ..io.cutout import read_images
from ..io.fits import wcs_pixel_scale
from ..io.sdss import nanomaggies_to_mag
from ..psf.measure import measure_fwhm
from ..sources import source_catalog, sources_inside

__all__ = ["SELECTION_FLAGS", "galaxy_catalog", "split_by_region"]


#: Bits of a galaxy's ``selection_flags``: a brighter neighbour within its blending
#: radius, too many masked pixels near its centre.
SELECTION_FLAGS = {"blended": 1, "masked": 2}


def galaxy_catalog(field_images, detection_band="r", size=128, mag_range=(14.0, 17.77),
                   psf_fwhm=None, min_size_ratio=1.15, max_neighbour_flux_ratio=0.5,
                   blend_radius=3.0, max_masked_fraction=0.1, nsigma=3.0, drop_flagged=True):
    """Detect and select isolated galaxies in a field, for training stamps.

    Sources are detected and deblended in the detection band
    (`~galaxyml.sources.source_catalog`); segments larger than a quarter
    of a stamp (a globular cluster, a bright star's halo) are dropped.  A
    galaxy is kept when it is:

    * in the magnitude range (Kron magnitude; 17.77 is the SDSS main
      galaxy sample's limit);
    * extended: the FWHM of a Gaussian fitted to it exceeds
      ``min_size_ratio`` times the PSF's (the star/galaxy separation);
    * far enough from the edges for a ``size`` x ``size`` stamp;
    * not blended: no other (deblended) source brighter than
      ``max_neighbour_flux_ratio`` times its flux within
      ``blend_radius`` FWHM of its centre;
    * clean: at most ``max_masked_fraction`` of the pixels within two
      FWHM of its centre masked (saturated, bad column, cosmic ray; SDSS
      interpolates over these, so a few are harmless).

    With ``drop_flagged=False`` the last two are flags (``selection_flags``,
    bits in `SELECTION_FLAGS`) and such galaxies are kept.

    Parameters
    ----------
    field_images : mapping
        Band -> `~astropy.nddata.CCDData` or path, as for
        `~galaxyml.io.multiband_cutout`.
    detection_band : str
        Band to detect in.
    size : int
        Side of the stamps in pixels.
    mag_range : tuple of float
        (bright, faint) AB magnitude limits.
    psf_fwhm : `~astropy.units.Quantity`, optional
        The PSF's FWHM; measured on the field's stars when omitted.
    min_size_ratio, max_neighbour_flux_ratio, blend_radius, max_masked_fraction : float
        The cuts above.  Stars of SDSS frames have size ratios within 5% of 1.
    nsigma : float
        Detection threshold in units of the noise.
    drop_flagged : bool
        Drop blended and masked galaxies (a training set's selection), or
        keep them with their ``selection_flags`` set.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        ``id``, ``x``, ``y`` (pixels of the detection band), ``sky_centroid``,
        ``ra``, ``dec``, ``flux`` (Kron), ``mag``, ``fwhm`` (Gaussian fit;
        NaN where the fit failed), ``size_ratio``, ``elongation``,
        ``neighbour_flux_ratio`` (the brightest neighbour's flux within the
        blending radius over the galaxy's, 0 without one),
        ``masked_fraction`` and ``selection_flags``, brightest first.
        ``meta['selection']`` counts the sources left after each cut and,
        with ``drop_flagged=False``, the galaxies flagged ``blended`` and
        ``masked``.
    """
    images = read_images(field_images)
    if detection_band not in images:
        raise UnknownBandError(f"detection band {detection_band!r} is not among the bands "
                               f"{tuple(images)}")
    image = images[detection_band]
    catalog = source_catalog(image, nsigma=nsigma, npixels=10, max_area=size * size // 4)
    everything = catalog.copy()
    counts = {"detected": len(catalog)}
    flux = u.Quantity(catalog["kron_flux"])
    flux = np.where(np.isfinite(flux), flux, u.Quantity(catalog["flux"]))
    catalog["flux"] = flux
    catalog["mag"] = nanomaggies_to_mag(flux)
    mag = catalog["mag"].value
    catalog = catalog[(mag >= min(mag_range)) & (mag <= max(mag_range))]
    counts["magnitude"] = len(catalog)

    psf_pixels = _psf_fwhm_pixels(image, psf_fwhm)
    # Gaussian-fit FWHMs, comparable with the PSF's: stars sit at a ratio of 1.
    positions = np.column_stack([catalog["x"], catalog["y"]])
    fitted = measure_fwhm(image, positions, pixel_scale=1 * u.arcsec / u.pix).value
    catalog["size_ratio"] = fitted / psf_pixels
    catalog["fwhm"] = fitted * u.pix
    catalog = catalog[catalog["size_ratio"] > min_size_ratio]
    counts["extended"] = len(catalog)

    catalog = sources_inside(catalog, image.shape, size)
    counts["inside"] = len(catalog)

    catalog["neighbour_flux_ratio"] = _neighbour_flux_ratio(catalog, everything, blend_radius)
    catalog["masked_fraction"] = (np.zeros(len(catalog)) if image.mask is None
                                  else _masked_fraction(image.mask, catalog))
    blended = catalog["neighbour_flux_ratio"] > max_neighbour_flux_ratio
    masked = catalog["masked_fraction"] > max_masked_fraction
    catalog["selection_flags"] = (SELECTION_FLAGS["blended"] * blended
                                  + SELECTION_FLAGS["masked"] * masked).astype(np.int32)
    if drop_flagged:
        catalog = catalog[~blended]
        counts["isolated"] = len(catalog)
        catalog = catalog[catalog["masked_fraction"] <= max_masked_fraction]
        counts["unmasked"] = len(catalog)
    else:
        counts["blended"], counts["masked"] = int(blended.sum()), int(masked.sum())

    catalog["ra"] = catalog["sky_centroid"].ra.to(u.deg)
    catalog["dec"] = catalog["sky_centroid"].dec.to(u.deg)
    catalog.keep_columns(["id", "x", "y", "sky_centroid", "ra", "dec", "flux", "mag", "fwhm",
                          "size_ratio", "elongation", "neighbour_flux_ratio", "masked_fraction",
                          "selection_flags"])
    catalog.sort("flux", reverse=True)
    catalog.meta = {"selection": counts}
    catalog.meta["detection_band"] = detection_band
    catalog.meta["psf_fwhm_pix"] = psf_pixels
    return catalog


def _psf_fwhm_pixels(image, psf_fwhm):
    from ..psf.stars import find_stars
    if psf_fwhm is None:
        stars = find_stars(image)
        fwhm = np.nanmedian(u.Quantity(stars["fwhm"]))
    else:
        fwhm = u.Quantity(psf_fwhm)
    if fwhm.unit.physical_type == "angle":
        return float((fwhm / (wcs_pixel_scale(image.wcs) * u.pix)).decompose())
    return float(fwhm.to_value(u.pix))


def _neighbour_flux_ratio(catalog, everything, blend_radius):
    """The brightest other source's flux within each galaxy's blending radius, over its own.

    A galaxy's own entry in ``everything`` is recognised by its centroid
    lying within 1 pixel; without a neighbour the ratio is 0.
    """
    x_all, y_all = np.asarray(everything["x"]), np.asarray(everything["y"])
    flux_all = u.Quantity(everything["flux"]).value
    ratios = np.zeros(len(catalog))
    for k, row in enumerate(catalog):
        fwhm = u.Quantity(row["fwhm"]).to_value(u.pix)
        radius = max(blend_radius * fwhm, 10.0) if np.isfinite(fwhm) else 10.0
        distance = np.hypot(x_all - row["x"], y_all - row["y"])
        near = (distance < radius) & (distance > 1) & np.isfinite(flux_all)
        if near.any():
            ratios[k] = np.max(flux_all[near]) / u.Quantity(row["flux"]).value
    return ratios


def _masked_fraction(mask, catalog):
    mask = np.asarray(mask, bool)
    ny, nx = mask.shape
    fractions = np.zeros(len(catalog))
    for k, row in enumerate(catalog):
        radius = max(2 * u.Quantity(row["fwhm"]).to_value(u.pix), 3.0)
        x0, y0 = float(row["x"]), float(row["y"])
        ys = slice(max(int(y0 - radius), 0), min(int(y0 + radius) + 2, ny))
        xs = slice(max(int(x0 - radius), 0), min(int(x0 + radius) + 2, nx))
        yy, xx = np.mgrid[ys, xs]
        within = np.hypot(xx - x0, yy - y0) <= radius
        fractions[k] = mask[ys, xs][within].mean() if within.any() else 0.0
    return fractions


def split_by_region(catalog, test_fraction=0.5, guard=None):
    """Split galaxies into train and test sides by right ascension.

    Galaxies with RA above the (1 - ``test_fraction``) quantile are the
    test side: with the default, the train side is RA below the median.
    Galaxies closer than ``guard`` to the dividing RA belong to neither, so
    that no stamp of one side shares sky with a stamp of the other.

    Parameters
    ----------
    catalog : `~astropy.table.QTable`
        With ``ra`` and ``dec`` (as from `galaxy_catalog`).
    test_fraction : float
        Fraction of the galaxies on the test side, in (0, 1).
    guard : `~astropy.units.Quantity`, optional
        Angular half-width of the excluded strip; zero by default (use half
        a stamp's diagonal to keep the stamps of both sides apart).

    Returns
    -------
    split : `~numpy.ndarray` of str
        ``'train'``, ``'test'`` or ``'guard'`` for each row.
    boundary : `~astropy.units.Quantity`
        The dividing right ascension.
    """
    if not 0 < test_fraction < 1:
        raise InvalidParameterError(f"test_fraction must lie in (0, 1), not {test_fraction}")
    ra = u.Quantity(catalog["ra"], u.deg)
    dec = u.Quantity(catalog["dec"], u.deg)
    if len(ra) < 2:
        raise TooFewSourcesError(f"cannot split {len(ra)} galaxies into two sides")
    # Sort on RA unwrapped around the field's centre, so fields across RA = 0 split too.
    centre = np.angle(np.mean(np.exp(1j * ra.to_value(u.rad)))) * u.rad
    offset = ((ra - centre + 180 * u.deg) % (360 * u.deg)) - 180 * u.deg
    boundary_offset = np.quantile(offset, 1 - test_fraction)
    split = np.where(offset > boundary_offset, "test", "train")
    if guard is not None:
        distance = np.abs(offset - boundary_offset) * np.cos(dec)
        split[distance < u.Quantity(guard, u.deg)] = "guard"
    boundary = (centre + boundary_offset).to(u.deg) % (360 * u.deg)
    return split, boundary
