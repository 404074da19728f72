"""Invisible watermark (keyed, error-corrected, robust) and C2PA provenance for studio outputs.

Example::

    import numpy as np
    from watermark import Watermarker

    wm = Watermarker(b"a studio secret of 16+ bytes")
    clip = np.random.default_rng(0).integers(0, 256, (4, 256, 256, 3), dtype=np.uint8)
    marked = wm.embed(clip, payload=0xC0FFEE)
    assert wm.detect(marked).payload == 0xC0FFEE
"""

from watermark.detect import Detection
from watermark.payload import WatermarkPayload
from watermark.watermarker import Watermarker

__all__ = ["Detection", "WatermarkPayload", "Watermarker"]
