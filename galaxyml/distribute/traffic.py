# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Communication arithmetic of the exchanges: bytes each worker sends per step.

Ring collectives: an all-gather sends each worker's share to the
``R - 1`` others; an all-reduce (reduce-scatter then all-gather) sends
``2 (R - 1) / R`` times the buffer.  With ``n`` parameters:

=============================  ==========================================
exchange                       bits sent per worker per step
=============================  ==========================================
float32 all-reduce (mean)      2 (R - 1) / R * 32 n
1-bit sign all-gather          (R - 1) * 32 ceil(n / 32)
packed vote-counter all-reduce 2 (R - 1) / R * 32 ceil(n / floor(32 / b)),
                               b = ceil(log2(R + 1))
=============================  ==========================================

The all-gather beats the float all-reduce up to R = 64 replicas; the
counter all-reduce costs about ``b`` bits per parameter at any R and wins
from R of about 2 b on.
"""

import math

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ..exceptions import DistributeError
from .signs import WORD_BITS, counter_bits, counters_per_word

__all__ = ["EXCHANGES", "exchange_bytes", "choose_exchange", "traffic_table"]

#: The ways replicas exchange gradient information.
EXCHANGES = ("float_all_reduce", "sign_all_gather", "counter_all_reduce")


def _words(n, per_word):
    return math.ceil(n / per_word)


def exchange_bytes(exchange, n_parameters, replicas, float_bits=32):
    """Bytes one worker sends per step on a ring, for one of `EXCHANGES`.

    Parameters
    ----------
    exchange : str
        One of `EXCHANGES`.
    n_parameters : int
        Parameters exchanged.
    replicas : int
        Replicas taking part.
    float_bits : int
        Width of the floats of ``"float_all_reduce"`` (16 for bfloat16).

    Returns
    -------
    bytes : `~astropy.units.Quantity`
    """
    if replicas < 1:
        raise DistributeError(f"replicas must be at least 1, not {replicas}")
    reduce_share = 2 * (replicas - 1) / replicas
    if exchange == "float_all_reduce":
        bits = reduce_share * float_bits * n_parameters
    elif exchange == "sign_all_gather":
        bits = (replicas - 1) * WORD_BITS * _words(n_parameters, WORD_BITS)
    elif exchange == "counter_all_reduce":
        bits = reduce_share * WORD_BITS * _words(n_parameters, counters_per_word(replicas))
    else:
        raise DistributeError(f"unknown exchange {exchange!r}; choose from {EXCHANGES}")
    return bits / 8 * u.byte


def choose_exchange(replicas, n_parameters):
    """The cheaper of the two majority-vote exchanges for ``replicas`` replicas."""
    gather = exchange_bytes("sign_all_gather", n_parameters, replicas)
    counter = exchange_bytes("counter_all_reduce", n_parameters, replicas)
    return "sign_all_gather" if gather <= counter else "counter_all_reduce"


def traffic_table(n_parameters, replicas=(2, 4, 8, 16, 32, 64, 128, 256)):
    """Bytes per worker per step of every exchange, and the savings, for several R.

    Returns
    -------
    table : `~astropy.table.QTable`
        Columns ``replicas``, ``counter_bits``, one per exchange (bytes),
        ``chosen`` (the majority-vote exchange `choose_exchange` picks) and
        ``saving`` (float all-reduce bytes over the chosen exchange's).
    """
    table = QTable()
    table["replicas"] = np.asarray(replicas)
    table["counter_bits"] = [counter_bits(r) for r in replicas]
    for exchange in EXCHANGES:
        table[exchange] = u.Quantity([exchange_bytes(exchange, n_parameters, r)
                                      for r in replicas])
    table["chosen"] = [choose_exchange(r, n_parameters) for r in replicas]
    chosen = u.Quantity([row[row["chosen"]] for row in table])
    table["saving"] = (table["float_all_reduce"] / chosen).decompose().value
    return table
