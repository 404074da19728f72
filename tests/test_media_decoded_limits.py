"""``VideoReader(limits=...)``: length, frame count, rate and size are checked on the decoded
frames, so a header that under-declares them changes nothing. Real H.264 files, tiny frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_support import make_video
from mp4_atoms import declare_duration
from studio import media


@pytest.fixture(scope="module")
def lying(tmp_path_factory) -> Path:
    """24 frames at 4 fps (6 s) whose mvhd, tkhd and mdhd declare 1 s."""
    path = make_video(tmp_path_factory.mktemp("lying") / "six.mp4", container="mp4", vcodec="libx264", fps=4, frames=24)
    declare_duration(path, 1.0)
    return path


def _decode(path: Path, **limits) -> tuple[int, Exception | None]:
    count = 0
    try:
        for _ in media.VideoReader(path, limits=media.DecodedLimits(**limits)):
            count += 1
    except media.VideoExceedsLimit as exc:
        return count, exc
    return count, None


def test_the_header_lies_and_the_reader_without_limits_yields_every_frame(lying: Path) -> None:
    assert media.probe_video(lying).duration_seconds == pytest.approx(1.0)
    assert sum(1 for _ in media.VideoReader(lying)) == 24


def test_length_is_counted_on_decoded_frames(lying: Path) -> None:
    count, error = _decode(lying, seconds=2.0, seconds_source="the consent")
    assert count == 8 and error is not None  # 8 frames are 2 s at 4 fps; the 9th is refused
    assert "2 s" in error.user_message() and "the consent" in error.user_message()
    assert isinstance(error, media.VideoTooLarge)


def test_a_clip_exactly_at_the_limit_passes(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "two.mp4", container="mp4", vcodec="libx264", fps=4, frames=8)
    assert _decode(clip, seconds=2.0) == (8, None)


def test_frame_count_cap(lying: Path) -> None:
    count, error = _decode(lying, frames=5)
    assert count == 5 and error is not None


def test_decoded_rate_cap(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "fast.mp4", container="mp4", vcodec="libx264", fps=25, frames=20)
    count, error = _decode(clip, max_fps=10)
    assert count == 10 and error is not None and "25 per second" in error.user_message()


def test_decoded_size_cap(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "wide.mp4", container="mp4", vcodec="libx264", fps=4, frames=2, width=64, height=48)
    count, error = _decode(clip, max_side=32)
    assert count == 0 and error is not None and "64 x 48" in error.user_message()


def test_declared_rate_above_the_cap_is_refused_by_the_probe(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "fast.mkv", container="matroska", vcodec="libx264", fps=240, frames=4)
    with pytest.raises(media.VideoTooLarge) as info:
        media.probe_video(clip)
    assert "240" in info.value.user_message()
