"""Invisible watermark (keyed, error-corrected, robust) and C2PA provenance for studio outputs.

Example::

    import numpy as np
    from watermark import Watermarker

    wm = Watermarker(b"a studio secret of 16+ bytes")
    clip = np.random.default_rng(0).integers(0, 256, (4, 256, 256, 3), dtype=np.uint8)
    marked = wm.embed(clip, payload=0xC0FFEE)
    assert wm.detect(marked).payload == 0xC0FFEE
"""

from typing import TYPE_CHECKING, Any

__all__ = ["Detection", "WatermarkPayload", "Watermarker"]

if TYPE_CHECKING:  # pragma: no cover
    from watermark.decode import Detection
    from watermark.payload import WatermarkPayload
    from watermark.watermarker import Watermarker


def __getattr__(name: str) -> Any:
    # Lazy: `import watermark.errors` (done by every CLI start) must not pull in scipy and cv2.
    if name == "Detection":
        from watermark.decode import Detection

        return Detection
    if name == "WatermarkPayload":
        from watermark.payload import WatermarkPayload

        return WatermarkPayload
    if name == "Watermarker":
        from watermark.watermarker import Watermarker

        return Watermarker
    raise AttributeError(f"module 'watermark' has no attribute {name!r}")
