"""Blind detection: aggregate luma over frames, search scale/rotation/offset, decode.

All frames of one clip share one geometry (a re-encode, crop or resize treats every
frame alike), so the average luma carries the sum of every frame's mark while moving
content averages toward a blur. The accumulator therefore keeps one running sum of
luma at a small working resolution (memory independent of clip length), and the
expensive part, the geometric search, runs once per clip:

1. For each layout and candidate scale ``s`` (the fraction of the original height this
   copy shows) and small rotation, resample the average to ``_K`` samples per cell and
   whiten it (subtract a Gaussian blur: the host image is smooth at cell scale, the chips
   are not).
2. Cross-correlate with the whitened pilot via FFT over every offset a crop allows; the
   peak's normalised height ``z`` ranks candidates; the best upright ones are re-ranked by
   ``z`` plus what the data cells say there (``_rerank``).
3. For the best few candidates, refine the offset at finer sampling, sum each coded bit's
   chips into a soft score, list-decode and check the CRC on each word of the list. The
   first word that passes wins.

Before step 1, the untouched geometry (an unaltered copy's) is decoded on its own, one word
per view (``_unmoved_first``); the search runs only if none of those words passes.

Every CRC check of a word decoded from noise passes with probability 2**-24, so the
detector makes at most ``MAX_CRC_CHECKS`` checks per clip (``_UNMOVED_CHECKS`` and
``_LIST_SIZES``: the list is long only for the best candidate of the upright stage) and the
false-payload rate stays below ``MAX_CRC_CHECKS * 2**-24`` = 9.5e-7 per clip (see
docs/watermark.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from scipy import fft as sp_fft

from watermark import ecc
from watermark._pattern import LAYOUT_ROWS, Layout, keyed_mask, make_layout, render_cells, rows_for_frame
from watermark.errors import FrameTooSmall, UnsupportedFrames
from watermark.frames import MAX_ASPECT_RATIO, MIN_DETECT_SIDE, as_clip, luma
from watermark.payload import INFO_BITS, WatermarkPayload

WORK_SIDE = 320  # short side of the working image detection runs on
# Stage 0 (``_unmoved_first``): at the untouched geometry (scale 1, offset 0, upright) of the
# copy's own layout, the most likely word of each view, before any search; at most one CRC check
# per view (``_UNMOVED_CHECKS``), a word two views share is checked once. An unaltered copy (the
# studio's own read-back, a file passed on as it is) then reads without the search, the bulk of
# the detector's time; and copies that keep the frame size but leave the mark weak (tone edits
# on a still dense texture, H.264 CRF 35) read there when the search's re-ranking would not pick
# that geometry (7 more of 800 face copies at 256 px, docs/watermark.md).
_UNMOVED_CHECKS = 3
# Words checked against the CRC for each decode attempt of the search, best candidate first:
# upright copies, then rotated ones (only reached when no upright candidate decodes). A list of
# 7 instead of the single best word read 4 in 5 of the simulated clips the single word missed at
# the signal level where 256 px copies fail after crop + H.264 (a list of 8 then; the eighth word
# and the rotated stage's second word and fourth candidate went to stage 0, where no read of the
# 800 face copies came from them: docs/watermark-history.md).
_LIST_SIZES = ((7, 1, 1, 1), (1, 1, 1))
# How an attempt's checks are spread over its best fine positions (list sizes, best position
# first). On the cached hard copies 4-1-1-1-1 read 2 more (of ~200) than a list of 8 at the best
# position and lost none: the pilot's best position can be a quarter cell off (docs/watermark-history.md).
_PLANS = {7: (3, 1, 1, 1, 1)}
MAX_CRC_CHECKS = _UNMOVED_CHECKS + sum(sum(sizes) for sizes in _LIST_SIZES)  # 16: the false-payload bound's factor
_K = 2  # samples per cell during the search
K_FINE = 4  # samples per cell when decoding
_WHITEN_SIGMA = 0.5  # in cells (0.5 beat 0.7 and 1.0 on 256 px H.264 clips)
_EQUALIZE_SIGMA = 1.0  # in cells
_EQUALIZE_FLOOR = 1.0  # grey levels squared: the noise floor of 8-bit video
_MIN_PRE_CELL = 3.0  # px per cell below which per-frame equalisation works on an enlarged copy
_MIN_SCALE = 0.84  # smallest fraction of the original height a copy may show (crop ~70 % area)
_ANGLES = (0.0, -1.0, 1.0, -2.0, 2.0)  # degrees
_MIN_SCALE_ROTATED = 0.95  # rotated copies are searched only near full size
# Rotated candidates are decoded only above this sync score. On 120 unmarked crops (960
# attempts) the rotation stage's best z reached 7.3, and 27 marked rotated clips (+-1, +-2
# degrees, 256 px and 720p) scored 9.3 or more; the one false payload seen in 10,000 unmarked
# samples came from a low-z rotated candidate. Upright candidates keep no floor (codecs).
_MIN_ROTATED_Z = 8.0
_COARSE = 2  # the first pass visits every second scale, then refines around its best hits
_MARGIN = 2  # samples of offset searched beyond the frame edge
_UPRIGHT_PEAKS = 2  # pilot peaks kept per view, layout and scale in the upright search
_RERANK = 32  # upright candidates re-ranked with the data cells before decoding (``_rerank``)
_VIEW_NAMES = ("per-frame", "plain", "per-frame, whitened once")  # the accumulator's views, in order
# Mean and spread of ecc.best_path_metric on 216 independent N(0, 1) scores scaled to unit
# spread, as decodability_z scales them (1,000 draws; tests/test_watermark_core.py re-measures).
_PATH_MEAN, _PATH_SD = 131.8, 2.16
_FINE_SPAN, _FINE_STEP = 0.6, 0.15  # scales the decode step tries around a hit, in coarse scale steps


@dataclass(frozen=True)
class Detection:
    """What the detector found. ``payload`` is None unless a candidate passed the CRC.

    ``confidence`` is 2 * (fraction of coded-bit scores that agree with the re-encoded
    payload) - 1: 1.0 is a clean read, values near 0 are a barely-decodable one.
    ``bit_scores`` are the soft scores of the 216 coded bits at the chosen geometry.
    """

    payload: int | None
    confidence: float
    bit_scores: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Candidate:
    z: float
    rows: int
    scale: float
    angle: float
    dy: int
    dx: int
    view: int = 0  # which aggregate of the frames it was found in (see ``search_and_decode``)


def whiten(grid: np.ndarray, k: int) -> np.ndarray:
    """Remove what is smooth at cell scale (most of the host image); keeps the chips."""
    return grid - cv2.GaussianBlur(grid, (0, 0), _WHITEN_SIGMA * k)


def cell_sums(v: np.ndarray, rows: int, cols: int, k: int) -> np.ndarray:
    """Sum of the k x k samples of every cell of a grid anchored at the top-left, (rows, cols)."""
    canvas = np.zeros((rows * k, cols * k), np.float32)
    h, w = min(v.shape[0], rows * k), min(v.shape[1], cols * k)
    canvas[:h, :w] = v[:h, :w]
    # An exact k-fold INTER_AREA shrink is the block mean, and much faster than numpy's reshape-sum.
    return cv2.resize(canvas, (cols, rows), interpolation=cv2.INTER_AREA) * float(k * k)


def equalize(v: np.ndarray, k: int) -> np.ndarray:
    """Divide whitened samples by their local variance (the host is far from stationary).

    Edges and texture leave large residuals that swamp the chips; flat areas leave small
    ones. Weighting each sample by 1 / local variance is the matched detector for such a
    host and gained 1.3-2.8x in z on the probe clips.
    """
    return v / (cv2.GaussianBlur(v * v, (0, 0), _EQUALIZE_SIGMA * k) + _EQUALIZE_FLOOR)


def pre_equalize(y: np.ndarray, rows: int) -> np.ndarray:
    """One frame's luma at working resolution, whitened and equalised for a layout, float32.

    The same two steps as ``_resample``, done per frame before frames are summed, with the
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


