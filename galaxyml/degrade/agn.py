# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Artificial AGN: a point source added to a galaxy image, with its photon noise."""

import warnings

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable

from ..sources import source_nearest, total_flux
from ..exceptions import (DefaultNoiseModelWarning, InvalidInputTypeError, InvalidParameterError,
                          NegativeFluxError, TooFewSourcesError)
from ..io.sdss import nanomaggies_to_mag
from ..psf.models import PSFModel
from ..utils._images import pixel_position
from .core import sky_noise

__all__ = ["add_point_source", "host_galaxy"]


def host_galaxy(image, nsigma=3.0):
    """The source at the centre of a galaxy stamp: its centroid and total flux.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`
        Sky-subtracted stamp centred on a galaxy.
    nsigma : float
        Detection threshold in units of the noise.

    Returns
    -------
    x, y : float
        Flux-weighted centroid (0-based pixels).
    flux : `~astropy.units.Quantity`
        Flux in the Kron aperture (the segment flux where the Kron
        aperture is undefined), in the image's unit.  Sources are detected
        above ``nsigma`` times the blank sky's noise
        (`~galaxyml.degrade.sky_noise`).

    Raises
    ------
    TooFewSourcesError
        If no source is detected in the stamp.
    """
    # The threshold from the blank sky's noise, not the error plane: the host of an image
    # with an AGN (whose photon noise raises its errors) is then segmented alike.
    data = np.asarray(image.data, float)
    bad = ~np.isfinite(data) if image.mask is None else (~np.isfinite(data) | image.mask)
    host = source_nearest(image, nsigma=nsigma, noise=sky_noise(data, bad))
    if host is None:
        raise TooFewSourcesError("no source is detected in the image to host the point source")
    return float(host["x"]), float(host["y"]), total_flux(host)[0]


def add_point_source(image, psf, flux=None, contrast=None, position=None, host_flux=None,
                     photon_noise=True, seed=None):
    """Add a PSF-shaped point source (an artificial AGN) to a galaxy image.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`
        Sky-subtracted galaxy stamp or frame, in nanomaggies (or a flux
        unit convertible to them).
    psf : `~galaxyml.psf.PSFModel`
        PSF of the image at the source's position (for SDSS,
        `~galaxyml.psf.sdss_psf` at the galaxy's frame position).
    flux : `~astropy.units.Quantity` or float, optional
        Flux of the point source; a float is in nanomaggies.
    contrast : float, optional
        Flux of the point source as a multiple of the host's total flux
        (give ``flux`` or ``contrast``).
    position : tuple of float or `~astropy.coordinates.SkyCoord`, optional
        (x, y) pixel position, with sub-pixel placement, or a sky position;
        the host galaxy's centroid (`host_galaxy`) by default.
    host_flux : `~astropy.units.Quantity`, optional
        The host's total flux for ``contrast`` (for example a catalogue
        model flux); measured with `host_galaxy` when omitted.
    photon_noise : bool
        Add the Poisson noise of the source's photons, using the gain and
        nanomaggies per count in ``image.meta`` (as read from SDSS frames).
    seed : int or `numpy.random.Generator`, optional
        Seed of the photon noise.

    Returns
    -------
    image_with_agn : `~astropy.nddata.CCDData`
        A new image; the input is not modified.  Its uncertainty includes
        the source's photon noise.
    truth : `~astropy.table.QTable`
        One row: ``x``, ``y``, ``sky_centroid``, ``ps_flux``, ``ps_mag``,
        ``host_flux``, ``host_mag``, ``contrast``, ``photon_noise``.

    Raises
    ------
    NegativeFluxError
        If ``flux`` or ``contrast`` is negative, zero or not finite.
    PositionOffImageError
        If the position lies outside the image.
    """
    if not isinstance(psf, PSFModel):
        raise InvalidInputTypeError(f"psf must be a PSF model (galaxyml.psf), not "
                                    f"{type(psf).__name__}")
    if (flux is None) == (contrast is None):
        raise InvalidParameterError("give exactly one of flux and contrast")
    unit = u.Unit(image.unit)
    to_nmgy = unit.to(u.nanomaggy)  # raises UnitConversionError for non-flux images
    x, y, measured_host = _position_and_host(image, position, host_flux is None and (
        contrast is not None or position is None))
    host = measured_host if host_flux is None else u.Quantity(host_flux, unit)
    if contrast is not None:
        _check_positive(contrast, "contrast")
        if host is None or not host.value > 0:
            raise NegativeFluxError("the host's flux is not positive, so a contrast cannot set the "
                                    "point-source flux; pass flux= instead")
        ps_flux = (contrast * host).to(unit)
    else:
        ps_flux = u.Quantity(flux, u.nanomaggy).to(unit)
        _check_positive(ps_flux.value, "flux")
    model = _point_source_image(image.shape, psf, x, y, ps_flux.value)
    data = np.asarray(image.data, dtype=float) + model
    variance = (None if image.uncertainty is None
                else image.uncertainty.represent_as(StdDevUncertainty).array.astype(float) ** 2)
    added_noise = False
    if photon_noise:
        noise_variance = _photon_variance(image.meta, model * to_nmgy)
        if noise_variance is not None:
            noise_variance /= to_nmgy ** 2
            rng = np.random.default_rng(seed)
            data += rng.normal(0.0, 1.0, size=data.shape) * np.sqrt(noise_variance)
            variance = None if variance is None else variance + noise_variance
            added_noise = True
    uncertainty = None if variance is None else StdDevUncertainty(np.sqrt(variance))
    result = CCDData(data.astype(image.data.dtype if image.data.dtype.kind == "f" else float),
                     unit=unit, wcs=image.wcs, uncertainty=uncertainty, mask=image.mask,
                     meta=dict(image.meta))
    result.meta["agn_added"] = True
    truth = _truth_table(image, x, y, ps_flux, host, added_noise)
    return result, truth


