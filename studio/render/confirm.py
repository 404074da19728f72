"""Today's watermark confirmation, in one place: the render's only calls into the detector.

Two checks, each one call from the render: ``confirm_first_frames`` on the first marked batch
(before encoding) and ``read_back`` on the encoded file. Both are meant to give way to the
watermark package's own ``Watermarker.confirm()`` / ``Watermarker.read_back()``; until then the
frame counts and the luma handling live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from studio import media
from studio.errors import WatermarkNotConfirmed

if TYPE_CHECKING:  # pragma: no cover
    from watermark import Watermarker

# Frames the read-back check has read when it asks the detector (the mark is in every frame):
# an unaltered file reads from the first few without a search (the detector's untouched-geometry
# stage), and more frames are read only if they do not.
_CHECK_POINTS = (4, 16, 64)


@dataclass(frozen=True)
class ReadBack:
    """The encoded file's mark as read back: its confidence and how many frames were read."""

    confidence: float
    frames_checked: int


def confirm_first_frames(marker: "Watermarker", marked: np.ndarray, payload: int) -> None:
    """Raise ``WatermarkNotConfirmed`` unless the first marked batch ``(B, H, W, 3)`` carries ``payload``.

    Does the mark hold on this picture at all? A photo that is fine texture everywhere (grass,
    gravel) behind the face can leave it too little room even before encoding; stopping here
    saves animating the whole clip for nothing.
    """
    first = marker.accumulator()
    # Luma at full size first (one SIMD pass), then the detector's own shrink of a luma plane:
    # 30 % cheaper at 1080p than shrinking the RGB frames.
    first.add_luma(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in marked]))
    if not first.confirms(payload):
        raise WatermarkNotConfirmed(
            "the first frames did not read back with their watermark (before encoding); "
            "the render was stopped and nothing was delivered"
        )


def read_back(marker: "Watermarker", encoded: Path, payload: int) -> ReadBack:
    """Decode ``encoded`` and detect; raise ``WatermarkNotConfirmed`` unless it carries ``payload``."""
    acc = marker.accumulator()
    # The detector reads brightness at ~320 px, so the read-back takes the decoder's luma plane
    # as it is (no colour conversion, no second probe of a file written just now) and stops
    # early; it still reads the delivered bytes. The first frames almost always suffice; more
    # are read only if they do not.
    checked, detection = 0, None
    for plane in media.luma_planes(encoded):
        acc.add_luma(plane)
        checked += 1
        if checked in _CHECK_POINTS:
            detection = acc.result()
            if detection.payload == payload or checked == _CHECK_POINTS[-1]:
                break
            detection = None  # read on
    if detection is None:
        detection = acc.result()  # a clip shorter than the next check point
    if detection.payload != payload:
        raise WatermarkNotConfirmed("the rendered video did not read back with its watermark; it was discarded")
    return ReadBack(confidence=float(detection.confidence), frames_checked=checked)
