"""Blind detection: aggregate luma over frames, search scale/rotation/offset, decode.

This module names the detector's public parts; they live by concept in ``signal`` (the
signal maths), ``accumulator`` (frames in), ``search`` (geometry) and ``decode`` (words and
the CRC budget), with their tuning in ``config.DetectConfig``.

All frames of one clip share one geometry (a re-encode, crop or resize treats every
frame alike), so the average luma carries the sum of every frame's mark while moving
content averages toward a blur. The accumulator therefore keeps one running sum of
luma at a small working resolution (memory independent of clip length), and the
expensive part, the geometric search, runs once per clip:

1. For each layout and candidate scale ``s`` (the fraction of the original height this
   copy shows) and small rotation, resample the average to ``K_SEARCH`` samples per cell and
   whiten it (subtract a Gaussian blur: the host image is smooth at cell scale, the chips
   are not).
2. Cross-correlate with the whitened pilot via FFT over every offset a crop allows; the
   peak's normalised height ``z`` ranks candidates; the best upright ones are re-ranked by
   ``z`` plus what the data cells say there (``search.rerank``).
3. For the best few candidates, refine the offset at finer sampling, sum each coded bit's
   chips into a soft score, list-decode and check the CRC on each word of the list. The
   first word that passes wins.

Before step 1, the untouched geometry (an unaltered copy's) is decoded on its own, one word
per view (``decode._unmoved_first``); the search runs only if none of those words passes.

Every CRC check of a word decoded from noise passes with probability 2**-24, so the
detector makes at most ``MAX_CRC_CHECKS`` checks per clip (``DetectConfig.unmoved_checks`` and
``list_sizes``: the list is long only for the best candidate of the upright stage) and the
false-payload rate stays below ``MAX_CRC_CHECKS * 2**-24`` = 9.5e-7 per clip (see
docs/watermark.md).
"""

from watermark.accumulator import Accumulator
from watermark.config import DetectConfig
from watermark.decode import MAX_CRC_CHECKS, Detection, search_and_decode

__all__ = ["MAX_CRC_CHECKS", "Accumulator", "DetectConfig", "Detection", "search_and_decode"]
