# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""In-graph packing of sign bits and vote counters into 32-bit words.

The layout is that of `galaxyml.lowprec.pack_codes` with ``bits=1`` read
as little-endian int32: sign k of a vector is bit ``k % 32`` of word
``k // 32``.  Words are int32 because tf.distribute's collectives carry
32- and 64-bit types (and float16), not uint8.
"""

import math

import tensorflow as tf

__all__ = ["WORD_BITS", "pack_bits", "unpack_bits", "count_set_bits", "counter_bits",
           "counters_per_word", "pack_counters", "unpack_counters"]

#: Bits in one exchanged word.
WORD_BITS = 32


def _pack_fields(values, field_bits):
    """Non-negative int32 ``values`` (each < 2**field_bits) packed ``32 // field_bits`` per word."""
    per_word = WORD_BITS // field_bits
    n = tf.shape(values)[0]
    padding = (-n) % per_word
    values = tf.pad(tf.cast(values, tf.int32), [[0, padding]])
    grouped = tf.reshape(values, [-1, per_word])
    shifts = tf.range(per_word, dtype=tf.int32) * field_bits
    # Fields are disjoint, so the sum is a bitwise OR (the top bit wraps into the sign).
    return tf.reduce_sum(tf.bitwise.left_shift(grouped, shifts), axis=1)


def _unpack_fields(words, field_bits, n):
    """The first ``n`` fields of ``field_bits`` bits from int32 ``words`` (..., W)."""
    per_word = WORD_BITS // field_bits
    shifts = tf.range(per_word, dtype=tf.int32) * field_bits
    mask = tf.constant(2 ** field_bits - 1, tf.int32)
    fields = tf.bitwise.bitwise_and(tf.bitwise.right_shift(words[..., None], shifts), mask)
    fields = tf.reshape(fields, tf.concat([tf.shape(words)[:-1], [-1]], axis=0))
    return fields[..., :n]


def pack_bits(bits):
    """Pack a boolean vector 32 per int32 word (bit k in word k // 32, position k % 32).

    Parameters
    ----------
    bits : `tf.Tensor` of bool, shape (n,)

    Returns
    -------
    words : `tf.Tensor` of int32, shape (ceil(n / 32),)
        Padding bits are zero.
    """
    return _pack_fields(tf.cast(bits, tf.int32), 1)


def unpack_bits(words, n):
    """The ``n`` bits (int32 0 or 1) packed by `pack_bits`; words may have leading axes."""
    return _unpack_fields(words, 1, n)


def count_set_bits(words, n):
    """How many of the rows of ``words`` have each of the first ``n`` bits set.

    Counts in place on the packed words, SWAR-style: each of the
    ``field`` lanes (bits j, j + field, j + 2 field, ...) is masked out and
    summed over the rows in ``field``-bit counters, so the work is about
    ``field * R * n / 32`` word operations plus one unpack of n counts,
    instead of unpacking all ``R * n`` bits.

    Parameters
    ----------
    words : `tf.Tensor` of int32, shape (R, W)
        One row of packed bits (`pack_bits`) per replica; R < 65536.
    n : int
        Bits per row.

    Returns
    -------
    counts : `tf.Tensor` of int32, shape (n,)
    """
    rows = words.shape[0]
    field = next(width for width in (4, 8, 16) if rows < 2 ** width)
    per_word = WORD_BITS // field
    # One bit per field; the top field starts at bit 32 - field, below any
    # sign bits that an arithmetic right shift by less than `field` brings in.
    mask = sum(1 << (field * m) for m in range(per_word))
    lanes = tf.stack([tf.reduce_sum(tf.bitwise.bitwise_and(tf.bitwise.right_shift(words, j), mask),
                                    axis=0) for j in range(field)], axis=-1)     # (W, field)
    shifts = tf.range(per_word, dtype=tf.int32) * field
    counts = tf.bitwise.bitwise_and(tf.bitwise.right_shift(lanes[..., None], shifts),
                                    2 ** field - 1)                        # (W, lane, field)
    # Bit j + field * m of a word is lane j, field m.
    return tf.reshape(tf.transpose(counts, [0, 2, 1]), [-1])[:n]


def counter_bits(replicas):
    """Bits of a vote counter that counts up to ``replicas``: ceil(log2(replicas + 1))."""
    return max(1, math.ceil(math.log2(replicas + 1)))


def counters_per_word(replicas):
    """How many counters for ``replicas`` voters one 32-bit word holds."""
    return WORD_BITS // counter_bits(replicas)


def pack_counters(bits, replicas):
    """One replica's 0/1 votes as counters wide enough to be summed over ``replicas``.

    The SUM all-reduce of these words counts the votes of every replica in
    each field without carrying into the next one.
    """
    return _pack_fields(tf.cast(bits, tf.int32), counter_bits(replicas))


def unpack_counters(words, replicas, n):
    """The ``n`` vote counts (int32) in all-reduced words from `pack_counters`."""
    return _unpack_fields(words, counter_bits(replicas), n)
