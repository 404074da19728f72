"""Still and mostly static frames: the render pipeline's real output.

A face animated and pasted back into a photo leaves the background unchanged from frame
to frame, so averaging frames does not wash the host image out of the detector's scores.
Only the embedder's host-informed correction makes these read back; before it, most of
these cases failed (see docs/watermark.md, "Still frames").
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from studio.media.attacks import h264
from watermark import Watermarker

KEYS = (
    b"studio-secret-for-tests-0123456789",
    b"k" * 32,
    b"another key 1234567890",
    b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
    bytes(range(200, 232)),
)
PAYLOADS = (0xA5C3_0F1E_7B29, 0x1234_5678_9ABC, 0, 2**48 - 1, 0x0000_0000_BEEF)
SIZES = ((128, 128), (256, 256), (512, 512), (720, 1280))


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    cv2.setNumThreads(1)


def _photo(name: str, astronaut: np.ndarray, grace_hopper: np.ndarray, height: int, width: int) -> np.ndarray:
    image = {"astronaut": astronaut, "grace_hopper": grace_hopper}[name]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)  # (H, W, 3)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def static_background_clip(photo: np.ndarray, *, frames: int = 12) -> np.ndarray:
    """The pipeline's situation: a still photo in which only the head region moves, (T, H, W, 3)."""
    h, w = photo.shape[:2]
    y0, y1, x0, x1 = h // 8, h // 2, w * 3 // 10, w * 2 // 3  # roughly the astronaut's head
    out = np.repeat(photo[None], frames, axis=0)
    region = photo[y0:y1, x0:x1]
    for t in range(frames):
        m = cv2.getRotationMatrix2D(((x1 - x0) / 2, (y1 - y0) / 2), 3 * np.sin(t / 2.5), 1.0)
        m[:, 2] += (4 * np.sin(t / 2), 3 * np.cos(t / 3))
        out[t, y0:y1, x0:x1] = cv2.warpAffine(region, m, (x1 - x0, y1 - y0), borderMode=cv2.BORDER_REFLECT)
    return out


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_single_still_frame_reads_back_under_every_key(
    name: str, height: int, width: int, astronaut: np.ndarray, grace_hopper: np.ndarray
) -> None:
    photo = _photo(name, astronaut, grace_hopper, height, width)
    for key, payload in zip(KEYS, PAYLOADS):
        wm = Watermarker(key)
        marked = wm.embed(photo, payload)
        assert marked.shape == photo.shape and marked.dtype == np.uint8
        assert _psnr(photo, marked) >= 42.0
        found = wm.detect(marked)
        assert found.payload == payload, (key, found.details)


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_unmarked_still_frame_reads_nothing(
    name: str, height: int, width: int, astronaut: np.ndarray, grace_hopper: np.ndarray
) -> None:
    photo = _photo(name, astronaut, grace_hopper, height, width)
    for key in KEYS:
        assert Watermarker(key).detect(photo).payload is None


def test_still_marked_under_one_key_reads_nothing_under_another(astronaut: np.ndarray) -> None:
    photo = _photo("astronaut", astronaut, astronaut, 256, 256)
    marked = Watermarker(KEYS[0]).embed(photo, PAYLOADS[0])
    for key in KEYS[1:]:
        assert Watermarker(key).detect(marked).payload is None


@pytest.mark.parametrize("crf", [18, 23])
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_static_background_clip_survives_h264(
    name: str, crf: int, astronaut: np.ndarray, grace_hopper: np.ndarray
) -> None:
    # 512 x 512, 12 frames, marked in 8-frame chunks by the streaming embedder as the
    # pipeline does, then libx264 (yuv420p) through PyAV and streaming detection.
    clip = static_background_clip(_photo(name, astronaut, grace_hopper, 512, 512))
    key, payload = KEYS[2], PAYLOADS[1]
    wm = Watermarker(key)
    embedder = wm.embedder(512, 512, payload)
    marked = np.concatenate([embedder.embed(clip[i : i + 8]) for i in range(0, len(clip), 8)])
    decoded = h264(marked, crf)
    acc = wm.accumulator()
    for i in range(0, len(decoded), 8):
        acc.add(decoded[i : i + 8])
    found = acc.result()
    assert found.payload == payload, found.details
    assert Watermarker(KEYS[0]).detect(decoded).payload is None


def test_unmarked_static_background_clip_reads_nothing(astronaut: np.ndarray) -> None:
    clip = h264(static_background_clip(_photo("astronaut", astronaut, astronaut, 512, 512)), 23)
    for key in KEYS:
        assert Watermarker(key).detect(clip).payload is None
