# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Classical baselines: the dirty image and Hogbom CLEAN."""

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from scipy.signal import fftconvolve

from ..exceptions import InvalidParameterError
from ..psf.measure import measure_fwhm
from ..psf.models import GaussianPSF

__all__ = ["dirty_image", "dirty_beam", "hogbom_clean", "CleanResult"]


def _real_data(operator, visibilities):
    visibilities = np.asarray(visibilities)
    if np.iscomplexobj(visibilities):
        return operator.real_data(visibilities)
    return visibilities


def _back_project(operator, data):
    """A^T y / n_baselines, computed block by block."""
    image = np.zeros(operator.grid.n_pixels)
    start = 0
    for block in operator.row_blocks(dtype=np.float64):
        image += block.T @ data[start:start + len(block)]
        start += len(block)
    return image / operator.n_baselines


def dirty_image(operator, visibilities):
    """The dirty image: the back-projected visibilities, A^T y / n_baselines.

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
    mean_k cos(2 pi (u_k l + v_k m)), on the tangent plane (the w-term is
    left out), so that shifting it places the response to a source
    anywhere on the grid, as Hogbom CLEAN needs.

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
    beam = np.cos(phase_y).T @ np.cos(phase_x) - np.sin(phase_y).T @ np.sin(phase_x)
    return beam / operator.n_baselines


@dataclass
class CleanResult:
    """What `hogbom_clean` returns: images with the grid's WCS and the iteration count."""

    model: object
    residual: object
    restored: object
    iterations: int
    beam_fwhm: u.Quantity


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
        three times the robust scatter of the dirty image.
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
    if threshold is None:
        scatter = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        threshold = 3 * scatter
    model = np.zeros_like(residual)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        flat = np.argmax(residual) if positive else np.argmax(np.abs(residual))
        py, px = np.unravel_index(flat, residual.shape)
        peak = residual[py, px]
        if abs(peak) < threshold or (positive and peak <= 0):
            iteration -= 1
            break
        model[py, px] += gain * peak
        residual -= gain * peak * beam[ny - 1 - py:2 * ny - 1 - py, nx - 1 - px:2 * nx - 1 - px]
    centre = beam[ny - 1 - 8:ny + 8, nx - 1 - 8:nx + 8] if min(ny, nx) > 8 else beam
    fwhm_pixels = measure_fwhm(np.clip(centre, 0, None)).value
    clean_beam = GaussianPSF(fwhm_pixels).render()
    clean_beam /= clean_beam.max()  # peak 1: a point source of S Jy reads S Jy / beam
    restored = fftconvolve(model, clean_beam, mode="same") + residual
    grid = operator.grid
    return CleanResult(model=grid.to_ccddata(model, meta={"image": "clean model"}),
                       residual=grid.to_ccddata(residual, unit=u.Jy / u.beam),
                       restored=grid.to_ccddata(restored, unit=u.Jy / u.beam),
                       iterations=iteration,
                       beam_fwhm=(fwhm_pixels * grid.pixel_scale).to(u.deg))
