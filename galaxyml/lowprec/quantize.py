# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Unbiased stochastic quantization to a few bits (ZipML), stored bit-packed."""

import numpy as np

from ..exceptions import InvalidParameterError, InvalidShapeError, NonFiniteDataError
from .kernels import packed_matvec, packed_rmatvec
from .packing import check_bits, codes_per_byte, pack_codes, unpack_codes

__all__ = ["QuantizedArray", "QuantizedComplex", "quantize", "quantize_row_blocks",
           "quantization_codes",
           "double_sample", "SCALE_MODES"]

#: How the values are normalised to [-1, 1] before rounding.
SCALE_MODES = ("global", "row", "column")


class QuantizedArray:
    """A real array of b-bit codes, bit-packed, with its scales.

    A value is ``scale * (-1 + 2 code / (2**bits - 1))``: 2**bits levels
    evenly spaced in [-scale, scale] (for 1 bit, the signs -scale and
    +scale).  The scale is one number, one per row or one per column.
    Made by `quantize`; it stores only the packed codes and the scales,
    and multiplies vectors without unpacking the matrix (`matvec`,
    `rmatvec`).

    Parameters
    ----------
    packed : `~numpy.ndarray` of uint8, shape (m, ceil(n * bits / 8))
        Codes packed along rows by `~galaxyml.lowprec.pack_codes`.
    bits : {1, 2, 4, 8}
    shape : tuple of int
        Shape of the represented array ((n,) or (m, n)).
    scale : float or `~numpy.ndarray`
        Global scale, or per row (shape (m, 1)) or per column (shape (1, n)).
    """

    def __init__(self, packed, bits, shape, scale):
        self.packed = packed
        self.bits = check_bits(bits)
        self.shape = tuple(shape)
        self.scale = np.asarray(scale, dtype=np.float32)

    @property
    def _matrix_shape(self):
        return (1, self.shape[0]) if len(self.shape) == 1 else self.shape

    @property
    def step(self):
        """Spacing of the levels, in units of the scale."""
        return 2.0 / (2 ** self.bits - 1)

    @property
    def nbytes(self):
        """Bytes held: the packed codes and the scales."""
        return self.packed.nbytes + self.scale.nbytes

    def __repr__(self):
        return (f"<QuantizedArray shape={self.shape} bits={self.bits} "
                f"nbytes={self.nbytes}>")

    def codes(self):
        """The unpacked codes, uint8, in the represented shape."""
        return unpack_codes(self.packed, self.bits, self._matrix_shape[1]).reshape(self.shape)

    def dequantize(self, dtype=np.float32):
        """The represented values."""
        codes = unpack_codes(self.packed, self.bits, self._matrix_shape[1]).astype(dtype)
        values = self.scale.astype(dtype) * (codes * dtype(self.step) - 1)
        return values.reshape(self.shape)

    def row_and_column_scales(self):
        """The scales as one factor per row and one per column (float32 vectors).

        Every value is ``row[i] * column[j] * (-1 + step * code)``; a global
        scale goes into the row factors.
        """
        m, n = self._matrix_shape
        scale = self.scale
        if scale.ndim == 2 and scale.shape == (1, n) and n > 1:
            return np.ones(m, np.float32), scale[0]
        if scale.ndim == 2 and scale.shape == (m, 1):
            return scale[:, 0], np.ones(n, np.float32)
        return np.full(m, float(scale.ravel()[0]), np.float32), np.ones(n, np.float32)

    def matvec(self, x):
        """The product of the represented (m, n) matrix with ``x`` (n,), float32."""
        rows, columns = self.row_and_column_scales()
        scaled = np.asarray(x, np.float32) * columns
        product = packed_matvec(self.packed, self.bits, scaled)
        return rows * (np.float32(self.step) * product - scaled.sum())

    def rmatvec(self, w, rows=None):
        """The product of the transposed matrix with ``w`` (m,), float32.

        With ``rows`` (indices), only those rows enter, ``w`` holding one
        value per index: sum over i in rows of w_i times row i.
        """
        row_scale, column_scale = self.row_and_column_scales()
        packed = self.packed
        if rows is not None:
            rows = np.asarray(rows, dtype=int)
            packed, row_scale = packed[rows], row_scale[rows]
        scaled = np.asarray(w, np.float32) * row_scale
        product = packed_rmatvec(packed, self.bits, scaled, self._matrix_shape[1])
        return column_scale * (np.float32(self.step) * product - scaled.sum())

    def rows(self, index):
        """The represented values of some rows, float32, shape (len(index), n)."""
        index = np.asarray(index, dtype=int)
        m, n = self._matrix_shape
        codes = unpack_codes(self.packed[index], self.bits, n)
        rows, columns = self.row_and_column_scales()
        return (rows[index, None] * columns) * (codes * np.float32(self.step) - 1)

    def transpose(self, block_rows=4096):
        """The transposed array (same codes and scales), made ``block_rows`` rows at a time.

        Reading columns of a row-packed array touches one cache line per
        row and column; the rows of its transpose are contiguous.
        """
        m, n = self._matrix_shape
        block_rows -= block_rows % codes_per_byte(self.bits)  # only the last block is padded
        packed = np.concatenate(
            [pack_codes(np.ascontiguousarray(
                unpack_codes(self.packed[start:start + block_rows], self.bits, n).T), self.bits)
             for start in range(0, m, block_rows)], axis=1)
        return QuantizedArray(packed, self.bits, (n, m), self.scale.T)

    def columns(self, index):
        """The represented values of some columns, float32, shape (m, len(index))."""
        index = np.asarray(index, dtype=int)
        per_byte = 8 // self.bits
        byte, slot = np.divmod(index, per_byte)
        codes = (self.packed[:, byte] >> (self.bits * slot).astype(np.uint8)) \
            & np.uint8(2 ** self.bits - 1)
        rows, columns = self.row_and_column_scales()
        return (rows[:, None] * columns[index]) * (codes * np.float32(self.step) - 1)


