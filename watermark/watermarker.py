"""The one object the studio uses: a keyed embedder and detector, and its confirmation policy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from watermark.accumulator import Accumulator
from watermark.config import DetectConfig, EmbedConfig
from watermark.decode import Detection
from watermark.embed import FrameEmbedder
from watermark.errors import UnsupportedFrames, WeakWatermarkKey
from watermark.frames import MIN_DETECT_SIDE, MIN_EMBED_SIDE, as_clip

MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class ReadBack:
    """The outcome of ``Watermarker.read_back``: whether the expected payload was read, from how
    many frames, and the detection that decided it (``confidence`` is its confidence)."""

    found: bool
    frames_used: int
    confidence: float
    detection: Detection


class Watermarker:
    """Embeds and detects a 48-bit payload under a secret key.

    Without the key the pattern is indistinguishable from noise and cannot be read,
    and a detector holding another key finds nothing. ``embed_config`` and ``detect_config``
    are the tuning (the shipped values by default; a benchmark passes others).
    """

    def __init__(self, key: bytes, *, embed_config: EmbedConfig | None = None,
                 detect_config: DetectConfig | None = None) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
            raise WeakWatermarkKey(f"the watermark key must be at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)
        self.embed_config = EmbedConfig() if embed_config is None else embed_config
        self.detect_config = DetectConfig() if detect_config is None else detect_config

    def embedder(self, height: int, width: int, payload: int) -> FrameEmbedder:
        """A streaming embedder for frames of one size; ``.embed(chunk)`` marks each chunk."""
        return FrameEmbedder(key=self._key, height=height, width=width, payload=payload, config=self.embed_config)

    def accumulator(self) -> Accumulator:
        """A streaming detector: ``.add(chunk)`` for every chunk, then ``.result()``."""
        return Accumulator(key=self._key, config=self.detect_config)

    def embed(self, frames: NDArray[Any], payload: int) -> NDArray[Any]:
        """Marked copy of ``frames`` ((T, H, W, 3) or (H, W, 3) uint8) carrying ``payload``."""
        clip, _ = as_clip(frames, min_side=MIN_EMBED_SIDE)
        return self.embedder(clip.shape[1], clip.shape[2], payload).embed(frames)

    def detect(self, frames: NDArray[Any]) -> Detection:
        """Read the payload from all ``frames`` together; ``payload`` is None if absent."""
        acc = self.accumulator()
        acc.add(frames)
        return acc.result()

    def confirm(self, marked: NDArray[Any], payload: int) -> bool:
        """Whether freshly marked frames ((T, H, W, 3) or (H, W, 3) uint8, e.g. a producer's first
        batch, before encoding) carry ``payload`` where an untouched copy carries it.

        A cheap check (``Accumulator.confirms``: one decode per view, no search) that the mark
        holds on this picture at all; a photo that is fine texture everywhere can leave it too
        little room. Not a detection: it is told the payload and looks at one geometry.
        """
        clip, _ = as_clip(marked, min_side=MIN_DETECT_SIDE)
        acc = self.accumulator()
        # Luma at full size first (one SIMD pass), then the detector's own shrink of a luma
        # plane: 30 % cheaper at 1080p than shrinking the RGB frames.
        acc.add_luma(np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in clip]))
        return acc.confirms(payload)

    def read_back(self, frames: Iterable[NDArray[Any]], payload: int) -> ReadBack:
        """Read ``payload`` back from a written copy's frames, reading only as many as it needs.

        ``frames`` yields the copy's frames in order, each a luma plane (H, W) uint8 (a
        decoder's Y plane: no colour conversion needed) or an RGB frame (H, W, 3) uint8, all of
        one kind. The detector is asked after ``detect_config.read_back_points`` frames; reading stops at the
        first point where the payload is read, and at the last point. A copy shorter than the
        next point is judged on all its frames. An iterator with ``close()`` (a generator over
        an open file) is closed when reading stops.
        """
        points = self.detect_config.read_back_points
        acc = self.accumulator()
        used, last, rgb = 0, None, None
        try:
            for frame in frames:
                frame_rgb = isinstance(frame, np.ndarray) and frame.ndim == 3
                if rgb is None:
                    rgb = frame_rgb
                elif rgb != frame_rgb:
                    raise UnsupportedFrames("read_back takes luma planes or RGB frames, not both")
                if rgb:
                    acc.add(frame)
                else:
                    acc.add_luma(frame)
                used += 1
                if used in points:
                    last = (used, acc.result())
                    if last[1].payload == payload or used == points[-1]:
                        break
        finally:
            close = getattr(frames, "close", None)
            if callable(close):
                close()
        # A copy that ended between two points is judged on every frame it had.
        detection = last[1] if last is not None and last[0] == used else acc.result()
        found = detection.payload == payload
        return ReadBack(found=found, frames_used=used, confidence=float(detection.confidence), detection=detection)
