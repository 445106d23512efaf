# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Normalised iterative hard thresholding, in float and on few-bit data."""

import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from ..exceptions import (InvalidParameterError, InvalidSparsityError, NonFiniteDataError,
                          ShapeMismatchError)
from ..lowprec import QuantizedArray, quantize, quantize_row_blocks
from ..lowprec import quantization_codes
from .measurement import MeasurementOperator

__all__ = ["NIHTResult", "niht", "quantized_niht", "relative_error", "support_recovery"]

# Blumensath and Davies (2010): shrink factor and margin of the step-size safeguard.
_KAPPA = 2.0
_C = 0.01


@dataclass
class NIHTResult:
    """What `niht` and `quantized_niht` return.

    Attributes
    ----------
    x : `~numpy.ndarray`
        The recovered vector (flat).
    support : `~numpy.ndarray`
        Indices of its nonzero entries.
    iterations : int
    converged : bool
        Whether the relative change fell below the tolerance.
    residual_norms : list of float
        ||y - A x|| after each iteration.
    step_sizes : list of float
    seconds : float
        Time spent iterating (not quantizing).
    matrix_nbytes : int
        Bytes of the matrix streamed at every iteration.
    bits : int
        32 for float32, else the bit width of the matrix.
    image : `~astropy.nddata.CCDData` or None
        ``x`` on the sky grid, when the matrix is a
        `~galaxyml.radio.MeasurementOperator`.
    """

    x: np.ndarray
    support: np.ndarray
    iterations: int
    converged: bool
    residual_norms: list = field(default_factory=list)
    step_sizes: list = field(default_factory=list)
    seconds: float = 0.0
    matrix_nbytes: int = 0
    bits: int = 32
    image: object = None

    @property
    def seconds_per_iteration(self):
        return self.seconds / max(self.iterations, 1)


class _DenseOperator:
    """A float matrix with the interface the solver needs."""

    def __init__(self, matrix):
        self.matrix = matrix
        self.shape = matrix.shape
        self.nbytes = matrix.nbytes

    def rmatvec(self, w):
        return self.matrix.T @ w.astype(self.matrix.dtype, copy=False)

    def columns(self, index):
        return self.matrix[:, index]


def _column_uniforms(seed, columns, n_rows):
    """Uniform draws in [0, 1), (n_rows, len(columns)), the same for a column every time.

    A counter-based generator: the splitmix64 hash of (seed, column, row),
    computed for a whole block at once (a generator per column costs more
    than the column itself).
    """
    with np.errstate(over="ignore"):
        key = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
               + np.asarray(columns, np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03))
        z = key + np.arange(1, n_rows + 1, dtype=np.uint64)[:, None] * np.uint64(
            0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)) * (1.0 / (1 << 53))


class _SecondSample:
    """An independent stochastic quantization of a matrix, made column by column on demand.

    Each column's rounding draws come from a counter-based generator keyed
    on the column, so a column is the same every time it is asked for:
    this is a fixed second sample of the matrix (double sampling), of
    which only the columns on the current support are ever made, from the
    exact columns.
    """

    def __init__(self, exact_columns, first, seed):
        self.exact_columns = exact_columns
        self.bits = first.bits
        self.row_scale, self.column_scale = first.row_and_column_scales()
        self.step = np.float32(first.step)
        self.seed = seed

    def columns(self, index):
        index = np.asarray(index, dtype=int)
        exact = np.asarray(self.exact_columns(index), dtype=np.float64)
        scale = self.row_scale[:, None] * self.column_scale[index]
        uniform = _column_uniforms(self.seed, index, exact.shape[0])
        codes = quantization_codes(exact / scale, self.bits, True, uniform=uniform)
        return scale * (codes * self.step - 1)


class _ColumnCache:
    """Columns from ``source`` kept between iterations: the support changes slowly.

    Holds at most ``limit`` columns (float32) in one block, dropping the
    oldest first; a request is answered by one gather from the block.
    """

    def __init__(self, source, n_rows, limit):
        self.source = source
        self.store = np.empty((limit, n_rows), np.float32)  # pages touched only when used
        self.slots = {}  # column -> row of the store, oldest first

    def __call__(self, index):
        index = np.asarray(index, dtype=int)
        missing = [j for j in dict.fromkeys(index.tolist()) if j not in self.slots]
        if missing:
            free = self._free_slots(len(missing), set(index.tolist()))
            block = np.asarray(self.source(np.array(missing)), dtype=np.float32)
            self.store[free] = block.T
            self.slots.update(zip(missing, free))
        # (len(index), n_rows) gathered in C order: its transpose is column-major.
        return self.store[[self.slots[j] for j in index.tolist()]].T

    def _free_slots(self, count, wanted):
        used = set(self.slots.values())
        free = [k for k in range(len(self.store)) if k not in used][:count]
        for column in [j for j in self.slots if j not in wanted][:count - len(free)]:
            free.append(self.slots.pop(column))
        return free


