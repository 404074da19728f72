"""Size and duration limits for uploads, shared by the image and video readers."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SIDE = 4096
"""Largest width or height accepted for images and videos (4K DCI)."""

MAX_IMAGE_PIXELS = 40_000_000
"""Largest image area accepted, checked from the header before decoding."""

MAX_VIDEO_SECONDS = 20 * 60.0
"""Default longest driving video; the pipeline may pass its own limit."""

MAX_FPS = 120.0
"""Highest frame rate accepted, declared or decoded."""


@dataclass(frozen=True, kw_only=True)
class DecodedLimits:
    """Limits checked on the frames as they are decoded, whatever the file's header declares.

    ``seconds`` bounds the clip's length measured two ways (frames counted at ``fps``, the rate
    the output is written at, and the span of the decoded timestamps); ``seconds_source`` names
    who set it, for the message ("the consent", "the studio's limit"). ``frames`` bounds the
    count outright (None: ``seconds`` x ``fps``); ``max_fps`` bounds the rate the timestamps
    show; ``max_side`` the decoded picture.
    """

    seconds: float = MAX_VIDEO_SECONDS
    seconds_source: str = "the studio's limit"
    frames: int | None = None
    max_fps: float = MAX_FPS
    max_side: int = MAX_SIDE
