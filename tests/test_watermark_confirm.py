"""The watermark's confirmation policy: ``Watermarker.confirm`` (a producer's first marked
frames, before encoding) and ``Watermarker.read_back`` (the written file, 4 then 16 then 64
frames), on real frames and real H.264 files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from studio.media.attacks import panning_clip
from watermark import Watermarker
from watermark.config import DetectConfig
from watermark.errors import FrameTooSmall, UnsupportedFrames
from watermark.watermarker import ReadBack

READ_BACK_POINTS = DetectConfig().read_back_points

KEY = b"studio-secret-for-confirm-tests-01234"
PAYLOAD = 0x0BAD_CAFE_F00D


@pytest.fixture(scope="module")
def wm() -> Watermarker:
    cv2.setNumThreads(1)
    return Watermarker(KEY)


def _write_h264(frames: np.ndarray, path: Path, crf: int = 23) -> Path:
    """A real MP4 file: libx264, yuv420p, at ``crf``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _y_planes(path: Path, log: list[str]) -> Iterator[np.ndarray]:
    """The file's decoded Y planes (what a decoder hands over without colour conversion);
    ``log`` records how many were read and whether the file was closed."""
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
                log.append("frame")
                yield np.ascontiguousarray(y)
        finally:
            log.append("closed")


def test_confirm_holds_for_the_payload_marked_and_nothing_else(wm: Watermarker, astronaut: np.ndarray) -> None:
    clip = panning_clip(astronaut, height=256, width=320, frames=8)
    marked = wm.embed(clip, PAYLOAD)
    assert wm.confirm(marked, PAYLOAD)
    assert wm.confirm(marked[0], PAYLOAD)  # one frame, (H, W, 3)
    assert not wm.confirm(marked, PAYLOAD ^ 1)  # another payload
    assert not Watermarker(KEY[::-1]).confirm(marked, PAYLOAD)  # another key
    assert not wm.confirm(clip, PAYLOAD)  # no mark
    # The untouched geometry only: a crop, which detect() still reads, is not confirmed.
    cropped = np.ascontiguousarray(marked[:, 24:, 30:])
    assert wm.detect(cropped).payload == PAYLOAD and not wm.confirm(cropped, PAYLOAD)


def test_confirm_rejects_what_is_not_rgb_frames(wm: Watermarker) -> None:
    with pytest.raises(UnsupportedFrames):
        wm.confirm(np.zeros((2, 128, 128), np.uint8), PAYLOAD)  # luma planes, not RGB
    with pytest.raises(UnsupportedFrames):
        wm.confirm(np.zeros((2, 128, 128, 3), np.float32), PAYLOAD)
    with pytest.raises(FrameTooSmall):
        wm.confirm(np.zeros((2, 32, 32, 3), np.uint8), PAYLOAD)


def test_an_unaltered_h264_file_reads_back_from_its_first_frames_and_is_closed(
    wm: Watermarker, astronaut: np.ndarray, tmp_path: Path
) -> None:
    marked = wm.embed(panning_clip(astronaut, height=256, width=320, frames=24), PAYLOAD)
    path = _write_h264(marked, tmp_path / "marked.mp4")
    log: list[str] = []
    read = wm.read_back(_y_planes(path, log), PAYLOAD)
    assert isinstance(read, ReadBack)
    assert read.found and read.frames_used == READ_BACK_POINTS[0] == 4
    assert read.detection.payload == PAYLOAD and read.confidence == read.detection.confidence > 0.5
    # It stopped after 4 of the 24 frames and closed the file it was reading.
    assert log == ["frame"] * 4 + ["closed"]
    # Another payload is not found (the file is read on to its end: 24 frames, below 64).
    other = wm.read_back(_y_planes(path, []), PAYLOAD ^ 1)
    assert not other.found and other.frames_used == 24 and other.detection.payload == PAYLOAD


def test_rgb_frames_read_back_as_detect_reads_them(wm: Watermarker, astronaut: np.ndarray, tmp_path: Path) -> None:
    marked = wm.embed(panning_clip(astronaut, height=256, width=256, frames=6), PAYLOAD)
    path = _write_h264(marked, tmp_path / "rgb.mp4")
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    read = wm.read_back(iter(decoded), PAYLOAD)
    assert read.found and read.frames_used == 4
    assert read.confidence == wm.detect(decoded[:4]).confidence
    with pytest.raises(UnsupportedFrames, match="not both"):
        wm.read_back(iter([decoded[0], cv2.cvtColor(decoded[1], cv2.COLOR_RGB2GRAY)]), PAYLOAD)
    with pytest.raises(UnsupportedFrames):
        wm.read_back(iter([]), PAYLOAD)  # nothing to read


def test_an_unmarked_file_is_read_to_the_last_point_and_not_found(wm: Watermarker, astronaut: np.ndarray,
                                                                  tmp_path: Path) -> None:
    # 70 frames without a mark: the detector is asked at 4, 16 and 64 frames, and reading stops at 64.
    clip = panning_clip(astronaut, height=128, width=160, frames=70)
    path = _write_h264(clip, tmp_path / "plain.mp4")
    log: list[str] = []
    read = wm.read_back(_y_planes(path, log), PAYLOAD)
    assert not read.found and read.frames_used == READ_BACK_POINTS[-1] == 64
    assert read.detection.payload is None and read.confidence == 0.0
    assert log == ["frame"] * 64 + ["closed"]


def test_the_read_back_points_and_the_crc_budget_come_from_the_detect_config(astronaut: np.ndarray,
                                                                              tmp_path: Path) -> None:
    from watermark.decode import MAX_CRC_CHECKS

    assert DetectConfig().max_crc_checks == MAX_CRC_CHECKS == 16  # the false-payload bound's factor
    with pytest.raises(ValueError):
        DetectConfig(plans=((7, (3, 1)),))  # a plan must spread exactly its list size
    with pytest.raises(ValueError):
        DetectConfig(read_back_points=(16, 4))
    wm = Watermarker(KEY, detect_config=DetectConfig(read_back_points=(2, 5)))
    marked = wm.embed(panning_clip(astronaut, height=256, width=256, frames=8), PAYLOAD)
    path = _write_h264(marked, tmp_path / "two.mp4")
    assert wm.read_back(_y_planes(path, []), PAYLOAD).frames_used == 2
    assert wm.read_back(_y_planes(path, []), PAYLOAD ^ 1).frames_used == 5  # read to the last point, not found
