"""Size and duration limits for uploads, shared by the image and video readers."""

MAX_SIDE = 4096
"""Largest width or height accepted for images and videos (4K DCI)."""

MAX_IMAGE_PIXELS = 40_000_000
"""Largest image area accepted, checked from the header before decoding."""

MAX_VIDEO_SECONDS = 20 * 60.0
"""Default longest driving video; the pipeline may pass its own limit."""
