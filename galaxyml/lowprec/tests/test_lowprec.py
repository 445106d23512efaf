# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest

from galaxyml.exceptions import InvalidBitWidthError, InvalidParameterError, NonFiniteDataError
from galaxyml.lowprec import (QuantizedComplex, double_sample, pack_codes, quantize,
                              quantize_row_blocks, unpack_codes)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [1, 7, 8, 33])
def test_pack_round_trip_is_exact(bits, n):
    codes = np.random.default_rng(bits * n).integers(0, 2 ** bits, size=(5, n), dtype=np.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8
    assert packed.shape == (5, -(-n * bits // 8))
    assert np.array_equal(unpack_codes(packed, bits, n), codes)


def test_packing_density():
    codes = np.ones((1, 64), np.uint8)
    assert pack_codes(codes, 2).nbytes == 16  # four 2-bit codes per byte
    assert pack_codes(codes, 4).nbytes == 32  # two 4-bit codes per byte
    assert pack_codes(codes, 1).nbytes == 8
    with pytest.raises(ValueError, match="codes must lie"):
        pack_codes(np.array([4]), 2)


@pytest.mark.parametrize("bits", [3, 0, 16, 32, "2"])
def test_bad_bit_widths(bits):
    with pytest.raises(InvalidBitWidthError, match="1, 2, 4, 8"):
        quantize(np.ones(4), bits)


def test_nearest_rounding_levels_and_scales():
    x = np.array([[0.3, -0.7, 1.0, 0.05], [2.0, 0.0, -2.0, 1.0]])
    q = quantize(x, bits=2, scale="row", stochastic=False)
    levels = np.array([-1, -1 / 3, 1 / 3, 1])
    assert np.allclose(q.dequantize()[0], levels[[2, 0, 3, 2]])      # nearest levels
    assert np.allclose(q.dequantize()[1], 2 * levels[[3, 2, 0, 2]])  # ties to even codes
    assert quantize(x, 1, scale="global", stochastic=False).dequantize()[1, 0] == 2.0
    column = quantize(x, 8, scale="column", stochastic=False)
    assert np.allclose(column.dequantize(), x, atol=2 * 2.0 / 255)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_stochastic_rounding_is_unbiased(bits):
    """The mean of N quantizations converges to the input as 1/sqrt(N)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(4, 50))
    for n in (100, 1600):
        mean = np.mean([quantize(x, bits, seed=k).dequantize(np.float64) for k in range(n)],
                       axis=0)
        scale = np.abs(x).max(axis=1, keepdims=True)
        step = 2 * scale / (2 ** bits - 1)
        # Rounding variance is at most step^2 / 4 per value: 5 sigma bound on the mean.
        assert np.all(np.abs(mean - x) < 5 * (step / 2) / np.sqrt(n))
    deterministic = quantize(x, bits, stochastic=False).dequantize(np.float64)
    if bits <= 2:  # nearest rounding is biased: some value is off by far more than the bound
        assert np.max(np.abs(deterministic - x)) > 5 * np.max(step / 2) / np.sqrt(1600)


def test_complex_parts_quantized_separately():
    z = np.array([0.5 + 1j, -0.25 - 0.5j])
    q = quantize(z, 8, stochastic=False)
    assert isinstance(q, QuantizedComplex)
    assert np.allclose(q.dequantize(), z, atol=2 / 255)
    assert q.nbytes == q.real.nbytes + q.imag.nbytes


def test_double_sampling_keeps_products_unbiased():
    """E[Q1^T Q2 x] = A^T A x with independent samples, not with one sample twice."""
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, size=(6, 3))
    x = np.ones(3)
    exact = a.T @ a @ x
    single, double = [], []
    for k in range(3000):
        q1, q2 = double_sample(a, bits=1, seed=k)
        d1, d2 = q1.dequantize(np.float64), q2.dequantize(np.float64)
        double.append(d1.T @ d2 @ x)
        single.append(d1.T @ d1 @ x)
    assert np.allclose(np.mean(double, axis=0), exact, atol=0.15)
    # One sample used twice adds its rounding variance to the diagonal: a visible bias.
    assert np.max(np.abs(np.mean(single, axis=0) - exact)) > 0.5


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("scale", ["row", "column", "global"])
def test_products_on_packed_codes(bits, scale):
    rng = np.random.default_rng(bits)
    a = rng.normal(size=(37, 29))
    q = quantize(a, bits, scale=scale, seed=0)
    dense = q.dequantize(np.float64)
    x, w = rng.normal(size=29), rng.normal(size=37)
    assert np.allclose(q.matvec(x), dense @ x, rtol=1e-4, atol=1e-4)
    assert np.allclose(q.rmatvec(w), dense.T @ w, rtol=1e-4, atol=1e-4)
    assert np.allclose(q.columns([0, 5, 28]), dense[:, [0, 5, 28]], atol=1e-6)
    assert np.allclose(q.rows([36, 2]), dense[[36, 2]], atol=1e-6)
    assert np.allclose(q.rmatvec(w[[3, 30]], rows=[3, 30]), dense[[3, 30]].T @ w[[3, 30]],
                       rtol=1e-4, atol=1e-4)
    transposed = q.transpose(block_rows=10)  # several blocks, the last one short
    assert transposed.shape == (29, 37)
    assert np.allclose(transposed.dequantize(np.float64), dense.T, atol=1e-6)
    assert np.allclose(transposed.rows([0, 5, 28]), dense[:, [0, 5, 28]].T, atol=1e-6)
    assert q.nbytes == q.packed.nbytes + q.scale.nbytes
    assert q.packed.nbytes == 37 * -(-29 * bits // 8)


def test_row_blocks_match_whole_matrix():
    a = np.random.default_rng(3).normal(size=(10, 6))
    whole = quantize(a, 4, scale="row", seed=5)
    blocks = quantize_row_blocks([a[:4], a[4:]], 4, seed=5)
    assert blocks.shape == (10, 6)
    assert np.allclose(blocks.scale, whole.scale)
    assert np.allclose(blocks.dequantize(), a, atol=np.abs(a).max() * 2 / 15)


def test_row_blocks_draw_independent_samples():
    a = np.random.default_rng(4).uniform(-1, 1, size=(300, 40))
    first, second = quantize_row_blocks([a[:128], a[128:]], 2, seed=6, samples=2)
    assert np.array_equal(first.scale, second.scale)
    d1, d2 = first.dequantize(np.float64), second.dequantize(np.float64)
    assert 0.3 < np.mean(d1 != d2) < 0.9  # different roundings of the same values
    assert abs(np.mean((d1 - a) * (d2 - a))) < 0.2 * np.mean((d1 - a) ** 2)  # uncorrelated
    assert np.allclose((d1 + d2) / 2, a, atol=2 / 3)
    with pytest.raises(InvalidParameterError, match="samples"):
        quantize_row_blocks([a], 2, samples=0)


def test_non_finite_values():
    with pytest.raises(NonFiniteDataError, match="NaN"):
        quantize(np.array([1.0, np.nan]), 4)
    with pytest.raises(NonFiniteDataError):
        quantize_row_blocks([np.array([[np.inf, 1.0]])], 4)
