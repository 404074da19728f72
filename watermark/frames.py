"""Input checks shared by embedding and detection (precise errors, no silent coercion)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from watermark.errors import FrameTooSmall, UnsupportedFrames

MIN_EMBED_SIDE = 128
MIN_DETECT_SIDE = 64
MAX_ASPECT_RATIO = 3.9  # width / height; the keyed layouts are four frame heights wide


def as_clip(frames: NDArray[Any], *, min_side: int) -> tuple[NDArray[Any], bool]:
    """Return ``(clip (T, H, W, 3) uint8, was_single_image)`` or raise a specific error."""
    if not isinstance(frames, np.ndarray):
        raise UnsupportedFrames(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise UnsupportedFrames(f"frames must be 8-bit (uint8), got {frames.dtype}")
    single = frames.ndim == 3
    if frames.ndim not in (3, 4):
        raise UnsupportedFrames(f"frames must be shaped (T, H, W, 3) or (H, W, 3), got {frames.ndim} dimensions")
    clip = frames[None] if single else frames
    if clip.shape[-1] != 3:
        raise UnsupportedFrames(f"frames must be RGB with 3 channels, got {clip.shape[-1]}")
    if clip.shape[0] == 0 or clip.shape[1] == 0 or clip.shape[2] == 0:
        raise UnsupportedFrames("there are no frames (empty array)")
    height, width = clip.shape[1:3]
    if min(height, width) < min_side:
        raise FrameTooSmall(f"frames of {width}x{height} px are too small: both sides must be at least {min_side} px")
    if width / height > MAX_ASPECT_RATIO:
        raise UnsupportedFrames(f"frames of {width}x{height} px are too wide (aspect ratio above {MAX_ASPECT_RATIO}:1)")
    return clip, single


def luma(rgb: NDArray[Any]) -> NDArray[Any]:
    """BT.601 luma of uint8 RGB (..., 3) as float32 (...)."""
    f = rgb.astype(np.float32)
    y: NDArray[Any] = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return y
