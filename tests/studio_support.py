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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(port: int, proc, *, timeout: float = 240.0) -> None:  # noqa: ANN001 - subprocess.Popen
    """Poll http://127.0.0.1:port/ until it answers; fail if the server process exits first."""
    import http.client
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"the server exited early with code {proc.returncode}")
        time.sleep(0.5)
    pytest.fail("the server did not come up")
