"""The render's two watermark checks, each turning the watermark's answer into a refusal.

The policy (which frames, how many, luma handling) is the watermark package's own:
``Watermarker.confirm()`` on the first marked batch before encoding, and
``Watermarker.read_back()`` on the encoded file's luma planes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from studio import media
from studio.errors import WatermarkNotConfirmed

if TYPE_CHECKING:  # pragma: no cover
    from watermark import Watermarker


@dataclass(frozen=True)
class ReadBack:
    """The encoded file's mark as read back: its confidence and how many frames were read."""

    confidence: float
    frames_checked: int


def confirm_first_frames(marker: Watermarker, marked: np.ndarray, payload: int) -> None:
    """Raise ``WatermarkNotConfirmed`` unless the first marked batch ``(B, H, W, 3)`` carries ``payload``.

    A photo that is fine texture everywhere (grass, gravel) behind the face can leave the mark too
    little room even before encoding; stopping here saves animating the whole clip for nothing.
    """
    if not marker.confirm(marked, payload):
        raise WatermarkNotConfirmed(
            "the first frames did not read back with their watermark (before encoding); "
            "the render was stopped and nothing was delivered"
        )


def read_back(marker: Watermarker, encoded: Path, payload: int) -> ReadBack:
    """Decode ``encoded`` and detect; raise ``WatermarkNotConfirmed`` unless it carries ``payload``."""
    # The decoder's luma planes as they are: no colour conversion, no second probe of a file
    # written just now; the watermark reads as few of the delivered frames as it needs.
    read = marker.read_back(media.luma_planes(encoded), payload)
    if not read.found:
        raise WatermarkNotConfirmed("the rendered video did not read back with its watermark; it was discarded")
    return ReadBack(confidence=float(read.confidence), frames_checked=read.frames_used)