def _check(matrix_shape, y, sparsity):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != matrix_shape[0]:
        raise ShapeMismatchError(f"y has shape {y.shape} but the matrix has {matrix_shape[0]} "
                                 "rows; y must be a vector with one value per row")
    if not np.all(np.isfinite(y)):
        raise NonFiniteDataError(f"y holds {int((~np.isfinite(y)).sum())} NaN or infinite "
                                 "values")
    if np.iscomplexobj(y):
        raise InvalidParameterError("y must be real; use MeasurementOperator.real_data for "
                                    "visibilities")
    n = matrix_shape[1]
    if int(sparsity) != sparsity or not 1 <= sparsity <= n:
        raise InvalidSparsityError(f"sparsity must be an integer from 1 to the number of "
                                   f"unknowns ({n}), not {sparsity}")
    return y.astype(np.float64), int(sparsity)


def _threshold(values, sparsity, positive):
    """H_s: keep the s largest entries (in magnitude, or the largest positive ones)."""
    key = np.where(values > 0, values, 0.0) if positive else np.abs(values)
    support = np.argpartition(key, -sparsity)[-sparsity:]
    support = np.sort(support[key[support] > 0])
    out = np.zeros_like(values)
    out[support] = values[support]
    return out, support


def _iterate(rmatvec, columns, y, sparsity, max_iter, tol, positive):
    """The NIHT iteration of Blumensath and Davies (2010), Algorithm 2.

    The columns on the support are assembled once per support change and
    reused, so that an iteration streams the matrix once (the gradient).
    """
    r = y.copy()
    g = np.asarray(rmatvec(r), np.float64)
    x = np.zeros(g.shape[0])
    support = _threshold(g, sparsity, positive)[1]
    on_support = columns(support)
    residuals, steps, converged = [], [], False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        g_support = g[support]
        projected = on_support @ g_support.astype(on_support.dtype)
        denominator = float(projected @ projected)
        mu = float(g_support @ g_support) / denominator if denominator > 0 else 0.0
        x_new, new_support = _threshold(x + mu * g, sparsity, positive)
        if not np.array_equal(new_support, support):
            # Safeguard: a step that changes the support must not exceed omega.
            for _ in range(50):
                union = np.union1d(support, new_support)
                on_union = columns(union)
                d = (x_new - x)[union]
                image = on_union @ d.astype(on_union.dtype)
                omega = (1 - _C) * float(d @ d) / max(float(image @ image), 1e-300)
                if mu <= omega:
                    break
                mu /= _KAPPA * (1 - _C)
                x_new, new_support = _threshold(x + mu * g, sparsity, positive)
            on_support = (on_union[:, np.searchsorted(union, new_support)]
                          if np.all(np.isin(new_support, union)) else columns(new_support))
        change = np.linalg.norm(x_new - x) / max(np.linalg.norm(x_new), 1e-300)
        x, support = x_new, new_support
        r = y - on_support @ x[support].astype(on_support.dtype)
        residuals.append(float(np.linalg.norm(r)))
        steps.append(mu)
        if change < tol:
            converged = True
            break
        g = np.asarray(rmatvec(r), np.float64)
    return x, support, iteration, converged, residuals, steps


def _as_operator(matrix):
    if isinstance(matrix, MeasurementOperator):
        return _DenseOperator(matrix.matrix(np.float32))
    if isinstance(matrix, QuantizedArray):
        return matrix
    array = np.asarray(matrix)
    if array.ndim != 2:
        raise ShapeMismatchError(f"the matrix must be 2-D, not of shape {array.shape}")
    if np.iscomplexobj(array):
        raise InvalidParameterError("the matrix must be real; use the real form [Re Phi; Im Phi]")
    if not np.all(np.isfinite(array)):
        raise NonFiniteDataError("the matrix holds NaN or infinite values")
    return _DenseOperator(array)


def niht(Phi, y, sparsity, max_iter=300, tol=1e-6, positive=False):
    """Normalised iterative hard thresholding (Blumensath and Davies 2010).

    Solves y ~ Phi x for an x with at most ``sparsity`` nonzero entries:
    x <- H_s(x + mu Phi^T (y - Phi x)), with the step mu = ||g_G||^2 /
    ||Phi_G g_G||^2 on the current support G, shrunk when a step that
    changes the support would not decrease the residual.

    Parameters
    ----------
    Phi : array (m, n), `~galaxyml.radio.MeasurementOperator` or `~galaxyml.lowprec.QuantizedArray`
        The real measurement matrix (float32 or float64 is kept as given).
    y : array (m,)
        Real data.
    sparsity : int
        Largest number of nonzero entries, 1 to n.
    max_iter : int
        Iteration cap.
    tol : float
        Stop when ||x_new - x|| / ||x_new|| falls below it.
    positive : bool
        Keep only positive entries (a sky brightness).

    Returns
    -------
    result : `NIHTResult`

    Raises
    ------
    ShapeMismatchError, NonFiniteDataError, InvalidSparsityError
        For mismatched shapes, NaN or inf, or a sparsity out of range.
    """
    operator = _as_operator(Phi)
    y, sparsity = _check(operator.shape, y, sparsity)
    start = time.perf_counter()
    columns = _ColumnCache(operator.columns, operator.shape[0], 8 * sparsity)
    x, support, iterations, converged, residuals, steps = _iterate(
        operator.rmatvec, columns, y, sparsity, max_iter, tol, positive)
    bits = operator.bits if isinstance(operator, QuantizedArray) else 8 * operator.matrix.itemsize
    return _result(Phi, x, support, iterations, converged, residuals, steps,
                   time.perf_counter() - start, operator.nbytes, bits)


