"""Tuning of the watermark: what a benchmark may vary, with the shipped values as defaults.

``EmbedConfig`` holds the embedder's strength limits, ``DetectConfig`` the detector's search
budget and the read-back policy. Both are frozen: pass a changed copy
(``dataclasses.replace``) to ``Watermarker``; nothing is changed in place. What the detector's
signal model fixes (sampling, whitening, equalisation) is shared by the embedder's model of the
detector and stays in ``watermark.signal``. docs/watermark.md and docs/watermark-history.md
have the measurements behind the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from watermark._pattern import LAYOUT_ROWS


@dataclass(frozen=True)
class EmbedConfig:
    """How strong the mark may be.

    ``strength_range`` per layout (``LAYOUT_ROWS`` order): grey levels (flat areas, busiest
    texture); small frames get a narrower range, where H.264 erases faint marks in flat areas.
    ``max_rms``: the RMS cap in grey levels (PSNR >= 42.3 dB before rounding);
    ``max_rms_texture``: the cap for frames under 600 px that are dense texture throughout
    (PSNR >= 38.9 dB); ``min_ssim``: the SSIM floor per frame (mean over R, G, B).
    ``tone_start``: the share of a frame near black or white (a tone edit clips it) from which
    the tone reserve moves the mark off those pixels; ``tone_plan_start`` per layout: the share
    of the luma a tone edit clips from which half the correction is planned on the edited frame.
    """

    strength_range: tuple[tuple[float, float], ...] = ((1.5, 3.0), (1.0, 6.0))
    max_rms: float = 1.95
    max_rms_texture: float = 2.9
    min_ssim: float = 0.9805
    tone_start: float = 0.6
    tone_plan_start: tuple[float, ...] = (0.35, 0.6)

    def __post_init__(self) -> None:
        if len(self.strength_range) != len(LAYOUT_ROWS) or len(self.tone_plan_start) != len(LAYOUT_ROWS):
            raise ValueError(f"strength_range and tone_plan_start need one entry per layout ({len(LAYOUT_ROWS)})")

    def strength(self, rows: int) -> tuple[float, float]:
        """The (flat, busiest) strength of the layout with ``rows`` rows."""
        return self.strength_range[LAYOUT_ROWS.index(rows)]

    def tone_plan(self, rows: int) -> float:
        """``tone_plan_start`` of the layout with ``rows`` rows."""
        return self.tone_plan_start[LAYOUT_ROWS.index(rows)]


@dataclass(frozen=True)
class DetectConfig:
    """The detector's search and its CRC budget, and the read-back policy.

    Every CRC check of a word decoded from noise passes with probability 2**-24, so the
    false-payload rate per clip stays below ``max_crc_checks * 2**-24``.
    """

    # Stage 0: CRC checks at the untouched geometry (one word per view), before any search.
    unmoved_checks: int = 3
    # Words checked per decode attempt of the search, best candidate first: the upright stage,
    # then the rotated stage (only reached when no upright candidate decodes).
    list_sizes: tuple[tuple[int, ...], ...] = ((7, 1, 1, 1), (1, 1, 1))
    # How an attempt's checks spread over its best fine positions: (list size, checks per position).
    plans: tuple[tuple[int, tuple[int, ...]], ...] = ((7, (3, 1, 1, 1, 1)),)
    min_scale: float = 0.84  # smallest fraction of the original height a copy may show (crop ~70 % area)
    angles: tuple[float, ...] = (0.0, -1.0, 1.0, -2.0, 2.0)  # degrees
    min_scale_rotated: float = 0.95  # rotated copies are searched only near full size
    # Rotated candidates are decoded only above this sync score (unmarked crops reach about 7.3).
    min_rotated_z: float = 8.0
    coarse: int = 2  # the first pass visits every second scale, then refines around its best hits
    margin: int = 2  # samples of offset searched beyond the frame edge
    upright_peaks: int = 2  # pilot peaks kept per view, layout and scale in the upright search
    rerank: int = 32  # upright candidates re-ranked with the data cells before decoding
    fine_span: float = 0.6  # scales the decode step tries around a hit, in coarse scale steps ...
    fine_step: float = 0.15  # ... and its step
    # Frames a read-back has read when it asks the detector: an unaltered copy reads from the
    # first few at the untouched geometry; more are read only if they do not.
    read_back_points: tuple[int, ...] = (4, 16, 64)

    def __post_init__(self) -> None:
        if any(sum(plan) != size for size, plan in self.plans):
            raise ValueError("each plan spreads exactly its list size of checks")
        if not self.read_back_points or list(self.read_back_points) != sorted(set(self.read_back_points)):
            raise ValueError("read_back_points must be increasing frame counts")

    @property
    def max_crc_checks(self) -> int:
        """CRC checks per clip at most: the false-payload bound's factor (16 by default)."""
        return self.unmoved_checks + sum(sum(sizes) for sizes in self.list_sizes)

    def plan(self, list_size: int) -> tuple[int, ...]:
        """Checks per fine position for an attempt of ``list_size`` checks, best position first."""
        return dict(self.plans).get(list_size, (list_size,))
