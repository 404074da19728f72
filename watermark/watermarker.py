"""The one object the studio uses: a keyed embedder and detector."""

from __future__ import annotations

import numpy as np

from watermark.detect import Accumulator, Detection
from watermark.embed import FrameEmbedder
from watermark.errors import WeakWatermarkKey
from watermark.frames import MIN_EMBED_SIDE, as_clip

MIN_KEY_BYTES = 16


class Watermarker:
    """Embeds and detects a 48-bit payload under a secret key.

    Without the key the pattern is indistinguishable from noise and cannot be read,
    and a detector holding another key finds nothing.
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
            raise WeakWatermarkKey(f"the watermark key must be at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)

    def embedder(self, height: int, width: int, payload: int) -> FrameEmbedder:
        """A streaming embedder for frames of one size; ``.embed(chunk)`` marks each chunk."""
        return FrameEmbedder(key=self._key, height=height, width=width, payload=payload)

    def accumulator(self) -> Accumulator:
        """A streaming detector: ``.add(chunk)`` for every chunk, then ``.result()``."""
        return Accumulator(key=self._key)

    def embed(self, frames: np.ndarray, payload: int) -> np.ndarray:
        """Marked copy of ``frames`` ((T, H, W, 3) or (H, W, 3) uint8) carrying ``payload``."""
        clip, _ = as_clip(frames, min_side=MIN_EMBED_SIDE)
        return self.embedder(clip.shape[1], clip.shape[2], payload).embed(frames)

    def detect(self, frames: np.ndarray) -> Detection:
        """Read the payload from all ``frames`` together; ``payload`` is None if absent."""
        acc = self.accumulator()
        acc.add(frames)
        return acc.result()
