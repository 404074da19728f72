"""Keyed spread-spectrum embedding on luma with texture masking.

For one frame size and payload the mark is fixed: ``pattern (H, W)`` is the bilinear
rendering of the layout's +-1 cells (see ``_pattern``). Each frame adds
``strength (H, W) * pattern`` to R, G and B alike, which changes luma by exactly that
amount and leaves chroma alone. ``strength`` follows local texture, measured at low
resolution: flat skin and sky get about 1 grey level, busy texture up to 6, and the frame
is then scaled down if needed so the RMS change stays under ``_MAX_RMS`` (PSNR >= 42 dB).
Rounding to integers uses a fixed ordered dither so that amplitudes below half a grey
level survive on average instead of rounding to zero.
"""

from __future__ import annotations

import cv2
import numpy as np

from watermark import ecc
from watermark._pattern import keyed_mask, make_layout, render_cells, rows_for_frame
from watermark.errors import UnsupportedFrames
from watermark.frames import MIN_EMBED_SIDE, as_clip, luma
from watermark.payload import WatermarkPayload

_MASK_SIDE = 192  # short side of the image the texture mask is computed on
_MIN_STRENGTH = 1.0
_MAX_STRENGTH = 6.0
_TEXTURE_GAIN = 0.6
_MAX_RMS = 1.9  # grey levels; PSNR = 20 log10(255 / RMS) >= 42.5 dB with rounding


def texture_strength(frame: np.ndarray) -> np.ndarray:
    """Per-pixel embedding strength in grey levels from local texture, float32 (h, w) small."""
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
    return np.clip(_MIN_STRENGTH + _TEXTURE_GAIN * activity, _MIN_STRENGTH, _MAX_STRENGTH)


class FrameEmbedder:
    """Marks frames of one size with one payload; memory does not grow with video length."""

    def __init__(self, *, key: bytes, height: int, width: int, payload: int) -> None:
        as_clip(np.zeros((1, height, width, 3), np.uint8), min_side=MIN_EMBED_SIDE)
        self.height, self.width = height, width
        layout = make_layout(key, rows_for_frame(height, width))
        coded = ecc.encode(WatermarkPayload(payload).to_info_bits(keyed_mask(key)))
        self.pattern = render_cells(layout.cell_signs(coded), height, width)  # (H, W) float32
        self._pattern_power = float(np.mean(self.pattern**2))
        rng = np.random.default_rng(0)
        self._dither = rng.random((height, width), dtype=np.float32) - 0.5  # (H, W) in [-0.5, 0.5)

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """Return marked copies of ``frames`` ((T, H, W, 3) or (H, W, 3) uint8, same shape)."""
        clip, single = as_clip(frames, min_side=MIN_EMBED_SIDE)
        if clip.shape[1:3] != (self.height, self.width):
            raise UnsupportedFrames(
                f"frame size changed: expected {self.width}x{self.height}, got {clip.shape[2]}x{clip.shape[1]}"
            )
        out = np.empty_like(clip)
        for t, frame in enumerate(clip):
            out[t] = self._embed_frame(frame)
        return out[0] if single else out

    def _embed_frame(self, frame: np.ndarray) -> np.ndarray:
        small = texture_strength(frame)  # (h, w) grey levels
        rms = float(np.sqrt(np.mean(small**2) * self._pattern_power))
        gain = min(1.0, _MAX_RMS / rms) if rms > 0 else 1.0
        strength = cv2.resize(small * gain, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        # Saturating uint8 adds of the positive and negative parts: 10x faster than int16 numpy.
        delta = cv2.add(cv2.multiply(strength, self.pattern), self._dither)  # (H, W); rounds to floor(x + u)
        up = cv2.convertScaleAbs(cv2.max(delta, 0.0))
        down = cv2.convertScaleAbs(cv2.min(delta, 0.0))
        return cv2.subtract(cv2.add(frame, cv2.merge([up, up, up])), cv2.merge([down, down, down]))
