"""Signal maths shared by the detector and the embedder's model of it: the working image,
whitening and equalisation, resampling onto a layout's cells, and the coded bits' soft scores.

These constants fix the signal model, not the search: the embedder plans its mark on a model of
exactly these steps (``equalizer_weights``, ``origin_scores``), so they are not tuning knobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from watermark import ecc
from watermark._pattern import Layout
from watermark.payload import INFO_BITS

WORK_SIDE = 320  # short side of the working image detection runs on
K_SEARCH = 2  # samples per cell during the search
K_FINE = 4  # samples per cell when decoding
_WHITEN_SIGMA = 0.5  # in cells (0.5 beat 0.7 and 1.0 on 256 px H.264 clips)
_EQUALIZE_SIGMA = 1.0  # in cells
_EQUALIZE_FLOOR = 1.0  # grey levels squared: the noise floor of 8-bit video
_MIN_PRE_CELL = 3.0  # px per cell below which per-frame equalisation works on an enlarged copy


def whiten(grid: NDArray[Any], k: float) -> NDArray[Any]:
    """Remove what is smooth at cell scale (most of the host image); keeps the chips."""
    return grid - cv2.GaussianBlur(grid, (0, 0), _WHITEN_SIGMA * k)



def cell_sums(v: NDArray[Any], rows: int, cols: int, k: int) -> NDArray[Any]:
    """Sum of the k x k samples of every cell of a grid anchored at the top-left, (rows, cols)."""
    canvas = np.zeros((rows * k, cols * k), np.float32)
    h, w = min(v.shape[0], rows * k), min(v.shape[1], cols * k)
    canvas[:h, :w] = v[:h, :w]
    # An exact k-fold INTER_AREA shrink is the block mean, and much faster than numpy's reshape-sum.
    return cv2.resize(canvas, (cols, rows), interpolation=cv2.INTER_AREA) * float(k * k)



def equalize(v: NDArray[Any], k: float) -> NDArray[Any]:
    """Divide whitened samples by their local variance (the host is far from stationary).

    Edges and texture leave large residuals that swamp the chips; flat areas leave small
    ones. Weighting each sample by 1 / local variance is the matched detector for such a
    host and gained 1.3-2.8x in z on the probe clips.
    """
    out: NDArray[Any] = v / (cv2.GaussianBlur(v * v, (0, 0), _EQUALIZE_SIGMA * k) + _EQUALIZE_FLOOR)
    return out



def pre_equalize(y: NDArray[Any], rows: int) -> NDArray[Any]:
    """One frame's luma at working resolution, whitened and equalised for a layout, float32.

    The same two steps as ``resample``, done per frame before frames are summed, with the
    cell size of a full-height copy (``h / rows`` px). Equalising each frame by its own
    local variance, rather than the clip average once, is the matched detector for moving
    content, where the host's texture moves under the static mark: on 10 panning 256 px
    clips after H.264 CRF 28 it raised exact reads from 4/10 to 9/10 (docs/watermark-history.md).
    The search then whitens and equalises the resampled average again, which on an
    already flat residual is close to the identity.
    """
    cell = y.shape[0] / rows
    if cell >= _MIN_PRE_CELL:
        return equalize(whiten(y, cell), cell)  # one "sample" per pixel: ``cell`` px per cell
    # Cells of 2 px (a 128 px frame) are too coarsely sampled for these blurs: work on an
    # enlarged copy and shrink the result (20/20 instead of 16/20 reads on 128 px clips).
    f = int(np.ceil(_MIN_PRE_CELL / cell))
    h, w = y.shape
    big = cv2.resize(y, (w * f, h * f), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(equalize(whiten(big, cell * f), cell * f), (w, h), interpolation=cv2.INTER_AREA)



@dataclass(frozen=True)
class Whitened:
    """A view whose frames were whitened and equalised one by one (``pre_equalize``), to be
    searched without whitening it again.

    A second whitening (``resample``) also takes part of the mark that survived the first:
    at the true geometry of three animated-face clips after H.264 CRF 28 the per-bit SNR was
    0.75, 0.84 and 1.31 whitened twice, 0.90, 1.00 and 1.80 whitened once (the plain view:
    0.61, 0.66 and 1.64). On a panning dense texture it also takes more of the host's leftover
    residual than of the mark, so the per-frame sums are searched both ways (two views), and
    all views compete for the same decode attempts (docs/watermark-history.md, "The per-frame sums searched a third
    way ...").
    """

    image: NDArray[Any]  # float32 (h, w)

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        return self.image if dtype is None else self.image.astype(dtype)



def resample(work: NDArray[Any] | Whitened, rows: int, scale: float, angle: float, k: int) -> NDArray[Any]:
    """The working image at ``k`` samples per cell of a layout, rotated back by ``angle``, whitened
    (unless it already is) and equalised."""
    if isinstance(work, Whitened):
        return equalize(resample_raw(work.image, rows, scale, angle, k), k)
    return equalize(whiten(resample_raw(work, rows, scale, angle, k), k), k)



def resample_raw(work: NDArray[Any], rows: int, scale: float, angle: float, k: int) -> NDArray[Any]:
    """The working image at ``k`` samples per cell of a layout, rotated back by ``angle``."""
    h, w = work.shape
    out_h = max(8, int(round(scale * rows * k)))
    out_w = max(8, int(round(w * out_h / h)))
    grid = cv2.resize(work, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if angle:
        rot = cv2.getRotationMatrix2D(((out_w - 1) / 2, (out_h - 1) / 2), -angle, 1.0)
        grid = cv2.warpAffine(grid, rot, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return grid



def padded(template: NDArray[Any], top: int, left: int, height: int, width: int) -> NDArray[Any]:
    """template[top:top+height, left:left+width] with zeros outside it."""
    out = np.zeros((height, width), np.float32)
    th, tw = template.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, th), min(left + width, tw)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = template[y0:y1, x0:x1]
    return out



def cell_scores(v: NDArray[Any], layout: Layout, k: int, dy: int, dx: int) -> NDArray[Any]:
    """Soft score of every coded bit: the equalised samples of its cells times their chips.

    ``v`` (h, w) sits at offset (dy, dx) samples in the layout's grid of ``k`` samples per
    cell; cells outside the copy contribute nothing.
    """
    rows = layout.rows
    cols = int(np.clip(-(-(v.shape[1] + dx) // k), 1, layout.cols))  # columns the copy reaches
    placed = padded(v, -dy, -dx, rows * k, cols * k)  # (rows*k, cols*k), layout coordinates
    cells = cell_sums(placed, rows, cols, k)  # (rows, cols)
    bit_index = layout.bit_index[:, :cols]
    data = bit_index >= 0
    weights = (cells * layout.chips[:, :cols])[data]
    return np.bincount(bit_index[data], weights=weights, minlength=ecc.coded_length(INFO_BITS))



def work_image(y: NDArray[Any]) -> NDArray[Any]:
    """Luma (h, w) at the detector's working resolution (short side at most ``WORK_SIDE``)."""
    h, w = y.shape
    scale = min(1.0, WORK_SIDE / min(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return y if size == (w, h) else cv2.resize(y, size, interpolation=cv2.INTER_AREA)



def equalizer_weights(work: NDArray[Any], rows: int, k: int = K_FINE) -> NDArray[Any]:
    """Mean weight ``equalize`` gives each cell of an unscaled copy, float32 (rows, cols seen).

    The embedder uses it to put its energy where the detector listens: a flat cell is
    weighted up to ~100x more than a cell on an edge.
    """
    grid = resample_raw(work, rows, 1.0, 0.0, k)
    v = whiten(grid, k)
    weight = 1.0 / (cv2.GaussianBlur(v * v, (0, 0), _EQUALIZE_SIGMA * k) + _EQUALIZE_FLOOR)
    cols = -(-weight.shape[1] // k)
    return cell_sums(weight, rows, cols, k) / (k * k)



def origin_scores(work: NDArray[Any], layout: Layout, k: int = K_FINE) -> NDArray[Any]:
    """The coded-bit soft scores the detector computes for an unscaled, uncropped copy (N_CODED,).

    With ``k`` below ``K_FINE`` it is a cheaper model of the same scores (the embedder's).
    """
    v = resample(work, layout.rows, 1.0, 0.0, k)
    return cell_scores(v, layout, k, 0, 0)
