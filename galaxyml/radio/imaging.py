# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Images of observed visibilities: dirty, Hogbom CLEAN, float and few-bit NIHT."""

import time
from dataclasses import dataclass

import numpy as np
from astropy import units as u

from ..exceptions import InvalidParameterError
from ..utils._memory import require_memory
from .clean import dirty_beam, dirty_image, fit_clean_beam, hogbom_clean, restore
from .measurement import CelestialGrid, MeasurementOperator
from .solvers import niht, quantized_niht

__all__ = ["ImagingResult", "image", "image_products", "default_cell"]

_METHODS = ("dirty", "clean", "niht")


@dataclass
class ImagingResult:
    """What `image_products` returns.

    Attributes
    ----------
    restored : `~astropy.nddata.CCDData`
        The model convolved with the restoring beam plus the residual
        (Jy / beam); for ``'dirty'``, the dirty image.
    model : `~astropy.nddata.CCDData` or None
        Flux per pixel (CLEAN components or the NIHT solution).
    residual : `~astropy.nddata.CCDData`
        The dirty image of the data minus the model's visibilities.
    beam : `~galaxyml.radio.CleanBeam`
        The restoring beam (a Gaussian fitted to the dirty beam's main lobe).
    method : str
    bits : int or None
        The matrix's bits (NIHT), None for float.
    iterations : int
    seconds : float
        Wall time of the imaging (the operator, the solver and the images).
    matrix_nbytes : int
        Bytes of the matrix the solver held (NIHT; 0 otherwise).
    iteration_seconds : float
        NIHT's time spent iterating, without building or quantizing the
        matrix (0 for the other methods).
    """

    restored: object
    model: object
    residual: object
    beam: object
    method: str
    bits: object
    iterations: int
    seconds: float
    matrix_nbytes: int = 0
    iteration_seconds: float = 0.0

    @property
    def seconds_per_iteration(self):
        return self.iteration_seconds / max(self.iterations, 1)


def default_cell(visibilities, oversampling=4):
    """A cell ``oversampling`` times finer than the finest scale sampled, 1 / max(uv)."""
    return visibilities.resolution() / oversampling


def image(visibilities, method="clean", bits=None, shape=128, cell=None, weighting="natural",
          **options):
    """Image observed visibilities on a grid around their phase centre.

    Parameters
    ----------
    visibilities : `~galaxyml.radio.Visibilities`
        As from `~galaxyml.radio.read_visibilities`.
    method : {'dirty', 'clean', 'niht'}
        The dirty image, Hogbom CLEAN, or NIHT (positive sky, float32 or,
        with ``bits``, on a quantized matrix and data).
    bits : {8, 4, 2, 1}, optional
        Bits of the quantized NIHT (``method='niht'`` only).
    shape : int or tuple of int
        Pixels (ny, nx).
    cell : `~astropy.units.Quantity`, optional
        Angle per pixel; by default a quarter of 1 / the longest baseline.
    weighting : {'natural', 'uniform'}
        See `~galaxyml.radio.MeasurementOperator.from_visibilities`.
    **options
        For ``'clean'``: ``gain``, ``max_iter``, ``threshold`` of
        `~galaxyml.radio.hogbom_clean`.  For ``'niht'``: ``sparsity``
        (by default 2% of the pixels), ``max_iter``, ``tol``, and for
        quantized NIHT ``y_bits`` (8 by default: the data are a small
        fraction of the bytes, and rounding them to 4 bits would add
        noise several times the thermal noise) and ``seed``.

    Returns
    -------
    restored : `~astropy.nddata.CCDData`
        In Jy / beam with a celestial WCS at the phase centre and the
        restoring beam (``BMAJ``, ``BMIN``, ``BPA``) in its header; written
        with ``.write``.  `image_products` also returns the model and the
        residual.
    """
    return image_products(visibilities, method, bits, shape, cell, weighting,
                          **options).restored


def image_products(visibilities, method="clean", bits=None, shape=128, cell=None,
                   weighting="natural", **options):
    """Like `image`, returning the restored image, the model, the residual and the beam.

    Returns
    -------
    result : `ImagingResult`
    """
    if method not in _METHODS:
        raise InvalidParameterError(f"method must be one of {_METHODS}, not {method!r}")
    if bits is not None and method != "niht":
        raise InvalidParameterError(f"bits apply to method='niht', not {method!r}")
    start = time.perf_counter()
    cell = default_cell(visibilities) if cell is None else u.Quantity(cell)
    grid = CelestialGrid(shape, cell, visibilities.phase_centre)
    operator = MeasurementOperator.from_visibilities(visibilities, grid, weighting)
    unit = visibilities.unit / u.beam
    model, iterations, nbytes, iterating = None, 0, 0, 0.0
    if method == "clean":
        cleaned = hogbom_clean(operator, visibilities.data, **options)
        model, iterations, beam = (cleaned.model.data.astype(float), cleaned.iterations,
                                   cleaned.beam)
    else:
        beam = fit_clean_beam(dirty_beam(operator), cell)  # CLEAN fits the same beam itself
    if method == "niht":
        model, iterations, nbytes, iterating = _niht_model(operator, visibilities, bits,
                                                           **options)
    if model is None:
        residual = dirty_image(operator, visibilities.data).data.astype(float)
        restored = residual
    else:
        residual = dirty_image(operator, visibilities.data
                               - operator.visibilities(model)).data.astype(float)
        restored = restore(model, beam, cell) + residual
    meta = {**beam.header(), "METHOD": method, "BITS": bits or 32, "WEIGHT": weighting,
            "NITER": iterations, "OBJECT": visibilities.source,
            "TELESCOP": visibilities.telescope,
            "FREQ": float(np.median(visibilities.frequency).to_value(u.Hz))}
    return ImagingResult(
        restored=grid.to_ccddata(restored, unit=unit, meta=meta),
        model=None if model is None else grid.to_ccddata(model, unit=visibilities.unit,
                                                         meta=meta),
        residual=grid.to_ccddata(residual, unit=unit, meta=meta),
        beam=beam, method=method, bits=bits, iterations=iterations,
        seconds=time.perf_counter() - start, matrix_nbytes=nbytes, iteration_seconds=iterating)


def _niht_model(operator, visibilities, bits, sparsity=None, **options):
    rows, columns = operator.shape
    bytes_per_entry = 4 if bits is None else 2 * bits / 8  # quantized: two samples
    require_memory(rows * columns * bytes_per_entry, f"NIHT's {rows} x {columns} matrix",
                   "use fewer pixels, fewer bits, or average the visibilities")
    sparsity = max(1, columns // 50) if sparsity is None else sparsity
    data = operator.real_data(visibilities.data)
    if bits is None:
        result = niht(operator, data, sparsity, positive=True, **options)
    else:
        options.setdefault("y_bits", 8)
        result = quantized_niht(operator, data, sparsity, bits=bits, positive=True, **options)
    return (result.x.reshape(operator.grid.shape), result.iterations, result.matrix_nbytes,
            result.seconds)
