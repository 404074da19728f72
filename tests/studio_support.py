"""Helpers for the studio-level tests: a real pipeline in a temporary data folder with the
demo material (astronaut credential, synthetic driving clip) made by the product itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from studio.config import StudioConfig


def small_pipeline(home: Path, **overrides):
    from studio.pipeline import RenderPipeline

    config = StudioConfig(home=home, **overrides)
    return RenderPipeline.from_config(config)


def short_driving_clip(path: Path, image: np.ndarray, *, frames: int = 12, size: int = 256) -> Path:
    """A short synthetic driving clip (moving astronaut head) with a sine-wave audio track."""
    from PIL import Image

    from models.synthetic import make_driving_clip
    from studio import media

    head = image[0:320, 60:380]  # head and shoulders, so the face stays >= 64 px at small sizes
    small = np.asarray(Image.fromarray(head).resize((size, size), Image.BILINEAR))
    clip, _ = make_driving_clip(small, frames=frames)
    media.write_video(path, clip, fps=25)
    return path
