"""Keyed spread-spectrum embedding on luma: a blind part plus a host-informed correction.

Every frame gets one luma change ``delta (H, W)``, added to R, G and B alike (so chroma is
left alone), built from the layout's +-1 cells rendered bilinearly (see ``_pattern``):

* the blind part: pilot cells and a share of the data cells, times ``strength``, which
  follows local texture measured at low resolution (flat skin and sky 1 grey level, busy
  texture up to 6; 1.5 to 3 on frames under 600 px, see ``EmbedConfig.strength_range``);
* the informed correction. On a still or mostly static frame nothing averages the host
  image away, and its residual after the detector's whitening projected onto every coded
  bit's chips ~2.6x as strongly as a blind mark at full budget (astronaut, 256 px). The
  embedder knows the host, so it runs a model of the detector's scoring
  (``signal.origin_scores``: whitening, equalisation, cell sums at the detector's
  resolution), measures each bit's response to a unit correction shaped by the detector's
  own equalisation weights (flat cells count most), and lifts the bits the host works
  against, cheapest first, under the energy budget (informed embedding, after Malvar and
  Florencio's Improved Spread Spectrum). Bits the host already favours cost nothing.
  Where a brightness or contrast edit would clip much of the frame (a lit wall behind the
  face), half of that budget is first planned on a model of the edited frame, so that the
  bits also hold where the edit leaves the picture (the *tone plan*, ``_TONE_PLAN_*``).

The total is scaled down if needed so the RMS change stays under ``EmbedConfig.max_rms`` (PSNR >=
42.3 dB; up to ``max_rms_texture``, 38.9 dB, on frames under 600 px that are dense texture
throughout) and the frame's SSIM (mean over R, G, B) stays at or above ``min_ssim``. Rounding to
integers uses a fixed ordered dither so that amplitudes below half a grey level survive on
average instead of rounding to zero. docs/watermark.md ("Still frames") and docs/watermark-history.md
("Strength range and SSIM floor") have the measurements.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from watermark import ecc
from watermark._pattern import LAYOUT_ROWS, keyed_mask, make_layout, render_cells, rows_for_frame
from watermark.config import EmbedConfig
from watermark.errors import UnsupportedFrames
from watermark.frames import MIN_EMBED_SIDE, as_clip, luma
from watermark.payload import WatermarkPayload
from watermark.signal import WORK_SIDE, equalizer_weights, origin_scores

_MASK_SIDE = 192  # short side of the image the texture mask is computed on
_TEXTURE_GAIN = 0.6
# Frames under 600 px that are texture nearly everywhere (``_BUSY_FULL`` of the texture mask at
# its ceiling; from ``_BUSY_START`` the RMS cap rises linearly) may take up to
# ``EmbedConfig.max_rms_texture``: no flat area to keep clean, and dense texture masks the mark.
_BUSY_START, _BUSY_FULL = 0.8, 0.95
_SSIM_FULL_PIXELS = 400_000  # larger frames estimate SSIM from bands of _SSIM_BAND rows
_SSIM_BAND = 38  # 32 rows of windows plus the 3-row borders
_RAIL = 3  # a pixel with a channel within this many grey levels of 0 or 255 is at the rails
_RAIL_WEIGHT = 0.3  # ... and gets this fraction of the mark
_REFILL = 1.5  # at most this gain for a mark under the RMS cap (then the SSIM guard decides)
# Tone reserve: brightness -30 / contrast x1.3 clip the darkest pixels, which then keep none of
# the mark. On a frame mostly made of them (a night sky) their mark is kept at ``_TONE_WEIGHT``
# and the energy saved goes to the pixels a tone change leaves alone, under the same RMS cap;
# it ramps from ``EmbedConfig.tone_start`` of the frame exposed to ``_TONE_FULL``
# (measurements: docs/watermark-history.md).
_TONE_DARK, _TONE_LIGHT = 35, 220  # max channel below / min channel above: exposed to tone changes
_TONE_FULL = 0.8
_TONE_WEIGHT = 0.5
_TONE_REFILL = 3.0  # at most this gain for the rest of such a frame
# Tone plan: where channels a +-30 / x1.3 edit would clip carry at least
# ``EmbedConfig.tone_plan_start`` of the luma (a lit studio wall), ``_TONE_PLAN_SHARE`` of the
# correction budget is planned on a model of the edited frame, so the mark does not rest only
# on pixels the edit wipes out; past ``_TONE_PLAN_END`` (a night sky) the tone reserve alone acts.
_CLIP_LOW, _CLIP_HIGH = 30, 225
_TONE_PLAN_END = 0.75
_TONE_PLAN_SHARE = 0.5
_PLAN_TONE_START, _PLAN_TONE_FULL = 0.2, 0.3
_DEFAULT = EmbedConfig()
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
_BASE_SHARE = 0.8  # the blind part (pilot + data) takes at most this fraction of the RMS budget
_BASE_DATA = 0.4  # weight of the blind data cells relative to the pilot in the blind part
# How far pilot cells follow the detector's weights (0: flat, 1: fully), small layout only:
# it helps sync on small stills and hurts it under H.264 on the large layout (docs/watermark.md).
_PILOT_WEIGHTING = 0.5
_CORRECTION_WEIGHTING = 1.0  # exponent of the detector's weights that shapes the correction
_MARGINS = np.linspace(0.0, 4.0, 33)  # target margins tried, in units of the mean unit response
_HALF_SIZE_SYNTH_CELL = 10.0  # px per cell from which the mark is synthesised at half size
_MODEL_K = 2  # samples per cell of the embedder's model of the detector (the detector decodes at 4)
_ENOUGH = 8.0  # mean / spread of the scores beyond which more correction buys nothing
# Keyframes (see FrameEmbedder._keymark_for): the host is probed on a coarse grid of about
# _PROBE_SIDE samples on the short side; a probe pixel "changed" when its luma moved by more
# than _PROBE_CHANGE grey levels since the keyframe.
_PROBE_SIDE = 64
_PROBE_CHANGE = 4.0
_MOVED_FRACTION = 0.25  # share of changed probe pixels that makes the host "moved"
_CUT_CHANGE = 50.0  # mean luma change (grey levels) that counts as a cut (different pictures: 70-85;
# a fast pan over 3 frames: up to 46): re-analyse at once
_MIN_KEY_INTERVAL = 4  # frames between keyframes while the host keeps moving
_MAX_KEY_INTERVAL = 100  # frames between keyframes however still the host


# Adding a keyframe's mark is bound by memory bandwidth, so from this many pixels the frame is
# split into bands of rows added on up to ``_ADD_THREADS`` threads (OpenCV releases the GIL).
_PARALLEL_ADD_PIXELS = 900_000
_ADD_THREADS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _add_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_ADD_THREADS, thread_name_prefix="watermark-add")
        return _pool


@dataclass
class _KeyMark:
    """The rounded mark of one keyframe, ready to add: uint8 (H, W, 3) up and down parts."""

    probe: NDArray[Any]  # (h', w') float32 luma of the keyframe on the probe grid
    up: NDArray[Any]
    down: NDArray[Any]
    age: int = 0  # frames since the keyframe


def texture_strength(frame: NDArray[Any], floor: float, ceiling: float) -> NDArray[Any]:
    """Per-pixel embedding strength in grey levels from local texture, float32 (h, w) small:
    ``floor`` on flat areas, rising with texture up to ``ceiling``."""
    step = max(1, min(frame.shape[:2]) // (2 * _MASK_SIDE))
    frame = frame[::step, ::step]  # cheap decimation first: the mask only needs coarse texture
    height, width = frame.shape[:2]
    scale = min(1.0, _MASK_SIDE / min(height, width))
    small = frame if scale == 1.0 else cv2.resize(
        frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    y = luma(small)  # (h, w)
    detail = np.abs(y - cv2.GaussianBlur(y, (0, 0), 1.0))
    activity = cv2.GaussianBlur(detail, (0, 0), 2.0)
    strength: NDArray[Any] = np.clip(floor + _TEXTURE_GAIN * activity, floor, ceiling)
    return strength


def tone_clipped_share(frame: NDArray[Any]) -> float:
    """The share of the luma of ``frame`` (h, w, 3) uint8 that a tone edit that clips
    (brightness +-30, contrast x1.3) wipes out: a channel value under 30 or over 225 counts with
    its luma weight. Cheap (it runs on every keyframe): a count per channel."""
    pixels = frame.shape[0] * frame.shape[1]
    kept = [cv2.countNonZero(cv2.inRange(channel, _CLIP_LOW, _CLIP_HIGH)) / pixels for channel in cv2.split(frame)]  # type: ignore[call-overload]  # OpenCV takes a scalar here; its stubs do not say so
    return 1.0 - float(np.dot(kept, _LUMA_WEIGHTS))


def tone_edited(frame: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any], float]:
    """A model of ``frame`` (h, w, 3) uint8 after a tone edit that clips (brightness +-30,
    contrast x1.3): its luma with the clipped channels at 0 or 255, float32 (h, w); the
    fraction of a luma change (added to R, G and B alike) that survives, per pixel, float32
    (h, w); and the share of the luma the edit clips (``tone_clipped_share``)."""
    rgb = frame.astype(np.float32)
    kept = (frame >= _CLIP_LOW) & (frame <= _CLIP_HIGH)  # (h, w, 3)
    survives = kept.astype(np.float32) @ _LUMA_WEIGHTS
    host = np.where(kept, rgb, np.where(rgb > 127.5, np.float32(255.0), np.float32(0.0))) @ _LUMA_WEIGHTS
    return host.astype(np.float32), survives.astype(np.float32), tone_clipped_share(frame)


class FrameEmbedder:
    """Marks frames of one size with one payload; memory does not grow with video length.

    Per keyframe: a blind part (pilot + a little data, texture-masked) and an informed data
    correction computed against that frame's host (see the module docstring). Frames whose
    host stays close to the last keyframe's reuse its rounded mark, so marking them costs two
    saturating adds (``_keymark_for``).
    """

    def __init__(self, *, key: bytes, height: int, width: int, payload: int, config: EmbedConfig | None = None) -> None:
        as_clip(np.zeros((1, height, width, 3), np.uint8), min_side=MIN_EMBED_SIDE)
        self._config = config = _DEFAULT if config is None else config
        self.height, self.width = height, width
        self._layout = layout = make_layout(key, rows_for_frame(height, width))
        coded = ecc.encode(WatermarkPayload(payload).to_info_bits(keyed_mask(key)))
        self._bit_sign = (2.0 * coded - 1.0).astype(np.float32)  # (N_CODED,)
        cells = layout.cell_signs(coded)  # (rows, cols)
        self._data_cells = np.where(layout.bit_index >= 0, cells, 0).astype(np.float32)  # (rows, cols)
        work_scale = min(1.0, WORK_SIDE / min(height, width))
        self._work_size = (max(1, round(width * work_scale)), max(1, round(height * work_scale)))
        half = height / self._layout.rows >= _HALF_SIZE_SYNTH_CELL
        self._synth_size = (height // 2, width // 2) if half else (height, width)  # (h, w)
        self._bits = np.maximum(layout.bit_index, 0)  # (rows, cols)
        self._is_data = layout.bit_index >= 0
        rng = np.random.default_rng(0)
        self._dither = rng.random((height, width), dtype=np.float32) - 0.5  # (H, W) in [-0.5, 0.5)
        self._probe_step = max(1, min(height, width) // _PROBE_SIDE)
        self._key: _KeyMark | None = None  # the mark of the last keyframe, reused until the host changes
        self.keyframes = 0  # how many frames were analysed (for benchmarks and tests)

    def embed(self, frames: NDArray[Any], *, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Return marked copies of ``frames`` ((T, H, W, 3) or (H, W, 3) uint8, same shape).

        ``out`` (same shape and dtype; may be ``frames`` itself) receives the marked frames
        instead of a new array: a caller that owns its batch marks it in place and saves
        allocating (and page-faulting) a full-size copy per batch.
        """
        clip, single = as_clip(frames, min_side=MIN_EMBED_SIDE)
        if clip.shape[1:3] != (self.height, self.width):
            raise UnsupportedFrames(
                f"frame size changed: expected {self.width}x{self.height}, got {clip.shape[2]}x{clip.shape[1]}"
            )
        if out is None:
            result = np.empty_like(frames)
        elif out.shape != frames.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise UnsupportedFrames(f"out must be a C-contiguous uint8 array shaped {frames.shape}")
        else:
            result = out
        out = result[None] if single else result
        keys = [self._keymark_for(frame) for frame in clip]  # in order: keyframes depend on the last one

        def add(rows: slice) -> None:
            # Saturating uint8 adds of the rounded positive and negative parts, written in place.
            for t, key in enumerate(keys):
                cv2.add(clip[t, rows], key.up[rows], dst=out[t, rows])
                cv2.subtract(out[t, rows], key.down[rows], dst=out[t, rows])

        if _ADD_THREADS > 1 and self.height * self.width >= _PARALLEL_ADD_PIXELS:
            edges = np.linspace(0, self.height, _ADD_THREADS + 1).astype(int)
            bands = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
            for done in [_add_pool().submit(add, band) for band in bands]:
                done.result()
        else:
            add(slice(None))
        return result

    def _keymark_for(self, frame: NDArray[Any]) -> _KeyMark:
        """The mark for ``frame``: the last keyframe's while the host stays close to it.

        Analysing a frame (the informed correction) costs far more than adding a mark, and
        consecutive frames share almost all of their host: a face animated over a still photo
        changes a few percent of the pixels. A new keyframe is analysed when the host moved
        (most probe pixels changed, e.g. a pan: at most every ``_MIN_KEY_INTERVAL`` frames), at
        once after a cut, and at least every ``_MAX_KEY_INTERVAL`` frames.
        """
        step = self._probe_step
        probe = luma(frame[::step, ::step])  # (h / step, w / step), a few thousand pixels
        key = self._key
        if key is not None:
            key.age += 1
            change = np.abs(probe - key.probe)
            moved = float(np.mean(change > _PROBE_CHANGE))
            cut = float(np.mean(change)) > _CUT_CHANGE
            due = key.age >= _MAX_KEY_INTERVAL or (moved > _MOVED_FRACTION and key.age >= _MIN_KEY_INTERVAL)
            if not (cut or due):
                return key
        delta = cv2.add(self.mark(frame), self._dither)  # (H, W); rounds to floor(x + u)
        up = cv2.convertScaleAbs(cv2.max(delta, 0.0))  # type: ignore[call-overload]  # OpenCV takes a scalar here; its stubs do not say so
        down = cv2.convertScaleAbs(cv2.min(delta, 0.0))  # type: ignore[call-overload]
        self._key = _KeyMark(probe=probe, up=cv2.merge([up, up, up]), down=cv2.merge([down, down, down]))
        self.keyframes += 1
        return self._key

    def mark(self, frame: NDArray[Any]) -> NDArray[Any]:
        """The luma change for one frame (H, W, 3) uint8, float32 (H, W), before rounding.

        The analysis runs at the detector's working resolution (what it will see), only
        the final synthesis at full size: two cell renderings and a few multiply-adds.
        """
        layout, h, w = self._layout, self.height, self.width
        work_size = self._work_size
        small = frame if work_size == (w, h) else cv2.resize(frame, work_size, interpolation=cv2.INTER_AREA)
        work = luma(small)  # (h', w'), exactly what the accumulator sums
        weight = equalizer_weights(work, layout.rows, _MODEL_K)  # (rows, cols seen)
        cols = min(weight.shape[1], layout.cols)
        weight = weight[:, :cols] / (float(np.sqrt(np.mean(weight[:, :cols] ** 2))) + 1e-12)

        # Blind part: the pilot (what the detector locks onto) and a share of the data,
        # texture-masked; the pilot leans towards cells the detector weights most.
        pilot_cells = layout.pilot.copy()  # (rows, cols)
        lean = _PILOT_WEIGHTING if layout.rows == LAYOUT_ROWS[0] else 0.0
        pilot_cells[:, :cols] *= (1.0 - lean) + lean * weight
        config = self._config
        floor, ceiling = config.strength(layout.rows)
        strength = texture_strength(frame, floor, ceiling)  # (h'', w'') grey levels, coarse
        max_rms = config.max_rms
        if layout.rows == LAYOUT_ROWS[0]:
            busy = float(np.mean(strength >= 0.98 * ceiling))
            max_rms += (config.max_rms_texture - config.max_rms) * float(np.clip((busy - _BUSY_START) / (_BUSY_FULL - _BUSY_START), 0, 1))
        strength_work = cv2.resize(strength, work_size, interpolation=cv2.INTER_LINEAR)
        data_part = strength_work * render_cells(self._data_cells, *work_size[::-1])  # (h', w') blind data, weight 1
        base = strength_work * render_cells(pilot_cells, *work_size[::-1]) + _BASE_DATA * data_part
        base_rms = float(np.sqrt(np.mean(base**2)))
        gain = min(1.0, _BASE_SHARE * max_rms / base_rms) if base_rms > 0 else 1.0
        base *= gain

        # Informed part: measure what the detector will read, then correct the weak bits; on
        # frames with a backdrop that a tone edit clips, first against the edited frame (tone plan).
        budget = max(0.0, max_rms**2 - float(np.mean(base**2)))
        tone_keep, tone_cells = None, None
        if config.tone_plan(layout.rows) <= tone_clipped_share(small) < _TONE_PLAN_END:
            edited, survives, _ = tone_edited(small)
            tone_keep = survives
            scale, unit_cells, unit_cost = self._plan(edited, survives * base, survives, cols, _TONE_PLAN_SHARE * budget)
            tone_cells = unit_cells * scale[self._bits]
            planned = render_cells(tone_cells, *work_size[::-1]) * survives
            budget = max(0.0, budget - float(np.mean(planned**2)))
            base = base + planned  # what the plan on the frame as it is starts from
        scale, unit_cells, unit_cost = self._plan(work, base, None, cols, budget, weight)
        # Budget the correction did not need goes back to the blind part (up to its natural
        # texture-masked strength): margin against H.264 and edits the model cannot foresee.
        # It raises the blind data weight towards 1 (a fully blind mark, as strong as the pilot).
        spare = budget - float(np.sum(unit_cost * scale**2))
        data_energy = gain**2 * float(np.mean(data_part**2))
        data_weight = _BASE_DATA
        if spare > 0 and data_energy > 0:
            data_weight = min(1.0, float(np.sqrt(_BASE_DATA**2 + spare / data_energy)))

        # Synthesis: everything is smooth at cell scale, so frames whose cells are >= 10 px
        # are synthesised at half size and enlarged once (1080p: 2x faster, same mark).
        blind_cells = pilot_cells + data_weight * self._data_cells  # (rows, cols), disjoint supports
        sh, sw = self._synth_size
        strength_synth = cv2.resize(strength, (sw, sh), interpolation=cv2.INTER_LINEAR)
        delta = cv2.multiply(strength_synth, render_cells(blind_cells, sh, sw), scale=gain)  # (sh, sw)
        correction = (unit_cells * scale[self._bits]).astype(np.float32)
        delta = cv2.add(delta, render_cells(correction, sh, sw))
        if tone_cells is not None:  # the tone plan's correction, only where the edit leaves it
            assert tone_keep is not None  # set with tone_cells
            at_synth = tone_keep if tone_keep.shape == (sh, sw) else cv2.resize(tone_keep, (sw, sh), interpolation=cv2.INTER_AREA)
            delta = cv2.add(delta, cv2.multiply(render_cells(tone_cells.astype(np.float32), sh, sw), at_synth))
        rms = cv2.norm(delta) / np.sqrt(sh * sw)
        if rms > max_rms:  # cross terms the plan ignores
            delta = cv2.multiply(delta, max_rms / rms)
        if (sh, sw) != (h, w):
            delta = cv2.resize(delta, (w, h), interpolation=cv2.INTER_LINEAR)
        # Pixels at the rails clip half of any change and cost SSIM most (a flat black
        # backdrop): they get a fraction of the mark, and the budget left over (PSNR and SSIM
        # alike) goes to the rest of the frame, up to ``_REFILL`` times, then the SSIM guard.
        # Frames mostly exposed to tone changes do the same with those pixels (tone reserve).
        red, green, blue = cv2.split(frame)
        low, high = cv2.min(cv2.min(red, green), blue), cv2.max(cv2.max(red, green), blue)
        railed = (low <= _RAIL) | (high >= 255 - _RAIL)
        exposed = (high < _TONE_DARK) | (low > _TONE_LIGHT)  # a tone change clips these (the tone reserve)
        share = float(np.count_nonzero(exposed)) / exposed.size
        start, full = (_PLAN_TONE_START, _PLAN_TONE_FULL) if tone_cells is not None else (config.tone_start, _TONE_FULL)
        ramp = min(1.0, (share - start) / (full - start)) if share > start else 0.0
        refill = _REFILL + ramp * (_TONE_REFILL - _REFILL)
        if ramp > 0.0 or railed.any():  # one weight map for both: rails first, then the reserve
            keep = np.float32(1.0 - ramp * (1.0 - _TONE_WEIGHT))
            weight = np.where(railed, np.float32(_RAIL_WEIGHT), np.where(exposed, keep, np.float32(1.0)))
            delta = cv2.multiply(delta, weight)
        rms = cv2.norm(delta) / np.sqrt(h * w)
        if 0.0 < rms < max_rms:
            delta = cv2.multiply(delta, min(refill, max_rms / rms))
        return _ssim_guard(frame, delta, self._dither, config.min_ssim)  # (H, W)

    def _plan(self, host: NDArray[Any], base: NDArray[Any], keep: NDArray[Any] | None, cols: int, budget: float,
              weight: NDArray[Any] | None = None) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """Plan the informed correction against the detector's model of ``host + base`` (h', w'),
        a unit of correction counting ``keep`` times where given (the tone plan: the share of a
        luma change an edit leaves; the caller scales ``base`` alike). Returns the units per
        coded bit (N_CODED,), the unit correction's cells (rows, cols) and each bit's energy per
        unit squared (N_CODED,). ``weight``: the detector's cell weights on ``host`` (rows,
        cols) normalised to RMS 1, if already known."""
        layout, work_size, sign = self._layout, self._work_size, self._bit_sign
        if weight is None:
            weight = equalizer_weights(host, layout.rows, _MODEL_K)[:, :cols]
            weight = weight / (float(np.sqrt(np.mean(weight**2))) + 1e-12)
        before = origin_scores(host + base, layout, _MODEL_K) * sign  # (N_CODED,)
        shape = weight if _CORRECTION_WEIGHTING == 1.0 else weight**_CORRECTION_WEIGHTING
        unit_cells = np.zeros_like(self._data_cells)
        unit_cells[:, :cols] = np.where(self._is_data[:, :cols], self._data_cells[:, :cols] * shape, 0.0)
        unit = render_cells(unit_cells, *work_size[::-1])  # (h', w') one unit of correction on every bit
        if keep is not None:
            unit = unit * keep
        after = origin_scores(host + base + unit, layout, _MODEL_K) * sign
        response = np.maximum(after - before, 0.05 * float(np.mean(np.abs(after - before))) + 1e-6)
        bit_energy = np.bincount(self._bits[self._is_data], weights=unit_cells[self._is_data] ** 2,
                                 minlength=len(sign))
        unit_cost = float(np.mean(unit**2)) * bit_energy / (float(bit_energy.sum()) + 1e-12)
        return _plan_correction(before, response, unit_cost, budget), unit_cells, unit_cost


