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
    """Compile the two products for one bit width (its constants fixed at compile time).

    Code k of every byte is handled in its own pass over the row, against
    its own contiguous slice of the vector (or accumulator): each pass is a
    plain loop of load, shift, mask, convert and multiply-add that the
    compiler vectorises.  Decoding all codes of a byte in one pass, with
    interleaved accesses, does not vectorise and costs 2 to 3 times more.
    """
    per_byte = 8 // bits
    mask = np.uint32((1 << bits) - 1)

    @numba.njit(parallel=True, fastmath=True, nogil=True)
    def matvec(packed, x_split):
        m, n_bytes = packed.shape
        out = np.empty(m, np.float32)
        for i in numba.prange(m):
            acc = np.float32(0.0)
            for k in range(per_byte):
                shift = np.uint32(bits * k)
                for jb in range(n_bytes):
                    code = (np.uint32(packed[i, jb]) >> shift) & mask
                    acc += np.float32(code) * x_split[k, jb]
            out[i] = acc
        return out

    @numba.njit(parallel=True, fastmath=True, nogil=True)
    def rmatvec(packed, w, n_chunks):
        m, n_bytes = packed.shape
        partial = np.zeros((n_chunks, per_byte, n_bytes), np.float32)
        chunk = (m + n_chunks - 1) // n_chunks
        for t in numba.prange(n_chunks):
            stop = min(m, (t + 1) * chunk)
            i = t * chunk
            # Four rows per pass: the accumulator, larger than the L1 cache, is read and
            # written once for four rows of codes (1.5 times faster than row by row).
            while i + 4 <= stop:
                w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
                p0, p1, p2, p3 = packed[i], packed[i + 1], packed[i + 2], packed[i + 3]
                for k in range(per_byte):
                    shift = np.uint32(bits * k)
                    acc = partial[t, k]
                    for jb in range(n_bytes):
                        acc[jb] += (np.float32((np.uint32(p0[jb]) >> shift) & mask) * w0
                                    + np.float32((np.uint32(p1[jb]) >> shift) & mask) * w1
                                    + np.float32((np.uint32(p2[jb]) >> shift) & mask) * w2
                                    + np.float32((np.uint32(p3[jb]) >> shift) & mask) * w3)
                i += 4
            for i in range(i, stop):
                weight = w[i]
                for k in range(per_byte):
                    shift = np.uint32(bits * k)
                    for jb in range(n_bytes):
                        code = (np.uint32(packed[i, jb]) >> shift) & mask
                        partial[t, k, jb] += np.float32(code) * weight
        return partial.sum(axis=0)

    return matvec, rmatvec


def packed_matvec(packed, bits, x):
    """C x for codes C packed by `~galaxyml.lowprec.pack_codes` (float32)."""
    per_byte = 8 // bits
    x_padded = np.zeros(packed.shape[1] * per_byte, np.float32)
    x_padded[:len(x)] = x
    # x_split[k, jb] multiplies code k of byte jb: x[jb * per_byte + k]
    x_split = np.ascontiguousarray(x_padded.reshape(-1, per_byte).T)
    return _kernels(bits)[0](packed, x_split)


def packed_rmatvec(packed, bits, w, n):
    """C^T w (the first ``n`` entries) for packed codes C (float32)."""
    n_chunks = max(1, min(numba.get_num_threads(), packed.shape[0]))
    split = _kernels(bits)[1](packed, np.ascontiguousarray(w, np.float32), n_chunks)
    return split.T.ravel()[:n]  # back from [k, jb] to jb * per_byte + k
