"""Rate-1/3 convolutional code (K=7, generators 133/171/165 octal) with a soft Viterbi decoder.

Why this code: the watermark channel gives every coded bit a noisy *real-valued* score
(a correlation summed over frames and cells), and a soft-decision Viterbi decoder uses
that reliability directly; at the same payload a K=7 code gains about 5 dB over
uncoded repetition. The encoder is terminated with K-1 zero bits, so decoding starts
and ends in state 0.
"""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
RATE_INV = len(GENERATORS)
_MEM = CONSTRAINT - 1
_STATES = 1 << _MEM


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


def _output_table() -> np.ndarray:
    """Coded symbols for every (state, input): float32 (64, 2, 3) in {-1, +1}."""
    table = np.empty((_STATES, 2, RATE_INV), dtype=np.float32)
    for state in range(_STATES):
        for u in (0, 1):
            reg = (u << _MEM) | state
            for k, g in enumerate(GENERATORS):
                table[state, u, k] = 2.0 * _parity(reg & g) - 1.0
    return table


_OUT = _output_table()  # (64, 2, 3)
_NEXT = np.arange(_STATES)
_U = _NEXT >> (_MEM - 1)  # input bit that leads into each next state
_PRED0 = (_NEXT & (_STATES // 2 - 1)) << 1  # the two predecessors of each next state
_PRED1 = _PRED0 | 1


def coded_length(n_info: int) -> int:
    """Number of coded bits for ``n_info`` info bits (tail included)."""
    return (n_info + _MEM) * RATE_INV


def encode(bits: np.ndarray) -> np.ndarray:
    """Encode info bits (uint8 (N,)) into coded bits (uint8 (3 * (N + 6),))."""
    state = 0
    out = []
    for u in list(np.asarray(bits, dtype=np.uint8).tolist()) + [0] * _MEM:
        out.extend(((_OUT[state, u] + 1) / 2).astype(np.uint8).tolist())
        state = (u << (_MEM - 1)) | (state >> 1)
    return np.array(out, dtype=np.uint8)


def viterbi_decode(scores: np.ndarray, n_info: int) -> np.ndarray:
    """Maximum-likelihood info bits from soft scores (float (3 * (N + 6),), > 0 means 1)."""
    soft = np.asarray(scores, dtype=np.float64).reshape(n_info + _MEM, RATE_INV)  # (steps, 3)
    out = _OUT.astype(np.float64)
    branch0 = out[_PRED0, _U]  # (64, 3) symbols on the edge from pred0 into each state
    branch1 = out[_PRED1, _U]
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    decisions = np.empty((soft.shape[0], _STATES), dtype=bool)
    for t, sym in enumerate(soft):
        m0 = metric[_PRED0] + branch0 @ sym
        m1 = metric[_PRED1] + branch1 @ sym
        decisions[t] = m1 > m0
        metric = np.where(decisions[t], m1, m0)
    state = 0
    bits = np.empty(soft.shape[0], dtype=np.uint8)
    for t in range(soft.shape[0] - 1, -1, -1):
        bits[t] = state >> (_MEM - 1)
        state = ((state & (_STATES // 2 - 1)) << 1) | int(decisions[t, state])
    return bits[:n_info]