class QuantizedComplex:
    """A complex array quantized as two `QuantizedArray`: real and imaginary parts."""

    def __init__(self, real, imag):
        self.real = real
        self.imag = imag

    @property
    def shape(self):
        return self.real.shape

    @property
    def bits(self):
        return self.real.bits

    @property
    def nbytes(self):
        """Bytes held by both parts."""
        return self.real.nbytes + self.imag.nbytes

    def __repr__(self):
        return f"<QuantizedComplex shape={self.shape} bits={self.bits} nbytes={self.nbytes}>"

    def dequantize(self, dtype=np.complex64):
        """The represented complex values."""
        real_dtype = np.float64 if np.dtype(dtype) == np.complex128 else np.float32
        return (self.real.dequantize(real_dtype) + 1j * self.imag.dequantize(real_dtype)
                ).astype(dtype)


def _scale(values, mode):
    """max |value| over the whole array, each row or each column (zero becomes one)."""
    if mode == "global" or values.ndim == 1:
        scale = np.max(np.abs(values)) if values.size else 1.0
    elif mode == "row":
        scale = np.max(np.abs(values), axis=1, keepdims=True)
    else:
        scale = np.max(np.abs(values), axis=0, keepdims=True)
    return np.where(scale > 0, scale, 1.0)


def quantization_codes(normalised, bits, stochastic=True, rng=None, uniform=None):
    """The ``bits``-bit codes (uint8) of values in [-1, 1]: unbiased stochastic or nearest rounding.

    Code c stands for the level ``-1 + 2 c / (2 ** bits - 1)``.  Stochastic
    rounding rounds up with probability equal to the distance above the
    lower level, so the levels are an unbiased estimate of the values.

    Parameters
    ----------
    normalised : array-like
        Values divided by their scale (clipped to [-1, 1]).
    bits : int
        Bits per code.
    stochastic : bool
        Stochastic (default) or nearest rounding.
    rng : `numpy.random.Generator`, optional
        Source of the stochastic rounding.
    uniform : array-like, optional
        The uniform draws in [0, 1) of the stochastic rounding, one per value,
        instead of drawing them from ``rng``.
    """
    top = 2 ** bits - 1
    position = (np.clip(normalised, -1.0, 1.0) + 1.0) * (top / 2.0)
    if not stochastic:
        return np.rint(position).astype(np.uint8)
    lower = np.minimum(np.floor(position), top - 1)
    # Round up with probability equal to the distance above the lower level: unbiased.
    if uniform is None:
        uniform = (np.random.default_rng() if rng is None else rng).random(position.shape)
    up = uniform < (position - lower)
    return (lower + up).astype(np.uint8)