def channel_ssim(x: NDArray[Any], delta: NDArray[Any], dither: NDArray[Any] | None = None) -> float:
    """Mean SSIM between one channel ``x`` and ``x + delta`` (float32 (H, W)), as skimage
    computes it by default: 7x7 uniform windows, sample covariances, K1 = 0.01, K2 = 0.03,
    range 255, the 3-pixel border left out. With ``dither`` (H, W), the change is rounded and
    clipped to 0..255 as the embedder writes it (``round(delta + dither)``, saturating)."""
    c1, c2, norm = (0.01 * 255) ** 2, (0.03 * 255) ** 2, 49.0 / 48.0
    if dither is None:
        z = cv2.add(x, delta)
    else:
        z = np.clip(x + np.round(delta + dither), 0.0, 255.0).astype(np.float32)
    mx, mz = cv2.blur(x, (7, 7)), cv2.blur(z, (7, 7))
    vx = norm * (cv2.blur(x * x, (7, 7)) - mx * mx)
    vz = norm * (cv2.blur(z * z, (7, 7)) - mz * mz)
    vxz = norm * (cv2.blur(x * z, (7, 7)) - mx * mz)
    s = ((2 * mx * mz + c1) * (2 * vxz + c2)) / ((mx * mx + mz * mz + c1) * (vx + vz + c2))
    return float(np.mean(s[3:-3, 3:-3])) if min(s.shape) > 6 else float(np.mean(s))