def quantized_niht(Phi, y, sparsity, bits=4, y_bits=None, scale="row", double_sampling=True,
                   seed=0, max_iter=300, tol=1e-6, positive=False):
    """NIHT on a measurement matrix and data quantized to a few bits (Gurel et al.).

    The matrix is quantized once with unbiased stochastic rounding and
    stored bit-packed; every iteration streams the packed matrix for the
    gradient Phi^T r.  The residual y - Phi x needs the matrix a second
    time: with ``double_sampling`` it uses an independent quantization
    (made column by column, only on the support, from the exact columns),
    so that the gradient stays an unbiased estimate.  The data are
    quantized to ``y_bits`` bits.

    Parameters
    ----------
    Phi : array (m, n) or `~galaxyml.radio.MeasurementOperator`
        The real measurement matrix.  An operator is quantized block by
        block, so its float matrix is never held whole.
    y : array (m,)
        Real data.
    sparsity : int
        Largest number of nonzero entries.
    bits : {1, 2, 4, 8}
        Bits per matrix entry.
    y_bits : {1, 2, 4, 8}, optional
        Bits per datum; ``bits`` by default.
    scale : {'row', 'column', 'global'}
        Normalisation of the matrix before rounding (an operator always
        uses rows).
    double_sampling : bool
        Use an independent second quantization for the residual.
    seed : int
        Seed of the stochastic rounding.
    max_iter, tol, positive
        As for `niht`.

    Returns
    -------
    result : `NIHTResult`
        ``matrix_nbytes`` is the packed matrix's size.
    """
    y_bits = bits if y_bits is None else y_bits
    seeds = np.random.SeedSequence(seed).generate_state(3)
    if isinstance(Phi, MeasurementOperator):
        first = quantize_row_blocks(Phi.row_blocks(), bits, seed=int(seeds[0]))
        exact_columns = Phi.columns
    else:
        dense = _as_operator(Phi)
        first = quantize(dense.matrix, bits, scale=scale, seed=int(seeds[0]))
        exact_columns = dense.columns
    y, sparsity = _check(first.shape, y, sparsity)
    y_quantized = quantize(y, y_bits, seed=int(seeds[1])).dequantize(np.float64)
    source = (_SecondSample(exact_columns, first, int(seeds[2])).columns if double_sampling
              else first.columns)
    columns = _ColumnCache(source, first.shape[0], 8 * sparsity)
    first.rmatvec(np.zeros(first.shape[0], np.float32))  # compile the kernel before timing
    start = time.perf_counter()
    # Idle BLAS threads spin for a while after each small product and would take the
    # cores from the packed kernel's threads: keep BLAS to one thread meanwhile.
    with threadpool_limits(limits=1, user_api="blas"):
        x, support, iterations, converged, residuals, steps = _iterate(
            first.rmatvec, columns, y_quantized, sparsity, max_iter, tol, positive)
    return _result(Phi, x, support, iterations, converged, residuals, steps,
                   time.perf_counter() - start, first.nbytes, bits)


def _result(Phi, x, support, iterations, converged, residuals, steps, seconds, nbytes, bits):
    image = None
    if isinstance(Phi, MeasurementOperator):
        image = Phi.grid.to_ccddata(x, meta={"solver": "niht", "bits": bits,
                                             "niter": iterations})
    return NIHTResult(x=x, support=support, iterations=iterations, converged=converged,
                      residual_norms=residuals, step_sizes=steps, seconds=seconds,
                      matrix_nbytes=int(nbytes), bits=int(bits), image=image)


def relative_error(estimate, truth):
    """||estimate - truth|| / ||truth||."""
    estimate = np.asarray(estimate, dtype=float).ravel()
    truth = np.asarray(truth, dtype=float).ravel()
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def support_recovery(estimate, catalog, shape, radius=1, fraction=0.05):
    """Fraction of catalogued sources found in a recovered sky.

    A source counts as found when the estimate holds a pixel above
    ``fraction`` of the source's flux within ``radius`` pixels of it.

    Parameters
    ----------
    estimate : array
        Recovered sky, flat or (ny, nx).
    catalog : `~astropy.table.QTable`
        ``x``, ``y``, ``flux`` (as from `~galaxyml.radio.simulate_sky`).
    shape : tuple of int
        (ny, nx).
    """
    image = np.asarray(estimate, dtype=float).reshape(shape)
    found = 0
    for row in catalog:
        x, y = int(row["x"]), int(row["y"])
        box = image[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
        flux = float(np.asarray(getattr(row["flux"], "value", row["flux"])))
        found += bool(np.any(box > fraction * flux))
    return found / max(len(catalog), 1)
