# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Compiled products of a bit-packed code matrix with a vector.

With codes C (m x n, b bits each, packed along rows) these compute C x and
C^T w straight from the packed bytes, decoding codes in registers: the
matrix is read at b bits per entry instead of 32, which is where the
speed of low precision comes from once the float matrix outgrows the caches.
"""

import functools

import numba
import numpy as np

__all__ = ["packed_matvec", "packed_rmatvec"]


@functools.lru_cache(maxsize=None)
def _kernels(bits):
    """Compile the two products for one bit width (its constants fixed at compile time)."""
    per_byte = 8 // bits
    mask = (1 << bits) - 1

    @numba.njit(parallel=True, fastmath=True, nogil=True)
    def matvec(packed, x_padded):
        m, n_bytes = packed.shape
        out = np.empty(m, np.float32)
        for i in numba.prange(m):
            acc = np.float32(0.0)
            for jb in range(n_bytes):
                byte = packed[i, jb]
                base = jb * per_byte
                for k in range(per_byte):
                    acc += np.float32((byte >> (bits * k)) & mask) * x_padded[base + k]
            out[i] = acc
        return out

    @numba.njit(parallel=True, fastmath=True, nogil=True)
    def rmatvec(packed, w, n_chunks):
        m, n_bytes = packed.shape
        partial = np.zeros((n_chunks, n_bytes * per_byte), np.float32)
        chunk = (m + n_chunks - 1) // n_chunks
        for t in numba.prange(n_chunks):
            acc = partial[t]
            for i in range(t * chunk, min(m, (t + 1) * chunk)):
                weight = w[i]
                for jb in range(n_bytes):
                    byte = packed[i, jb]
                    base = jb * per_byte
                    for k in range(per_byte):
                        acc[base + k] += np.float32((byte >> (bits * k)) & mask) * weight
        return partial.sum(axis=0)

    return matvec, rmatvec


def packed_matvec(packed, bits, x):
    """C x for codes C packed by `~galaxyml.lowprec.pack_codes` (float32)."""
    per_byte = 8 // bits
    x_padded = np.zeros(packed.shape[1] * per_byte, np.float32)
    x_padded[:len(x)] = x
    return _kernels(bits)[0](packed, x_padded)


def packed_rmatvec(packed, bits, w, n):
    """C^T w (the first ``n`` entries) for packed codes C (float32)."""
    n_chunks = max(1, min(numba.get_num_threads(), packed.shape[0]))
    return _kernels(bits)[1](packed, np.ascontiguousarray(w, np.float32), n_chunks)[:n]
