# Licensed under a 3-clause BSD style license - see LICENSE.rst
import astropy.units as u
import numpy as np
import pytest
import tensorflow as tf

from galaxyml.distribute import (choose_exchange, count_set_bits, counter_bits, counters_per_word,
                                 exchange_bytes, pack_bits, pack_counters, traffic_table,
                                 unpack_bits, unpack_counters)
from galaxyml.lowprec import pack_codes


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000])
def test_sign_words_round_trip_in_the_lowprec_layout(n):
    bits = np.random.default_rng(n).random(n) < 0.5
    words = pack_bits(tf.constant(bits)).numpy()
    assert words.dtype == np.int32 and words.shape == (-(-n // 32),)
    assert np.array_equal(unpack_bits(tf.constant(words), n).numpy(), bits.astype(np.int32))
    # galaxyml.lowprec's 1-bit packing, read as little-endian 32-bit words, is the same layout.
    packed = pack_codes(bits.astype(np.uint8), bits=1)
    packed = np.concatenate([packed, np.zeros((-packed.size) % 4, np.uint8)])
    assert np.array_equal(packed.view("<i4"), words)


@pytest.mark.parametrize("replicas", [1, 2, 3, 15, 16, 255, 256])
def test_bits_set_across_rows_are_counted_on_the_packed_words(replicas):
    n = 100
    bits = np.random.default_rng(replicas).random((replicas, n)) < 0.5
    bits[:, [31, 32, 99]] = True        # sign bit of a word; padding beyond n is ignored
    words = tf.stack([pack_bits(tf.constant(row)) for row in bits])
    assert np.array_equal(count_set_bits(words, n).numpy(), bits.sum(axis=0))


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 7, 8, 15, 16, 100])
def test_summed_counters_count_votes_without_carries(replicas):
    n = 1000
    bits = np.random.default_rng(replicas).random((replicas, n)) < 0.5
    bits[:, 15] = True            # the top field of the first word, where the sum wraps
    words = [pack_counters(tf.constant(row), replicas) for row in bits]
    counts = unpack_counters(tf.add_n(words), replicas, n).numpy()
    assert np.array_equal(counts, bits.sum(axis=0))
    assert words[0].shape[0] == -(-n // counters_per_word(replicas))


def test_counter_widths():
    assert [counter_bits(r) for r in (1, 2, 3, 4, 7, 8, 255)] == [1, 2, 2, 3, 3, 4, 8]


def test_traffic_arithmetic_and_the_automatic_choice():
    n = 1_048_576
    assert exchange_bytes("float_all_reduce", n, 4) == 1.5 * 4 * n * u.byte
    assert exchange_bytes("sign_all_gather", n, 4) == 3 * n / 8 * u.byte
    # The 1-bit all-gather beats a float32 all-reduce up to R = 64 replicas.
    assert exchange_bytes("sign_all_gather", n, 63) < exchange_bytes("float_all_reduce", n, 63)
    assert exchange_bytes("sign_all_gather", n, 65) > exchange_bytes("float_all_reduce", n, 65)
    assert choose_exchange(4, n) == "sign_all_gather"
    assert choose_exchange(64, n) == "counter_all_reduce"
    table = traffic_table(n, replicas=(2, 4, 64, 256))
    assert list(table["chosen"]) == ["sign_all_gather", "sign_all_gather",
                                     "counter_all_reduce", "counter_all_reduce"]
    assert table["saving"][1] == pytest.approx(16.0)    # 1.5 * 32 n over 3 n bits
    assert table["saving"][3] == pytest.approx(3.0, rel=1e-5)  # 3 nine-bit counters per word
    with pytest.raises(ValueError, match="unknown exchange"):
        exchange_bytes("psum", n, 4)
