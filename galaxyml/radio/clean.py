# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Classical baselines: the dirty image and Hogbom CLEAN."""

from dataclasses import dataclass

import warnings

import numpy as np
from astropy import units as u
from astropy.modeling import fitting, models
from astropy.stats import gaussian_fwhm_to_sigma, gaussian_sigma_to_fwhm
from scipy import ndimage
from scipy.signal import fftconvolve

from ..exceptions import InvalidParameterError

__all__ = ["dirty_image", "dirty_beam", "hogbom_clean", "CleanResult", "CleanBeam",
           "fit_clean_beam"]


def _real_data(operator, visibilities):
    visibilities = np.asarray(visibilities)
    if np.iscomplexobj(visibilities):
        return operator.real_data(visibilities)
    return visibilities


def _back_project(operator, data):
    """A^T y / sum(W), computed block by block."""
    image = np.zeros(operator.grid.n_pixels)
    start = 0
    for block in operator.row_blocks(dtype=np.float64):
        image += block.T @ data[start:start + len(block)]
        start += len(block)
    return image / operator.weight_sum


def dirty_image(operator, visibilities):
    """The dirty image: the back-projected weighted visibilities, A^T y / sum(W).

    A unit point source at the phase centre peaks at 1 (Jy per beam).

    Parameters
    ----------
    operator : `~galaxyml.radio.MeasurementOperator`
    visibilities : array
        Complex visibilities, or the real data [Re V; Im V].

    Returns
    -------
    image : `~astropy.nddata.CCDData`
        In Jy / beam, with the grid's WCS.
    """
    data = _real_data(operator, visibilities)
    image = _back_project(operator, data)
    return operator.grid.to_ccddata(image, unit=u.Jy / u.beam, meta={"image": "dirty"})


def dirty_beam(operator):
    """The dirty beam for offsets of up to the grid's size, centred at pixel (ny - 1, nx - 1).

    It is the dirty image of a unit point source at the phase centre,
    sum_k W_k cos(2 pi (u_k l + v_k m)) / sum_k W_k, on the tangent plane
    (the w-term is left out), so that shifting it places the response to
    a source anywhere on the grid, as Hogbom CLEAN needs.

    Returns
    -------
    beam : `~numpy.ndarray`, shape (2 ny - 1, 2 nx - 1)
    """
    ny, nx = operator.grid.shape
    along_x, along_y = operator.grid.pixel_tangents()
    u_per_pixel = operator._baselines @ along_x   # baseline phase turns per pixel step in x
    v_per_pixel = operator._baselines @ along_y
    dx = np.arange(-(nx - 1), nx)
    dy = np.arange(-(ny - 1), ny)
    phase_x = 2 * np.pi * np.outer(u_per_pixel, dx)
    phase_y = 2 * np.pi * np.outer(v_per_pixel, dy)
    # cos(a + b) = cos a cos b - sin a sin b, summed over baselines as matrix products.
    weights = operator.weights[:, None]
    beam = (np.cos(phase_y).T @ (weights * np.cos(phase_x))
            - np.sin(phase_y).T @ (weights * np.sin(phase_x)))
    return beam / operator.weight_sum


@dataclass(frozen=True)
class CleanBeam:
    """An elliptical Gaussian restoring beam: FWHM major and minor axes, position angle.

    The position angle is that of the major axis, east of north.
    """

    major: u.Quantity
    minor: u.Quantity
    position_angle: u.Quantity

    def header(self):
        """BMAJ, BMIN, BPA in degrees: the FITS keywords of a restored image."""
        return {"BMAJ": self.major.to_value(u.deg), "BMIN": self.minor.to_value(u.deg),
                "BPA": self.position_angle.to_value(u.deg)}

    def kernel(self, pixel_scale, shape):
        """The beam on a pixel grid of ``shape`` (odd sizes), peak 1, RA increasing leftwards."""
        pixel = u.Quantity(pixel_scale, u.deg)
        yy, xx = np.indices(shape, dtype=float)
        # astropy's theta runs anticlockwise from +x; the PA from north (+y) to east (-x).
        gaussian = models.Gaussian2D(
            1.0, (shape[1] - 1) / 2, (shape[0] - 1) / 2,
            x_stddev=(self.major / pixel).decompose().value * gaussian_fwhm_to_sigma,
            y_stddev=(self.minor / pixel).decompose().value * gaussian_fwhm_to_sigma,
            theta=(self.position_angle + 90 * u.deg).to_value(u.rad))
        return gaussian(xx, yy)

    def area_pixels(self, pixel_scale):
        """The beam's area in pixels, pi / (4 ln 2) FWHM_major FWHM_minor."""
        pixel = u.Quantity(pixel_scale, u.deg)
        return float(np.pi / (4 * np.log(2)) * (self.major / pixel) * (self.minor / pixel))