def frame_ssim(frame: NDArray[Any], delta: NDArray[Any], dither: NDArray[Any] | None = None) -> float:
    """SSIM of an RGB frame (H, W, 3) uint8 against ``frame + delta`` on every channel, the mean
    over R, G and B (the quality target's measure), without rounding or clipping. Frames over
    ``_SSIM_FULL_PIXELS`` are estimated from evenly spaced bands of rows: a quarter of the
    rows, a quarter of the time, within 0.001 of the whole frame's value on the test pictures.
    ``dither``: measure the rounded, clipped result instead (see ``channel_ssim``)."""
    h = frame.shape[0]
    if frame.shape[0] * frame.shape[1] <= _SSIM_FULL_PIXELS or h < 4 * _SSIM_BAND:
        bands = [slice(0, h)]
    else:
        bands = [slice(r, r + _SSIM_BAND) for r in np.linspace(0, h - _SSIM_BAND, h // (4 * _SSIM_BAND)).astype(int)]
    return float(np.mean([channel_ssim(frame[b, :, c].astype(np.float32), delta[b], None if dither is None else dither[b])
                          for b in bands for c in range(3)]))


def _ssim_guard(frame: NDArray[Any], delta: NDArray[Any], dither: NDArray[Any] | None = None,
                min_ssim: float = EmbedConfig.min_ssim) -> NDArray[Any]:
    """Scale ``delta`` down, if needed, so that ``frame_ssim(frame, delta, dither) >= min_ssim``
    (with the embedder's ``dither``: the SSIM of the frame it will actually write; rounding
    costs up to 0.002 on smooth pictures, and clipping at 0 and 255 gives some back).

    The RMS cap bounds PSNR whatever the picture; SSIM is lost mostly where a channel is
    smooth (a plain backdrop, or a dark channel such as the blue of a brown picture), and
    such pictures can fall below the 0.98 target at the small layout's strength floor. SSIM's
    loss grows about with the square of the mark's amplitude, so one scaling by
    sqrt(target loss / loss), then a check, nearly always suffices (rounding adds a loss that
    does not scale, hence up to three passes).
    """
    for _ in range(3):
        loss = 1.0 - frame_ssim(frame, delta, dither)
        if loss <= 1.0 - min_ssim:
            break
        delta = cv2.multiply(delta, float(np.sqrt((1.0 - min_ssim) / loss)) * 0.98)  # type: ignore[call-overload]  # OpenCV takes a scalar here; its stubs do not say so
    return delta


def _plan_correction(before: NDArray[Any], response: NDArray[Any], unit_cost: NDArray[Any], budget: float) -> NDArray[Any]:
    """How many units of correction each coded bit gets, float (N_CODED,).

    For each target margin, bits below it are lifted to it cheapest first until the energy
    budget is spent; the margin whose resulting scores have the best mean / spread (what
    the soft Viterbi decoder cares about) wins, or the smallest margin that is already
    plenty (``_ENOUGH``), which keeps strong marks from spending energy they do not need.
    Bits the host already favours get nothing. All margins at once: (M, N_CODED) arrays.
    """
    margins = _MARGINS[:, None] * float(np.mean(response))  # (M, 1)
    need = np.maximum(0.0, margins - before[None, :]) / response[None, :]  # (M, N)
    cost = unit_cost[None, :] * need**2
    order = np.argsort(cost, axis=1)
    spent = np.cumsum(np.take_along_axis(cost, order, axis=1), axis=1)  # (M, N)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    n_fixed = (spent <= budget).sum(axis=1)  # (M,)
    scale = np.where(ranks < n_fixed[:, None], need, 0.0)  # (M, N)
    final = before[None, :] + response[None, :] * scale
    quality = final.mean(axis=1) / (final.std(axis=1) + 1e-9)  # (M,)
    enough = np.flatnonzero(quality >= _ENOUGH)
    chosen: NDArray[Any] = scale[int(enough[0]) if len(enough) else int(np.argmax(quality))]
    return chosen
