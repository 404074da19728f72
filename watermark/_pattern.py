"""Keyed layouts: which cell of the frame carries which coded bit, and the sync pilot.

The mark lives on a grid of square cells whose size is a fixed fraction of the frame
*height* (``height / rows``). Measuring cells in frame heights rather than pixels is what
makes resizes harmless: a copy scaled to 50 % or 200 % has the same grid in its own
coordinates. A crop keeps the cell size relative to the *original* height, so the detector
searches a scale (how much of the original height it sees) and an offset.

Every cell is a pilot cell (a keyed +-1 chip, the same for every payload: it is what the
detector locks onto) or a data cell (a keyed +-1 spreading chip times one coded bit).
Within every block of ``rows x rows`` cells, the data cells visit each coded bit almost
equally often, so any crop that keeps a good part of the frame still sees every bit.

The pattern is frame-sized and non-repeating: the probes showed that at 256 px only cells
of 8 px or more survive H.264 at CRF 28, and at that size a periodic tile that repeats
several times per frame no longer fits. Two layouts exist: 64 rows for frames whose short
side is under 600 px (4 px cells at 256 px; 48 and 32 rows read fewer clips after H.264 CRF 28)
and 96 rows for larger frames (more chips per bit).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from watermark.ecc import coded_length
from watermark.payload import INFO_BITS

_DOMAIN = b"avatar-studio/watermark/v1/"
N_CODED = coded_length(INFO_BITS)
MAX_ASPECT = 4  # widest frame (width / height) a layout covers
PILOT_FRACTION = 0.25
LAYOUT_ROWS = (64, 96)
LARGE_FRAME_SHORT_SIDE = 600


def derive_seed(key: bytes, label: str) -> int:
    """A 256-bit integer seed: HMAC-SHA256(key, domain || label)."""
    digest = hmac.new(key, _DOMAIN + label.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest, "big")


def keyed_mask(key: bytes) -> NDArray[Any]:
    """The 72-bit whitening mask applied to payload || CRC (uint8 (72,))."""
    rng = np.random.default_rng(derive_seed(key, "mask"))
    return rng.integers(0, 2, INFO_BITS, dtype=np.uint8)


def rows_for_frame(height: int, width: int) -> int:
    """The layout (number of cell rows) the embedder uses for a frame of this size."""
    return LAYOUT_ROWS[1] if min(height, width) >= LARGE_FRAME_SHORT_SIDE else LAYOUT_ROWS[0]


@dataclass(frozen=True)
class Layout:
    """The keyed cell grid of one layout, covering frames up to ``MAX_ASPECT`` wide."""

    rows: int
    pilot: NDArray[Any]  # (rows, cols) float32: +-1 on pilot cells, 0 on data cells
    chips: NDArray[Any]  # (rows, cols) float32: +-1 spreading chip on data cells, 0 on pilot cells
    bit_index: NDArray[Any]  # (rows, cols) int32: coded bit of each data cell, -1 on pilot cells

    @property
    def cols(self) -> int:
        return int(self.pilot.shape[1])

    def cell_signs(self, coded: NDArray[Any]) -> NDArray[Any]:
        """+-1 chip values of every cell for coded bits ``coded`` (uint8 (N_CODED,))."""
        bit_sign = 2.0 * coded.astype(np.float32) - 1.0
        data = self.chips * bit_sign[np.maximum(self.bit_index, 0)]
        return np.where(self.bit_index >= 0, data, self.pilot).astype(np.float32)  # (rows, cols)


@lru_cache(maxsize=8)
def make_layout(key: bytes, rows: int) -> Layout:
    """Build the keyed layout with ``rows`` cell rows (cached per key and size)."""
    rng = np.random.default_rng(derive_seed(key, f"layout/{rows}"))
    cols = rows * MAX_ASPECT
    block = rows * rows
    n_pilot = int(round(block * PILOT_FRACTION))
    bit_index = np.empty((rows, cols), dtype=np.int32)
    for b in range(MAX_ASPECT):
        n_data = block - n_pilot
        bits = np.resize(rng.permutation(N_CODED), n_data)  # each bit floor/ceil times
        cells = np.concatenate([bits, np.full(n_pilot, -1)])
        bit_index[:, b * rows : (b + 1) * rows] = rng.permutation(cells).reshape(rows, rows)
    signs = rng.integers(0, 2, (rows, cols)).astype(np.float32) * 2 - 1
    pilot = np.where(bit_index < 0, signs, 0).astype(np.float32)
    chips = np.where(bit_index >= 0, signs, 0).astype(np.float32)
    return Layout(rows=rows, pilot=pilot, chips=chips, bit_index=bit_index)


def render_cells(cells: NDArray[Any], height: int, width: int) -> NDArray[Any]:
    """Bilinear rendering of a cell grid onto a frame whose height spans all grid rows.

    Cell centres sit at ``(i + 0.5) * height / rows``; the smooth (not blocky) chips keep
    the mark's energy at low spatial frequency, where H.264 leaves it alone. float32 (H, W).
    """
    rows = cells.shape[0]
    cols = min(cells.shape[1], int(np.ceil(width * rows / height)) + 1)
    full_w = int(round(cols * height / rows))
    img = cv2.resize(np.ascontiguousarray(cells[:, :cols]), (full_w, height), interpolation=cv2.INTER_LINEAR)
    return img[:, :width]
