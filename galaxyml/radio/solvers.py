# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Normalised iterative hard thresholding, in float and on few-bit data."""

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from ..exceptions import (InvalidParameterError, InvalidSparsityError, NonFiniteDataError,
                          ShapeMismatchError)
from ..lowprec import QuantizedArray, double_sample, quantize, quantize_row_blocks
from .measurement import MeasurementOperator

__all__ = ["NIHTResult", "niht", "quantized_niht", "relative_error", "support_recovery"]

# Blumensath and Davies (2010): shrink factor and margin of the step-size safeguard.
_KAPPA = 2.0
_C = 0.01
# Iterations between exact recomputations of the carried A x.
_REFRESH = 50


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


class _FloatColumns:
    """The columns of a float matrix, those on the support held in one float32 block.

    Reading a column of a row-major matrix touches a cache line per row,
    and the support changes by a few columns an iteration: an update
    fetches only the columns that entered, into the slots of those that
    left, and a product with the support's columns streams the block once.
    Columns off the support that were read lately (candidates of the step
    size's safeguard, columns that left) are kept too, up to ``capacity``.
    """

    def __init__(self, columns, n_rows, n_columns, capacity):
        self.columns = columns
        self.block = np.zeros((capacity, n_rows), np.float32)
        self.index = np.full(capacity, -1)  # the column in each slot; -1: empty
        self.slot_of = np.full(n_columns, -1)
        self.recent = OrderedDict()  # column -> float32 values, oldest first

    def update(self, support):
        held = self.index >= 0
        leaving = held & ~np.isin(self.index, support)
        entering = np.setdiff1d(support, self.index[held])
        for slot in np.flatnonzero(leaving):
            self._keep(int(self.index[slot]), self.block[slot].copy())
        self.slot_of[self.index[leaving]] = -1
        self.index[leaving] = -1
        if len(entering):
            free = np.flatnonzero(self.index < 0)[:len(entering)]
            self.block[free] = self._off_support(entering)
            self.index[free] = entering
            self.slot_of[entering] = free
            for column in entering.tolist():
                self.recent.pop(column, None)

    def image(self, values, index):
        """A_I v_I for the columns I = ``index``, float64."""
        slots = self.slot_of[index]
        held = slots >= 0
        if held.all() and len(index) == np.count_nonzero(self.index >= 0):  # the support
            coefficients = np.zeros(len(self.index), np.float32)
            coefficients[slots] = values[index]
            return np.asarray(self.block.T @ coefficients, np.float64)
        out = np.zeros(self.block.shape[1])
        if held.any():
            out += self.block[slots[held]].T @ values[index[held]].astype(np.float32)
        if not held.all():
            outside = index[~held]
            out += self._off_support(outside).T @ values[outside].astype(np.float32)
        return out

    def _off_support(self, index):
        """Columns off the support, (len(index), n_rows): kept ones, the others read."""
        known = np.array([column in self.recent for column in index.tolist()], bool)
        rows = np.empty((len(index), self.block.shape[1]), np.float32)
        if known.any():
            rows[known] = np.stack([self.recent[column] for column in index[known].tolist()])
        if not known.all():
            missing = index[~known]
            rows[~known] = np.asarray(self.columns(missing), np.float32).T
            for column, values in zip(missing.tolist(), rows[~known]):
                self._keep(column, values)
        return rows

    def _keep(self, column, values):
        self.recent[column] = values
        self.recent.move_to_end(column)
        if len(self.recent) > len(self.index):
            self.recent.popitem(last=False)


class _PackedColumns:
    """The columns of a quantized matrix, read as packed rows of its transpose.

    Products stream the support's codes, ``bits`` per entry, and need no
    copy of the columns to be kept.
    """

    def __init__(self, transposed):
        self.transposed = transposed

    def update(self, support):
        """Nothing to keep: the rows are read where they lie."""

    def image(self, values, index):
        """A_I v_I for the columns I = ``index``, float64."""
        return np.asarray(self.transposed.rmatvec(values[index], rows=index), np.float64)