def fit_clean_beam(beam, pixel_scale):
    """Fit an elliptical Gaussian to the main lobe of a dirty beam.

    Parameters
    ----------
    beam : `~numpy.ndarray`
        The dirty beam (peak 1 at its centre), as from `dirty_beam`.
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel.

    Returns
    -------
    clean_beam : `CleanBeam`
    """
    beam = np.asarray(beam, dtype=float)
    cy, cx = (beam.shape[0] - 1) // 2, (beam.shape[1] - 1) // 2
    # The main lobe: the pixels above 35% of the peak connected to the centre, and their
    # positive neighbours, so that a lobe a pixel or two wide still constrains both axes.
    labels, _ = ndimage.label(beam > 0.35 * beam[cy, cx])
    lobe = ndimage.binary_dilation(labels == labels[cy, cx]) & (beam > 0)
    yy, xx = np.nonzero(lobe)
    values = beam[lobe]
    # Second moments of the lobe give the start; the fit refines them.
    covariance = np.cov(np.vstack([xx - cx, yy - cy]), aweights=values) + 0.05 * np.eye(2)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    start = models.Gaussian2D(1.0, cx, cy, np.sqrt(eigenvalues[1]), np.sqrt(eigenvalues[0]),
                              theta=np.arctan2(eigenvectors[1, 1], eigenvectors[0, 1]))
    start.amplitude.fixed = start.x_mean.fixed = start.y_mean.fixed = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a poorly conditioned fit still beats the moments
            fitted = fitting.TRFLSQFitter()(start, xx, yy, values)
        sigmas = np.abs([fitted.x_stddev.value, fitted.y_stddev.value])
        theta = fitted.theta.value
    except ValueError:  # too few pixels to fit
        sigmas, theta = np.array([0.0]), 0.0
    if not np.all(np.isfinite(sigmas)) or sigmas.min() <= 0:
        sigmas, theta = np.sqrt(eigenvalues[::-1]), start.theta.value
    if sigmas[1] > sigmas[0]:
        sigmas, theta = sigmas[::-1], theta + np.pi / 2
    pixel = u.Quantity(pixel_scale, u.deg)
    position_angle = (np.degrees(theta) - 90) % 180 * u.deg
    return CleanBeam(major=(sigmas[0] * gaussian_sigma_to_fwhm * pixel).to(u.arcsec),
                     minor=(sigmas[1] * gaussian_sigma_to_fwhm * pixel).to(u.arcsec),
                     position_angle=position_angle)


@dataclass
class CleanResult:
    """What `hogbom_clean` returns: images with the grid's WCS and the iteration count.

    ``beam`` is the restoring beam (a `CleanBeam`); ``beam_fwhm`` its
    geometric-mean FWHM.
    """

    model: object
    residual: object
    restored: object
    iterations: int
    beam_fwhm: u.Quantity
    beam: CleanBeam = None


def hogbom_clean(operator, visibilities, gain=0.1, max_iter=1000, threshold=None,
                 positive=True):
    """Hogbom CLEAN of the dirty image.

    Repeatedly finds the brightest pixel of the residual image, adds
    ``gain`` times it to the model and subtracts the shifted dirty beam.

    Parameters
    ----------
    operator : `~galaxyml.radio.MeasurementOperator`
    visibilities : array
        Complex visibilities or the real data.
    gain : float
        Loop gain.
    max_iter : int
        Most components.
    threshold : float, optional
        Stop when the peak residual falls below it (Jy / beam); by default
        three times the robust scatter of the residual image, measured
        again every 100 components (as WSClean's automatic threshold).
    positive : bool
        Only positive components (a sky brightness).

    Returns
    -------
    result : `CleanResult`
        ``model`` (Jy per pixel, comparable with a sky model), ``residual``
        and ``restored`` (model convolved with a Gaussian fitted to the
        beam's main lobe, plus the residual; Jy / beam).
    """
    if not 0 < gain <= 1:
        raise InvalidParameterError(f"gain must lie in (0, 1], not {gain}")
    ny, nx = operator.grid.shape
    residual = dirty_image(operator, visibilities).data.astype(float)
    beam = dirty_beam(operator)
    automatic = threshold is None
    model = np.zeros_like(residual)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        if automatic and iteration % 100 == 1:
            threshold = 3 * 1.4826 * np.median(np.abs(residual - np.median(residual)))
        flat = np.argmax(residual) if positive else np.argmax(np.abs(residual))
        py, px = np.unravel_index(flat, residual.shape)
        peak = residual[py, px]
        if abs(peak) < threshold or (positive and peak <= 0):
            iteration -= 1
            break
        model[py, px] += gain * peak
        residual -= gain * peak * beam[ny - 1 - py:2 * ny - 1 - py, nx - 1 - px:2 * nx - 1 - px]
    grid = operator.grid
    clean_beam = fit_clean_beam(beam, grid.pixel_scale)
    restored = restore(model, clean_beam, grid.pixel_scale) + residual
    beam_keys = clean_beam.header()
    return CleanResult(model=grid.to_ccddata(model, meta={"image": "clean model"}),
                       residual=grid.to_ccddata(residual, unit=u.Jy / u.beam, meta=beam_keys),
                       restored=grid.to_ccddata(restored, unit=u.Jy / u.beam, meta=beam_keys),
                       iterations=iteration,
                       beam_fwhm=np.sqrt(clean_beam.major * clean_beam.minor).to(u.deg),
                       beam=clean_beam)


def restore(model, clean_beam, pixel_scale):
    """A model (flux per pixel) convolved with the restoring beam of peak 1: Jy / beam."""
    model = np.asarray(model, dtype=float)
    size = 2 * (min(model.shape) // 2) + 1
    return fftconvolve(model, clean_beam.kernel(pixel_scale, (size, size)), mode="same")