def _scales(rows: int) -> np.ndarray:
    step = 0.64 / rows  # keeps the scale error below ~0.3 cell across the frame
    return np.arange(1.0, _MIN_SCALE - 1e-9, -step)


class _Templates:
    """Whitened pilot renderings of one layout at search and decode sampling (cached)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pilot = {
            k: whiten(render_cells(layout.pilot, layout.rows * k, layout.cols * k), k) for k in (_K, K_FINE)
        }
        self.pilot_power = {k: float(np.mean(p**2)) for k, p in self.pilot.items()}
        self._spectra: dict[tuple[int, ...], np.ndarray] = {}

    def region_spectrum(self, k: int, top: int, left: int, shape: tuple[int, int]) -> np.ndarray:
        """rfft2 of pilot[top:top+h, left:left+w] (zeros outside the pilot), cached."""
        key = (k, top, left, *shape)
        if key not in self._spectra:
            if len(self._spectra) > 1024:  # frame sizes vary between calls; keep memory bounded
                self._spectra.clear()
            self._spectra[key] = sp_fft.rfft2(_padded(self.pilot[k], top, left, *shape))
        return self._spectra[key]


@lru_cache(maxsize=8)
def _templates(key: bytes, rows: int) -> _Templates:
    return _Templates(make_layout(key, rows))


@dataclass(frozen=True)
class Whitened:
    """A view whose frames were whitened and equalised one by one (``pre_equalize``), to be
    searched without whitening it again.

    A second whitening (``_resample``) also takes part of the mark that survived the first:
    at the true geometry of three animated-face clips after H.264 CRF 28 the per-bit SNR was
    0.75, 0.84 and 1.31 whitened twice, 0.90, 1.00 and 1.80 whitened once (the plain view:
    0.61, 0.66 and 1.64). On a panning dense texture it also takes more of the host's leftover
    residual than of the mark, so the per-frame sums are searched both ways (two views), and
    all views compete for the same decode attempts (docs/watermark-history.md, "The per-frame sums searched a third
    way ...").
    """

    image: np.ndarray  # float32 (h, w)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.image if dtype is None else self.image.astype(dtype)


def _resample(work: np.ndarray | Whitened, rows: int, scale: float, angle: float, k: int) -> np.ndarray:
    """The working image at ``k`` samples per cell of a layout, rotated back by ``angle``, whitened
    (unless it already is) and equalised."""
    if isinstance(work, Whitened):
        return equalize(_resample_raw(work.image, rows, scale, angle, k), k)
    return equalize(whiten(_resample_raw(work, rows, scale, angle, k), k), k)


def _resample_raw(work: np.ndarray, rows: int, scale: float, angle: float, k: int) -> np.ndarray:
    """The working image at ``k`` samples per cell of a layout, rotated back by ``angle``."""
    h, w = work.shape
    out_h = max(8, int(round(scale * rows * k)))
    out_w = max(8, int(round(w * out_h / h)))
    grid = cv2.resize(work, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if angle:
        rot = cv2.getRotationMatrix2D(((out_w - 1) / 2, (out_h - 1) / 2), -angle, 1.0)
        grid = cv2.warpAffine(grid, rot, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return grid


def _padded(template: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """template[top:top+height, left:left+width] with zeros outside it."""
    out = np.zeros((height, width), np.float32)
    th, tw = template.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, th), min(left + width, tw)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = template[y0:y1, x0:x1]
    return out


def _correlate(v: np.ndarray, tpl: _Templates, k: int, dy_range: tuple[int, int], dx_range: tuple[int, int]) -> np.ndarray:
    """Normalised ``sum(v * pilot[dy:, dx:])`` for every offset in the (inclusive) ranges.

    A circular FFT correlation of the size of the template region is exact for these
    offsets (no index wraps), and half the size of a linear one; the region's transform
    is cached because the rotation stage revisits the same scales.
    """
    hv, wv = v.shape
    n_dy, n_dx = dy_range[1] - dy_range[0] + 1, dx_range[1] - dx_range[0] + 1
    shape = (sp_fft.next_fast_len(n_dy + hv - 1, real=True), sp_fft.next_fast_len(n_dx + wv - 1, real=True))
    spectrum = tpl.region_spectrum(k, dy_range[0], dx_range[0], shape)
    corr = sp_fft.irfft2(spectrum * np.conj(sp_fft.rfft2(v, shape)), shape)[:n_dy, :n_dx]
    norm = float(np.sqrt(np.sum(v * v) * tpl.pilot_power[k])) + 1e-12
    return corr / norm


def _offset_ranges(shape: tuple[int, int], rows: int, scale: float, k: int, margin: int) -> tuple[tuple[int, int], tuple[int, int]]:
    hv, wv = shape
    free_y = rows * k - hv
    free_x = int(round(wv / scale)) - wv
    return (-margin, max(free_y, 0) + margin), (-margin, max(free_x, 0) + margin)


def _cell_scores(v: np.ndarray, layout: Layout, k: int, dy: int, dx: int) -> np.ndarray:
    """Soft score of every coded bit: the equalised samples of its cells times their chips.

    ``v`` (h, w) sits at offset (dy, dx) samples in the layout's grid of ``k`` samples per
    cell; cells outside the copy contribute nothing.
    """
    rows = layout.rows
    cols = int(np.clip(-(-(v.shape[1] + dx) // k), 1, layout.cols))  # columns the copy reaches
    placed = _padded(v, -dy, -dx, rows * k, cols * k)  # (rows*k, cols*k), layout coordinates
    cells = cell_sums(placed, rows, cols, k)  # (rows, cols)
    bit_index = layout.bit_index[:, :cols]
    data = bit_index >= 0
    weights = (cells * layout.chips[:, :cols])[data]
    return np.bincount(bit_index[data], weights=weights, minlength=ecc.coded_length(INFO_BITS))


def work_image(y: np.ndarray) -> np.ndarray:
    """Luma (h, w) at the detector's working resolution (short side at most ``WORK_SIDE``)."""
    h, w = y.shape
    scale = min(1.0, WORK_SIDE / min(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return y if size == (w, h) else cv2.resize(y, size, interpolation=cv2.INTER_AREA)


def equalizer_weights(work: np.ndarray, rows: int, k: int = K_FINE) -> np.ndarray:
    """Mean weight ``equalize`` gives each cell of an unscaled copy, float32 (rows, cols seen).

    The embedder uses it to put its energy where the detector listens: a flat cell is
    weighted up to ~100x more than a cell on an edge.
    """
    grid = _resample_raw(work, rows, 1.0, 0.0, k)
    v = whiten(grid, k)
    weight = 1.0 / (cv2.GaussianBlur(v * v, (0, 0), _EQUALIZE_SIGMA * k) + _EQUALIZE_FLOOR)
    cols = -(-weight.shape[1] // k)
    return cell_sums(weight, rows, cols, k) / (k * k)


def origin_scores(work: np.ndarray, layout: Layout, k: int = K_FINE) -> np.ndarray:
    """The coded-bit soft scores the detector computes for an unscaled, uncropped copy (N_CODED,).

    With ``k`` below ``K_FINE`` it is a cheaper model of the same scores (the embedder's).
    """
    v = _resample(work, layout.rows, 1.0, 0.0, k)
    return _cell_scores(v, layout, k, 0, 0)


class Accumulator:
    """Sums every frame added, at a small working resolution, two ways, then searches and
    decodes once; memory does not grow with length.

    The sums give three views of the clip for the search: each frame pre-equalised per
    layout (``pre_equalize``: the matched detector when the host moves under the mark), the
    same sum searched without a second whitening (``Whitened``), and the plain luma
    (equalised once, after averaging: what the embedder models). On 40 keys of the 128 px
    audit clip the per-frame view alone read 38-39 of 40 copies and the plain view 40; on
    256 px panning clips after H.264 CRF 28 the plain view reads 4-5 of 10 and the per-frame
    view 9; on the 16 animated-face clips after CRF 28, the per-frame and plain views 14 and
    the three together 16.
    """

    def __init__(self, *, key: bytes) -> None:
        self._key = key
        self._plain: np.ndarray | None = None
        self._sums: dict[int, np.ndarray] | None = None
        self._shape: tuple[int, int] | None = None
        self._count = 0

    def add(self, frames: np.ndarray) -> None:
        """Add a chunk of frames ((T, H, W, 3) or (H, W, 3) uint8) to the running sum."""
        clip, _ = as_clip(frames, min_side=MIN_DETECT_SIDE)
        work_size = self._start(*clip.shape[1:3])
        for frame in clip:
            small = frame if frame.shape[1::-1] == work_size else cv2.resize(frame, work_size, interpolation=cv2.INTER_AREA)
            self._add_work(luma(small))

    def add_luma(self, planes: np.ndarray) -> None:
        """Add decoded luma planes ((T, H, W) or (H, W) uint8, e.g. a video's Y plane).

        The detector only ever reads brightness, and its whitening and equalisation make it
        blind to the affine difference between video-range Y and full-range RGB luma; reading
        Y straight from the decoder skips the colour conversion. Do not mix with ``add``.
        """
        if not isinstance(planes, np.ndarray) or planes.dtype != np.uint8 or planes.ndim not in (2, 3):
            raise UnsupportedFrames("luma planes must be a uint8 array shaped (T, H, W) or (H, W)")
        stack = planes[None] if planes.ndim == 2 else planes
        if 0 in stack.shape:
            raise UnsupportedFrames("there are no frames (empty array)")
        if min(stack.shape[1:3]) < MIN_DETECT_SIDE:
            raise FrameTooSmall(f"frames of {stack.shape[2]}x{stack.shape[1]} px are too small to read a watermark")
        if stack.shape[2] / stack.shape[1] > MAX_ASPECT_RATIO:
            raise UnsupportedFrames(f"frames of {stack.shape[2]}x{stack.shape[1]} px are too wide")
        work_size = self._start(*stack.shape[1:3])
        h, w = stack.shape[1:3]
        k = min(h // work_size[1], w // work_size[0])  # integer box-filter step first: 2-3x faster
        for plane in stack:
            if k >= 2:
                plane = cv2.resize(plane, (w // k, h // k), interpolation=cv2.INTER_AREA)
            small = plane if plane.shape[::-1] == work_size else cv2.resize(plane, work_size, interpolation=cv2.INTER_AREA)
            self._add_work(small.astype(np.float32))

    def _add_work(self, y: np.ndarray) -> None:
        """Add one frame's luma (h', w') float32 at working resolution."""
        assert self._sums is not None and self._plain is not None
        self._plain += y
        for rows, total in self._sums.items():
            total += pre_equalize(y, rows)
        self._count += 1

    def _start(self, h: int, w: int) -> tuple[int, int]:
        """Fix the frame size on the first chunk; the working (width, height) for every chunk."""
        if self._shape is None:
            self._shape = (h, w)
            scale = min(1.0, WORK_SIDE / min(h, w))
            self._work_size = (max(1, round(w * scale)), max(1, round(h * scale)))
            self._sums = {rows: np.zeros((self._work_size[1], self._work_size[0]), np.float64) for rows in LAYOUT_ROWS}
            self._plain = np.zeros((self._work_size[1], self._work_size[0]), np.float64)
        elif self._shape != (h, w):
            raise UnsupportedFrames(f"frame size changed from {self._shape[1]}x{self._shape[0]} to {w}x{h}")
        return self._work_size

    def result(self) -> Detection:
        """Search and decode the aggregated frames; ``payload`` None when nothing is found."""
        views = self._views()  # raises UnsupportedFrames when nothing was added
        assert self._shape is not None
        return search_and_decode(views, key=self._key, details={"frames": self._count},
                                 rows=rows_for_frame(*self._shape))

    def confirms(self, payload: int) -> bool:
        """Whether the frames added so far carry ``payload`` where an untouched copy carries it
        (full size, no offset, upright), in any of the three views: a cheap check (one decode
        per view, no search) that a producer makes of its own frames before encoding them.

        Not a detection: it is told the payload and looks at one geometry, so it says nothing
        about other copies or about false payloads; ``result()`` is what reads a copy.
        """
        views = self._views()
        assert self._shape is not None
        expected = WatermarkPayload(payload).to_info_bits(keyed_mask(self._key))
        for _, scores in _untouched(views, _templates(self._key, rows_for_frame(*self._shape))):
            if np.array_equal(ecc.viterbi_decode(scores / (float(np.std(scores)) + 1e-12), INFO_BITS), expected):
                return True
        return False

    def _views(self) -> list[Any]:
        """The three views of the frames added so far (see the class docstring)."""
        if self._sums is None or self._count == 0:
            raise UnsupportedFrames("no frames were added to the watermark detector")
        assert self._plain is not None
        per_frame = {rows: (total / self._count).astype(np.float32) for rows, total in self._sums.items()}
        plain = (self._plain / self._count).astype(np.float32)
        once = {rows: Whitened(image) for rows, image in per_frame.items()}
        return [per_frame, plain, once]


def _scan(views: list[dict[int, np.ndarray]], templates: dict[int, _Templates], angles: tuple[float, ...],
          coarse: int, min_scale: float, peaks: int = 1) -> list[_Candidate]:
    """The ``peaks`` best pilot hits for every view, layout, scale (every ``coarse``-th) and
    angle, best first."""
    found: list[_Candidate] = []
    for view, works in enumerate(views):
        for rows, tpl in templates.items():
            scales = _scales(rows)[::coarse]
            for scale in scales[scales >= min_scale - 1e-9]:
                for angle in angles:
                    for hit in _best_offsets(works[rows], tpl, float(scale), angle, peaks):
                        found.append(_Candidate(hit.z, hit.rows, hit.scale, hit.angle, hit.dy, hit.dx, view))
    found.sort(key=lambda c: -c.z)
    return found


def _best_offsets(work: np.ndarray, tpl: _Templates, scale: float, angle: float, peaks: int = 1) -> list[_Candidate]:
    """The ``peaks`` highest pilot correlation peaks at one scale and angle (each the maximum
    of its 3 x 3 neighbourhood), best first."""
    rows = tpl.layout.rows
    v = _resample(work, rows, scale, angle, _K)
    dyr, dxr = _offset_ranges(v.shape, rows, scale, _K, _MARGIN)
    zmap = _correlate(v, tpl, _K, dyr, dxr)
    hits = []
    for n in range(peaks):
        iy, ix = np.unravel_index(int(np.argmax(zmap)), zmap.shape)
        hits.append(_Candidate(float(zmap[iy, ix]), rows, scale, angle, int(iy + dyr[0]), int(ix + dxr[0])))
        if n + 1 < peaks:
            zmap = zmap.copy() if n == 0 else zmap
            zmap[max(0, iy - 1) : iy + 2, max(0, ix - 1) : ix + 2] = -np.inf
    return hits


def _coarse_scores(work: np.ndarray, cand: _Candidate, tpl: _Templates) -> tuple[np.ndarray, np.ndarray]:
    """Every coded bit's soft score at a search candidate (``_K`` samples per cell) and the sum of
    its cells' squared terms, float64 (N_CODED,) each."""
    layout, k = tpl.layout, _K
    v = _resample(work, layout.rows, cand.scale, cand.angle, k)
    cols = int(np.clip(-(-(v.shape[1] + cand.dx) // k), 1, layout.cols))
    cells = cell_sums(_padded(v, -cand.dy, -cand.dx, layout.rows * k, cols * k), layout.rows, cols, k)
    bit_index = layout.bit_index[:, :cols]
    data = bit_index >= 0
    w = (cells * layout.chips[:, :cols])[data]
    n_coded = ecc.coded_length(INFO_BITS)
    return (np.bincount(bit_index[data], weights=w, minlength=n_coded),
            np.bincount(bit_index[data], weights=w * w, minlength=n_coded))


def data_energy_z(score: np.ndarray, power: np.ndarray) -> float:
    """How far the data cells' energy stands above chance, in standard deviations (about
    N(0, 1) on unmarked content), from ``_coarse_scores``.

    The pilot is a quarter of the mark; the data cells carry the rest, with signs that depend
    on the unknown payload, so their soft scores are used without signs: with each cell's
    chip-weighted sum ``w`` and each coded bit's score ``s = sum(w)``, unmarked content gives
    ``E[s**2] = sum(w**2)`` whatever the host (the chips are keyed random signs), and a mark
    raises ``sum(s**2)`` above it. At the right geometry of 256 px copies after crop + H.264
    it scored 3 to 6.
    """
    return float((np.sum(score**2) - np.sum(power)) / (np.sqrt(2.0 * np.sum(power**2)) + 1e-12))


def decodability_z(score: np.ndarray) -> float:
    """How much better than chance the best trellis path fits the soft scores, in standard
    deviations (``ecc.best_path_metric`` of the scores scaled to unit spread; on independent
    N(0, 1) scores that metric has mean ``_PATH_MEAN`` and spread ``_PATH_SD``).

    Unlike the data energy, this sees the code's structure, so it also rises on a still host
    where the informed embedder has cancelled the host's projection on every bit: on a
    dense-texture still photo it scored 7.0 at the true geometry (data energy -0.9) while
    the pilot ranked noise peaks above it.
    """
    metric = ecc.best_path_metric(score / (float(np.std(score)) + 1e-12), INFO_BITS)
    return (metric - _PATH_MEAN) / _PATH_SD


def _fit(work: np.ndarray, cand: _Candidate, tpl: _Templates) -> float:
    """How well a search candidate fits a mark: pilot z plus the data energy z and the
    decodability z where those are positive. None of it needs a CRC check, so ranking by it
    leaves the false-payload bound alone. Rewards only, never penalties: on a still host the
    informed embedder leaves per-bit sums *below* chance (a data energy of -1.7 at the true
    geometry of one such photo)."""
    score, power = _coarse_scores(work, cand, tpl)
    return cand.z + max(0.0, data_energy_z(score, power)) + max(0.0, decodability_z(score))


def _rerank(views: list[dict[int, np.ndarray]], templates: dict[int, _Templates], found: list[_Candidate]) -> list[_Candidate]:
    """Candidates best first by ``_fit``. After crop + H.264 the right geometry of a 256 px
    copy, and on a still dense-texture photo even unattacked, can rank below noise peaks on
    the pilot alone (26th of the pilot's candidates on one animated-face clip)."""
    fits = [(_fit(views[c.view][c.rows], c, templates[c.rows]), i) for i, c in enumerate(found)]
    return [found[i] for _, i in sorted(fits, key=lambda t: (-t[0], t[1]))]


def _refine_scale(work: np.ndarray, cand: _Candidate, tpl: _Templates, step: float) -> _Candidate:
    """Best by ``_fit`` of the coarse hit and scales a quarter and half a coarse step to either
    side (on a still busy host the pilot alone moved one clip's true scale 1.0 to 0.99)."""
    best, best_fit = cand, _fit(work, cand, tpl)
    for delta in (-0.5, -0.25, 0.25, 0.5):
        scale = cand.scale + delta * step
        if _MIN_SCALE - step <= scale <= 1.0 + step:
            trial = _best_offsets(work, tpl, scale, cand.angle)[0]
            trial = _Candidate(trial.z, trial.rows, trial.scale, trial.angle, trial.dy, trial.dx, cand.view)
            fit = _fit(work, trial, tpl)
            if fit > best_fit:
                best, best_fit = trial, fit
    return best


@dataclass
class _Geometry:
    """One fine-grained decode position: ``K_FINE`` samples ``v`` at a scale, and an offset."""

    fit: float  # pilot z + decodability z (what ranks geometries)
    v: np.ndarray
    dy: int
    dx: int
    z: float
    scale: float


def _refine(work: np.ndarray, cand: _Candidate, tpl: _Templates, step: float) -> list[_Geometry]:
    """Re-sample at ``K_FINE`` per cell and re-locate the pilot within a cell of the coarse hit,
    over scales within ``_FINE_SPAN`` coarse steps (``step``) of it; every position looked at,
    best first.

    The coarse z is flat over a few scale steps, and after crop + H.264 its peak can sit a
    step off (242 px copies of 256 px clips peaked at 0.93 instead of 0.945: a cell of
    error across the frame, which the decoder does not survive); the finer sampling's z
    peaks at the right scale. Each scale's pilot peak is judged with the decodability of the
    bits there, as in the search.
    """
    ratio = K_FINE // _K
    dyr = (cand.dy * ratio - ratio - 1, cand.dy * ratio + ratio + 1)
    dxr = (cand.dx * ratio - ratio - 1, cand.dx * ratio + ratio + 1)
    found: list[tuple[_Geometry, np.ndarray]] = []
    for offset in np.arange(-_FINE_SPAN, _FINE_SPAN + 1e-9, _FINE_STEP):
        scale = cand.scale + float(offset) * step
        if scale > 1.0 + 1e-9:
            continue
        v = _resample(work, cand.rows, scale, cand.angle, K_FINE)
        zmap = _correlate(v, tpl, K_FINE, dyr, dxr)
        iy, ix = np.unravel_index(int(np.argmax(zmap)), zmap.shape)
        y, x = int(iy + dyr[0]), int(ix + dxr[0])
        fit = float(zmap[iy, ix]) + decodability_z(_cell_scores(v, tpl.layout, K_FINE, y, x))
        found.append((_Geometry(fit, v, y, x, float(zmap[iy, ix]), scale), zmap))
    assert found  # offset 0 keeps the coarse scale, which is at most 1
    found.sort(key=lambda g: -g[0].fit)
    best, zmap = found[0]
    # The pilot's peak can sit a quarter cell off when the host is still and busy: the
    # offsets next to the best peak are positions of their own, judged the same way.
    result = [g for g, _ in found]
    for y in (best.dy - 1, best.dy, best.dy + 1):
        for x in (best.dx - 1, best.dx, best.dx + 1):
            if (y, x) != (best.dy, best.dx) and dyr[0] <= y <= dyr[1] and dxr[0] <= x <= dxr[1]:
                z = float(zmap[y - dyr[0], x - dxr[0]])
                fit = z + decodability_z(_cell_scores(best.v, tpl.layout, K_FINE, y, x))
                result.append(_Geometry(fit, best.v, y, x, z, best.scale))
    result.sort(key=lambda g: -g.fit)
    return result


View = np.ndarray | dict[int, np.ndarray]


def search_and_decode(work: View | list[View], *, key: bytes, details: dict[str, Any] | None = None,
                      rows: int | None = None) -> Detection:
    """Find and decode the mark in an (aggregated) luma image, float32 (h, w), or in one
    image per layout (``{rows: image}``, e.g. the accumulator's pre-equalised averages), or
    in several such *views* of the same frames: candidates from all views compete on sync
    score for the same decode attempts, so the false-payload bound does not change.

    First the untouched geometry of layout ``rows`` (the copy's own, from its frame size;
    the small layout when not given), one word per view (``_unmoved_first``); then two search
    stages, each with its list sizes (``_LIST_SIZES``): upright copies at every scale first
    (almost every real copy), then small rotations near full size only if the first stage
    found nothing.
    """
    info = dict(details or {})
    n_coded = ecc.coded_length(INFO_BITS)
    views = [v if isinstance(v, dict) else {layout_rows: v for layout_rows in LAYOUT_ROWS}
             for v in (work if isinstance(work, list) else [work])]
    if max(float(np.std(w)) for works in views for w in works.values()) < 1e-3:
        info.update(reason="constant image", crc_checks=0)
        return Detection(None, 0.0, np.zeros(n_coded), info)
    templates = {rows: _templates(key, rows) for rows in LAYOUT_ROWS}
    mask = keyed_mask(key)
    state: dict[str, Any] = {"attempts": 0, "checks": 0, "best_z": 0.0}
    early_words: set[bytes] = set()
    detection = _unmoved_first(views, templates, LAYOUT_ROWS[0] if rows is None else rows, mask, info, state,
                               early_words)
    if detection is not None:
        return detection
    stages = (((0.0,), _MIN_SCALE), (tuple(a for a in _ANGLES if a), _MIN_SCALE_ROTATED))
    for (angles, min_scale), list_sizes in zip(stages, _LIST_SIZES):
        upright = angles == (0.0,)
        candidates = _scan(views, templates, angles, _COARSE, min_scale, _UPRIGHT_PEAKS if upright else 1)
        if upright:
            pool = candidates[:_RERANK] + _unmoved(views, templates)
            candidates = _distinct(_rerank(views, templates, pool))[: len(list_sizes)]
        else:
            candidates = [c for c in _distinct(candidates[: 4 * len(list_sizes)])[: len(list_sizes)] if c.z >= _MIN_ROTATED_Z]
        if candidates:
            info.setdefault("upright_z", candidates[0].z)
        for cand, list_size in zip(candidates, list_sizes):
            tpl = templates[cand.rows]
            step = _COARSE * (_scales(cand.rows)[0] - _scales(cand.rows)[1])
            places = []  # every view is tried at the candidate's geometry
            for view in range(len(views)):
                refined = _refine_scale(views[view][cand.rows], replace(cand, view=view), tpl, step)
                places += [(g, refined) for g in _refine(views[view][cand.rows], refined, tpl, step)]
            places.sort(key=lambda p: -p[0].fit)
            detection = _decode(places, tpl, mask, info, state, list_size, set(early_words) if upright else None)
            if detection is not None:
                return detection
    info.update(sync_z=state["best_z"], attempts=state["attempts"], crc_checks=state["checks"])
    scores = state.get("scores", np.zeros(n_coded))
    return Detection(None, 0.0, scores, info)


def _untouched(views: list[Any], tpl: _Templates) -> list[tuple[np.ndarray, np.ndarray]]:
    """For every view (an image, or one image per layout), its samples at ``K_FINE`` per cell
    of ``tpl``'s layout at the untouched geometry (scale 1, offset 0, upright) and the coded
    bits' soft scores there (``origin_scores``): what stage 0 decodes and ``confirms`` checks."""
    rows = tpl.layout.rows
    out = []
    for view in views:
        v = _resample(view[rows] if isinstance(view, dict) else view, rows, 1.0, 0.0, K_FINE)
        out.append((v, _cell_scores(v, tpl.layout, K_FINE, 0, 0)))
    return out


def _unmoved_first(views: list[dict[int, np.ndarray]], templates: dict[int, _Templates], rows: int, mask: np.ndarray,
                   info: dict[str, Any], state: dict[str, Any], checked: set[bytes]) -> Detection | None:
    """Stage 0: the untouched geometry (scale 1, offset 0, upright) of layout ``rows`` in every
    view, best decodability first: the most likely word of each, one CRC check per distinct
    word (recorded in ``checked``). A Detection for the first that passes, else None and the
    search follows.

    It costs one resampling, one trellis pass and one decode per view (tens of milliseconds
    at 1080p, against a few hundred for the search). The decodability z is only the order:
    on a still dense texture after a tone edit the right word came from a view whose z was
    1.3, below views with nothing."""
    tpl = templates[rows]
    looks = [(decodability_z(scores), view, v) for view, (v, scores) in enumerate(_untouched(views, tpl))]
    looks.sort(key=lambda look: -look[0])
    info["unmoved_decodability_z"] = round(looks[0][0], 2)
    for z, view, v in looks[:_UNMOVED_CHECKS]:
        sync = float(_correlate(v, tpl, K_FINE, (0, 0), (0, 0))[0, 0])
        place = (_Geometry(sync + z, v, 0, 0, sync, 1.0), _Candidate(sync, rows, 1.0, 0.0, 0, 0, view))
        detection = _decode([place], tpl, mask, info, state, 1, checked)
        if detection is not None:
            return detection
    return None


def _unmoved(views: list[dict[int, np.ndarray]], templates: dict[int, _Templates]) -> list[_Candidate]:
    """The geometry of an unscaled, uncropped copy (scale 1, offset 0, upright) in every view
    and layout, which always joins the re-ranking: it is the most common copy (the studio's
    own read-back, a file passed on as is), and on a still dense-texture photo the pilot alone
    can rank it below the 32 candidates re-ranked (an animated face over a tissue micrograph:
    the right word was the best at this geometry, its pilot z 4.4 against noise peaks of 6.2)."""
    found = []
    for view, works in enumerate(views):
        for rows, tpl in templates.items():
            v = _resample(works[rows], rows, 1.0, 0.0, _K)
            z = float(_correlate(v, tpl, _K, (0, 0), (0, 0))[0, 0])
            found.append(_Candidate(z, rows, 1.0, 0.0, 0, 0, view))
    return found


def _distinct(found: list[_Candidate]) -> list[_Candidate]:
    """``found`` without candidates at (nearly) the geometry of a better one: the views see
    the same frames, so one geometry often tops both, and every view is tried at decode time
    anyway (``search_and_decode``)."""
    kept: list[_Candidate] = []
    for c in found:
        if not any(k.rows == c.rows and k.angle == c.angle and abs(k.scale - c.scale) < 1e-6
                   and abs(k.dy - c.dy) <= 1 and abs(k.dx - c.dx) <= 1 for k in kept):
            kept.append(c)
    return kept


def _decode(places: list[tuple[_Geometry, _Candidate]], tpl: _Templates, mask: np.ndarray, info: dict[str, Any],
            state: dict[str, Any], list_size: int, checked: set[bytes] | None = None) -> Detection | None:
    """One decode attempt at a candidate: at most ``list_size`` CRC checks, spread over its
    best fine positions (``places``, best first) by ``_PLANS``; a Detection for the first
    word that passes. A word already checked (in this attempt, or in ``checked``, which
    records what this attempt checks) is not checked (or counted) again."""
    state["attempts"] += 1
    checked = set() if checked is None else checked
    plan = _PLANS.get(list_size, (list_size,))
    used = 0
    for (geometry, cand), size in zip(places, plan):
        size = min(size, list_size - used)
        if size <= 0:
            break
        scores = _cell_scores(geometry.v, tpl.layout, K_FINE, geometry.dy, geometry.dx)
        scores = scores / (float(np.std(scores)) + 1e-12)
        words = ecc.decode_list(scores, INFO_BITS, size)
        if cand.z > state["best_z"]:
            state.update(best_z=cand.z, scores=scores)
            info["best_effort_bits"] = (words[0] ^ mask)[:48]
        for rank, bits in enumerate(words):
            if bits.tobytes() in checked:
                continue
            checked.add(bits.tobytes())
            used += 1
            state["checks"] += 1
            found = WatermarkPayload.from_info_bits(bits, mask)
            if found is None:
                continue
            codeword = ecc.encode(bits).astype(np.float64) * 2 - 1
            agree = float(np.mean(np.sign(scores) == codeword))
            info.update(view=_VIEW_NAMES[cand.view], rows=cand.rows, scale=round(geometry.scale, 4),
                        angle=cand.angle, offset=(geometry.dy / K_FINE, geometry.dx / K_FINE), sync_z=cand.z,
                        attempts=state["attempts"], crc_checks=state["checks"], list_rank=rank)
            return Detection(found.value, max(0.0, 2 * agree - 1), scores, info)
    return None