def _iterate(rmatvec, columns, y, sparsity, max_iter, tol, positive):
    """The NIHT iteration of Blumensath and Davies (2010), Algorithm 2.

    ``columns`` (`_FloatColumns` or `_PackedColumns`) multiplies columns of
    the matrix.  A x is carried from one iteration to the next: with the
    support unchanged, A x_new = A x + mu A_S g_S, and a support change
    corrects it with the few columns that left or entered.  An iteration so
    streams the matrix once (the gradient) and the support's columns once
    (the step size).
    """
    r = y.copy()
    g = np.asarray(rmatvec(r), np.float64)
    x = np.zeros(g.shape[0])
    support = _threshold(g, sparsity, positive)[1]
    columns.update(support)
    fitted = np.zeros_like(y)  # A x
    residuals, steps, converged = [], [], False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        g_support = g[support]
        projected = columns.image(g, support)
        denominator = float(projected @ projected)
        mu = float(g_support @ g_support) / denominator if denominator > 0 else 0.0
        mu, x_new, new_support, fitted_new = _safeguarded_step(
            columns, x, g, mu, fitted, projected, support, sparsity, positive)
        if not np.array_equal(new_support, support):
            columns.update(new_support)
        change = np.linalg.norm(x_new - x) / max(np.linalg.norm(x_new), 1e-300)
        x, support, fitted = x_new, new_support, fitted_new
        if iteration % _REFRESH == 0:  # rounding must not accumulate in the carried A x
            fitted = columns.image(x, support)
        r = y - fitted
        residuals.append(float(np.linalg.norm(r)))
        steps.append(mu)
        if change < tol:
            converged = True
            break
        g = np.asarray(rmatvec(r), np.float64)
    return x, support, iteration, converged, residuals, steps


def _safeguarded_step(columns, x, g, mu, fitted, projected, support, sparsity, positive):
    """The step x -> H_s(x + mu g), mu shrunk while a change of support exceeds omega.

    Returns mu, x_new, its support and A x_new.  The shrinking stops after
    50 tries, with the step of the last mu.
    """
    for tries in range(51):
        x_new, new_support = _threshold(x + mu * g, sparsity, positive)
        if tries == 0 and np.array_equal(new_support, support):
            return mu, x_new, new_support, fitted + mu * projected
        fitted_new = _fitted_after_change(columns, fitted, projected, x + mu * g, support,
                                          x_new, new_support, mu)
        if tries == 50:
            break
        d = x_new - x
        image = fitted_new - fitted
        omega = (1 - _C) * float(d @ d) / max(float(image @ image), 1e-300)
        if mu <= omega:
            break
        mu /= _KAPPA * (1 - _C)
    return mu, x_new, new_support, fitted_new


def _fitted_after_change(columns, fitted, projected, stepped, support, x_new, new_support,
                         mu):
    """A x_new from A x, A_S g_S and the columns that left or entered the support.

    On the columns kept, x_new is x + mu g (``stepped``), whose image is
    A x + mu A_S g_S less the columns that left; the entering ones add theirs.
    """
    leaving = np.setdiff1d(support, new_support, assume_unique=True)
    entering = np.setdiff1d(new_support, support, assume_unique=True)
    out = fitted + mu * projected
    if len(leaving):
        out -= columns.image(stepped, leaving)
    if len(entering):
        out += columns.image(x_new, entering)
    return out


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
    columns = _FloatColumns(operator.columns, *operator.shape, sparsity)
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
    time: with ``double_sampling`` its columns on the support come from an
    independent second quantization, drawn in the same pass and held packed
    beside the first, so that the gradient stays an unbiased estimate.  The
    data are quantized to ``y_bits`` bits.

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
        ``matrix_nbytes`` is the packed matrix's size, streamed at every
        iteration; a transposed copy of the same size (of the second sample,
        with double sampling) gives the support's columns.
    """
    y_bits = bits if y_bits is None else y_bits
    matrix_seed, data_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    operator = Phi if isinstance(Phi, MeasurementOperator) else _as_operator(Phi)
    y, sparsity = _check(operator.shape, y, sparsity)
    first, second_transposed = _quantized_samples(operator, bits, scale, matrix_seed,
                                                  double_sampling)
    y_quantized = quantize(y, y_bits, seed=data_seed).dequantize(np.float64)
    # Compile the kernels before timing.
    first.rmatvec(np.zeros(first.shape[0], np.float32))
    start = time.perf_counter()
    # Idle BLAS threads spin for a while after each small product and would take the
    # cores from the packed kernel's threads: keep BLAS to one thread meanwhile.
    with threadpool_limits(limits=1, user_api="blas"):
        x, support, iterations, converged, residuals, steps = _iterate(
            first.rmatvec, _PackedColumns(second_transposed), y_quantized, sparsity,
            max_iter, tol, positive)
    return _result(Phi, x, support, iterations, converged, residuals, steps,
                   time.perf_counter() - start, first.nbytes, bits)


def _quantized_samples(operator, bits, scale, seed, double_sampling):
    """The quantized matrix, and the transpose of the independent second sample (or of the
    first, without double sampling)."""
    if isinstance(operator, MeasurementOperator):
        # Quantized block by block: the float matrix is never held whole.
        samples = quantize_row_blocks(operator.row_blocks(), bits, seed=seed,
                                      samples=2 if double_sampling else 1)
    else:
        samples = (double_sample(operator.matrix, bits, scale, seed) if double_sampling
                   else quantize(operator.matrix, bits, scale=scale, seed=seed))
    first, second = samples if double_sampling else (samples, samples)
    # The residual reads the second sample by columns: rows of its transpose are contiguous.
    return first, second.transpose()


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
