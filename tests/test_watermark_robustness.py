"""The mark survives the common edits at small size (real libx264 through PyAV, real JPEG).

Clips pan across public-domain skimage photos, so content moves under a static mark as it
does in real footage. 256 px clips cover the geometric and pixel attacks; H.264 runs on a
short 720p clip, where the studio's outputs live (see docs/watermark.md for 256 px H.264).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from studio.media.attacks import ATTACKS, panning_clip
from watermark import Watermarker

KEY = b"studio-secret-for-tests-0123456789"
PAYLOAD = 0x1234_5678_9ABC


@pytest.fixture(scope="module")
def wm() -> Watermarker:
    cv2.setNumThreads(1)
    return Watermarker(KEY)


@pytest.fixture(scope="module")
def marked256(wm: Watermarker, astronaut: np.ndarray) -> np.ndarray:
    return wm.embed(panning_clip(astronaut, height=256, width=256, frames=25, seed=3), PAYLOAD)


@pytest.fixture(scope="module")
def marked720(wm: Watermarker, grace_hopper: np.ndarray) -> np.ndarray:
    return wm.embed(panning_clip(grace_hopper, height=720, width=1280, frames=10, seed=4), PAYLOAD)


@pytest.mark.parametrize("attack", ["crop90", "crop80_corner", "resize50", "resize200", "jpeg50", "excerpt1s",
                                    "rotate+2", "brightness-30", "contrast1.3", "noise5", "blur3", "fps25to30"])
def test_256_clip_survives(wm: Watermarker, marked256: np.ndarray, attack: str) -> None:
    found = wm.detect(ATTACKS[attack](marked256))
    assert found.payload == PAYLOAD, found.details


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["h264_crf28", "crop90+crf28"])
def test_720p_clip_survives_h264(wm: Watermarker, marked720: np.ndarray, attack: str) -> None:
    found = wm.detect(ATTACKS[attack](marked720))
    assert found.payload == PAYLOAD, found.details


def test_unmarked_attacked_clip_detects_nothing(wm: Watermarker, astronaut: np.ndarray) -> None:
    clip = panning_clip(astronaut, height=256, width=256, frames=10, seed=5)
    assert wm.detect(ATTACKS["h264_crf28"](clip)).payload is None
