# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Dense bit packing of b-bit codes into bytes, and back."""

import numpy as np

from ..exceptions import InvalidBitWidthError, InvalidParameterError, ShapeMismatchError

__all__ = ["BIT_WIDTHS", "check_bits", "codes_per_byte", "pack_codes", "unpack_codes"]

#: Bit widths galaxyml packs: codes that tile a byte exactly.
BIT_WIDTHS = (1, 2, 4, 8)


def check_bits(bits):
    """``bits`` as an int, or `~galaxyml.exceptions.InvalidBitWidthError`."""
    if bits not in BIT_WIDTHS:
        raise InvalidBitWidthError(f"bit width must be one of {BIT_WIDTHS}, not {bits!r}")
    return int(bits)


def codes_per_byte(bits):
    """How many ``bits``-bit codes one byte holds."""
    return 8 // check_bits(bits)


def pack_codes(codes, bits):
    """Pack ``bits``-bit codes densely along the last axis.

    Code k of a byte occupies bits ``bits * k`` to ``bits * (k + 1) - 1``
    (little-endian within the byte); rows are padded with zero codes to a
    whole number of bytes.

    Parameters
    ----------
    codes : array of unsigned int, shape (..., n)
        Values in [0, 2**bits).
    bits : {1, 2, 4, 8}

    Returns
    -------
    packed : `~numpy.ndarray` of uint8, shape (..., ceil(n * bits / 8))

    Examples
    --------
    >>> import numpy as np
    >>> from galaxyml.lowprec import pack_codes, unpack_codes
    >>> packed = pack_codes(np.array([3, 0, 1, 2, 1], np.uint8), bits=2)
    >>> packed.tolist()
    [147, 1]
    >>> unpack_codes(packed, bits=2, n=5).tolist()
    [3, 0, 1, 2, 1]
    """
    per_byte = codes_per_byte(bits)
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= 2 ** bits):
        raise InvalidParameterError(f"codes must lie in [0, {2 ** bits}) for {bits} bits")
    codes = codes.astype(np.uint8)
    if per_byte == 1:
        return codes.copy()
    n = codes.shape[-1]
    padding = (-n) % per_byte
    if padding:
        codes = np.concatenate([codes, np.zeros(codes.shape[:-1] + (padding,), np.uint8)],
                               axis=-1)
    grouped = codes.reshape(codes.shape[:-1] + (-1, per_byte))
    shifts = (bits * np.arange(per_byte)).astype(np.uint8)
    return np.bitwise_or.reduce(grouped << shifts, axis=-1).astype(np.uint8)


def unpack_codes(packed, bits, n):
    """The ``n`` codes per row packed by `pack_codes` (exact inverse)."""
    per_byte = codes_per_byte(bits)
    packed = np.asarray(packed, dtype=np.uint8)
    if per_byte == 1:
        return packed[..., :n].copy()
    if packed.shape[-1] * per_byte < n:
        raise ShapeMismatchError(f"{packed.shape[-1]} bytes hold {packed.shape[-1] * per_byte} "
                                 f"codes of {bits} bits, not {n}")
    shifts = (bits * np.arange(per_byte)).astype(np.uint8)
    codes = (packed[..., None] >> shifts) & np.uint8(2 ** bits - 1)
    return codes.reshape(packed.shape[:-1] + (-1,))[..., :n]