def _check_positive(value, name):
    value = float(u.Quantity(value).value)
    if not (np.isfinite(value) and value > 0):
        raise NegativeFluxError(f"the point source's {name} must be positive and finite, "
                                f"not {value}")


def _position_and_host(image, position, need_host):
    host_flux = None
    if position is None or need_host:
        hx, hy, host_flux = host_galaxy(image)
    if position is None:
        position = (hx, hy)
    x, y = pixel_position(position, image.shape, image.wcs)
    return x, y, host_flux


def _point_source_image(shape, psf, x, y, flux):
    """``flux`` times the PSF centred at sub-pixel (x, y), clipped to the image."""
    ix, iy = int(np.round(x)), int(np.round(y))
    stamp = psf.render(offset=(x - ix, y - iy)) * flux
    half = stamp.shape[0] // 2
    image = np.zeros(shape)
    y0, x0 = iy - half, ix - half
    ys = slice(max(y0, 0), min(y0 + stamp.shape[0], shape[0]))
    xs = slice(max(x0, 0), min(x0 + stamp.shape[1], shape[1]))
    image[ys, xs] = stamp[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return image


def _photon_variance(meta, model_nmgy):
    """Poisson variance (nmgy^2) of the source's photons, from the gain and calibration."""
    gain, nmgy_per_count = meta.get("gain"), meta.get("nmgy_per_count")
    if gain is None or nmgy_per_count is None:
        warnings.warn("the image's metadata lack 'gain' or 'nmgy_per_count': the point "
                      "source is added without photon noise", DefaultNoiseModelWarning)
        return None
    # counts = f / nmgy_per_count; var(counts) = counts / gain; var(f) = var(counts) nmgy^2.
    return np.clip(model_nmgy, 0, None) * nmgy_per_count / gain


def _truth_table(image, x, y, ps_flux, host, photon_noise):
    truth = QTable()
    truth["x"] = [x]
    truth["y"] = [y]
    if image.wcs is not None and image.wcs.has_celestial:
        truth["sky_centroid"] = image.wcs.pixel_to_world([x], [y])
    nan = np.nan * ps_flux.unit
    host = nan if host is None else host.to(ps_flux.unit)
    truth["ps_flux"] = [ps_flux.value] * ps_flux.unit
    truth["ps_mag"] = nanomaggies_to_mag([ps_flux.to_value(u.nanomaggy)])
    truth["host_flux"] = [host.value] * ps_flux.unit
    truth["host_mag"] = nanomaggies_to_mag([host.to_value(u.nanomaggy)])
    truth["contrast"] = [(ps_flux / host).decompose().value]
    truth["photon_noise"] = [photon_noise]
    return truth