def quantize(values, bits, scale="row", stochastic=True, seed=None):
    """Quantize an array to ``bits`` bits per value, bit-packed.

    Values are divided by their scale (the largest absolute value over the
    array, each row or each column) and rounded to one of 2**bits levels
    evenly spaced in [-1, 1].  Stochastic rounding (the default) rounds up
    with probability equal to the fractional distance to the next level,
    so the quantized array is an unbiased estimate of the input (Zhang et
    al. 2017, ZipML); ``stochastic=False`` rounds to the nearest level.

    Parameters
    ----------
    values : array-like, shape (n,) or (m, n), real or complex
        Finite values.  Complex arrays are quantized part by part.
    bits : {1, 2, 4, 8}
        Bits per value.
    scale : {'row', 'column', 'global'}
        Normalisation; 1-D arrays always use one global scale.
    stochastic : bool
        Unbiased stochastic rounding, or deterministic nearest rounding.
    seed : int or `numpy.random.Generator`, optional
        Seed of the stochastic rounding.

    Returns
    -------
    quantized : `QuantizedArray` or `QuantizedComplex`

    Raises
    ------
    InvalidBitWidthError
        If ``bits`` is not 1, 2, 4 or 8.
    NonFiniteDataError
        If ``values`` hold NaN or inf.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxyml.lowprec import quantize
    >>> x = np.array([[0.3, -0.7, 1.0, 0.05]])
    >>> q = quantize(x, bits=2, stochastic=False)
    >>> q.dequantize(np.float64).round(3).tolist()
    [[0.333, -1.0, 1.0, 0.333]]
    >>> q.packed.nbytes
    1
    """
    bits = check_bits(bits)
    if scale not in SCALE_MODES:
        raise InvalidParameterError(f"scale must be one of {SCALE_MODES}, not {scale!r}")
    values = np.asarray(values)
    if values.ndim not in (1, 2):
        raise InvalidShapeError(f"can quantize 1-D or 2-D arrays, not shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise NonFiniteDataError(f"cannot quantize {int((~np.isfinite(values)).sum())} NaN or "
                                 "infinite values")
    rng = np.random.default_rng(seed)
    if np.iscomplexobj(values):
        real_rng, imag_rng = rng.spawn(2)
        return QuantizedComplex(quantize(values.real, bits, scale, stochastic, real_rng),
                                quantize(values.imag, bits, scale, stochastic, imag_rng))
    values = values.astype(np.float64)
    scales = _scale(values, scale)
    codes = quantization_codes(values / scales, bits, stochastic, rng)
    matrix = codes.reshape(1, -1) if values.ndim == 1 else codes
    return QuantizedArray(pack_codes(matrix, bits), bits, values.shape, scales)


def quantize_row_blocks(blocks, bits, stochastic=True, seed=None, samples=1):
    """Quantize a matrix given as blocks of rows, with one scale per row.

    Lets a matrix too large for memory in float be quantized block by
    block, never held whole: only the packed result is.

    Parameters
    ----------
    blocks : iterable of 2-D arrays
        Consecutive row blocks, all with the same number of columns.
    bits, stochastic, seed
        As for `quantize`.
    samples : int
        How many independent quantizations to draw in the one pass over
        the blocks (2 for double sampling, as `double_sample`).

    Returns
    -------
    quantized : `QuantizedArray`, or a tuple of ``samples`` of them
        A single array for ``samples=1``.
    """
    bits = check_bits(bits)
    if int(samples) != samples or samples < 1:
        raise InvalidParameterError(f"samples must be a positive integer, not {samples!r}")
    rng = np.random.default_rng(seed)
    rngs = [rng] if samples == 1 else rng.spawn(int(samples))
    packed, scales, n_columns = [[] for _ in rngs], [], None
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        if not np.all(np.isfinite(block)):
            raise NonFiniteDataError("a row block holds NaN or infinite values")
        n_columns = block.shape[1] if n_columns is None else n_columns
        scale = _scale(block, "row")
        normalised = block / scale
        for store, sample_rng in zip(packed, rngs):
            store.append(pack_codes(quantization_codes(normalised, bits, stochastic,
                                                       sample_rng), bits))
        scales.append(scale)
    if n_columns is None:
        raise InvalidParameterError("no row blocks to quantize")
    scale = np.concatenate(scales)
    arrays = tuple(QuantizedArray(np.concatenate(store), bits, (len(scale), n_columns), scale)
                   for store in packed)
    return arrays[0] if samples == 1 else arrays


def double_sample(values, bits, scale="row", seed=None):
    """Two independent stochastic quantizations of the same array.

    Where a matrix appears twice in a product (A^T A x), quantizing it
    once would bias the product by the rounding variance; two independent
    samples keep its expectation exact (ZipML's double sampling).

    Returns
    -------
    first, second : `QuantizedArray` or `QuantizedComplex`
    """
    first, second = np.random.default_rng(seed).spawn(2)
    return (quantize(values, bits, scale, True, first),
            quantize(values, bits, scale, True, second))
