"""Hostile and broken uploads: each gets its own StudioError leaf and a message without paths."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from media_support import make_audio_only, make_video
from studio import media
from studio.errors import StudioError
from studio.media.errors import (
    EmptyVideo,
    ImageTooLarge,
    MediaFileMissing,
    NotAVideo,
    UnreadableImage,
    UnreadableVideo,
    VideoTooLarge,
)


def _assert_user_facing(error: pytest.ExceptionInfo[StudioError], tmp_path: Path) -> None:
    assert isinstance(error.value, StudioError)
    message = error.value.user_message()
    assert message and str(tmp_path) not in message and "/" not in message


def _png_with_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height``, with one tiny IDAT: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * (3 * width + 1) * 4)  # 4 rows of zeros; the rest would inflate later
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _noise_video(path: Path, *, faststart: bool) -> Path:
    """20 frames of noise (nothing compresses), index at the front or at the end."""
    frames = np.random.default_rng(7).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", container_options=options) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


# ---- images --------------------------------------------------------------------------


def test_decompression_bomb_png_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = _png_with_header_only(50_000, 50_000)
    assert len(bomb) < 10_000
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as error:
        media.read_image(bomb)
    assert time.perf_counter() - started < 1.0, "refused without inflating 7.5 GB"
    _assert_user_facing(error, tmp_path)


def test_image_over_the_side_or_pixel_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageTooLarge, match="5000 x 8"):
        media.read_image(_png_with_header_only(5000, 8))
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 40)).save(small)
    with pytest.raises(ImageTooLarge):
        media.read_image(small, max_pixels=1000)
    with pytest.raises(ImageTooLarge):
        media.read_image(small, max_side=32)


def test_corrupt_and_truncated_images_are_unreadable(tmp_path: Path, astronaut: np.ndarray) -> None:
    png = tmp_path / "a.png"
    Image.fromarray(astronaut[:128, :128]).save(png)
    data = png.read_bytes()
    cases = {
        "random": np.random.default_rng(0).bytes(4096),
        "truncated": data[: len(data) // 2],
        "text": b"this is not an image\n" * 20,
        "broken_body": data[:200] + bytes(len(data) - 200),
    }
    for name, payload in cases.items():
        with pytest.raises(UnreadableImage) as error:
            media.read_image(payload)
        _assert_user_facing(error, tmp_path)
        (tmp_path / f"{name}.png").write_bytes(payload)
        with pytest.raises(UnreadableImage):
            media.read_image(tmp_path / f"{name}.png")


def test_image_formats_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    tga = tmp_path / "face.tga"
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tga)
    with Image.open(tga) as plain:
        assert plain.format == "TGA"  # Pillow itself would read it
    with pytest.raises(UnreadableImage, match="supported format"):
        media.read_image(tga)


def test_missing_image_file(tmp_path: Path) -> None:
    with pytest.raises(MediaFileMissing) as error:
        media.read_image(tmp_path / "nope.jpg")
    _assert_user_facing(error, tmp_path)


# ---- videos --------------------------------------------------------------------------


def test_truncated_mp4_is_unreadable_whichever_end_holds_the_index(tmp_path: Path) -> None:
    for faststart in (False, True):
        whole = _noise_video(tmp_path / f"whole{faststart}.mp4", faststart=faststart)
        data = whole.read_bytes()
        half = tmp_path / f"half{faststart}.mp4"
        half.write_bytes(data[: len(data) // 2])
        with pytest.raises(UnreadableVideo) as error:
            media.probe_video(half)
        _assert_user_facing(error, tmp_path)
        with pytest.raises(UnreadableVideo):
            media.VideoReader(half)


def test_damage_in_the_middle_stops_the_stream_with_an_error(tmp_path: Path) -> None:
    """Zeroed bytes mid-file: the reader yields the good frames, then raises rather than end quietly."""
    path = _noise_video(tmp_path / "damaged.mp4", faststart=True)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    path.write_bytes(bytes(data))

    reader = media.VideoReader(path)  # the header and first frame are fine
    seen = 0
    with pytest.raises(UnreadableVideo, match=r"after frame \d+"):
        for _ in reader:
            seen += 1
    assert 0 < seen < 20


def test_zero_frame_videos_are_empty(tmp_path: Path) -> None:
    for suffix, container in (("mp4", "mp4"), ("mkv", "matroska")):
        path = tmp_path / f"zero.{suffix}"
        with av.open(str(path), "w", format=container) as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width = stream.height = 32
            stream.pix_fmt = "yuv420p"
            out.start_encoding()
        assert path.stat().st_size > 0
        with pytest.raises(EmptyVideo) as error:
            media.probe_video(path)
        _assert_user_facing(error, tmp_path)
    (tmp_path / "blank.mp4").write_bytes(b"")
    with pytest.raises(EmptyVideo, match="empty"):
        media.probe_video(tmp_path / "blank.mp4")


def test_audio_only_files_are_not_videos(tmp_path: Path) -> None:
    for path in (
        make_audio_only(tmp_path / "voice.m4a"),
        make_audio_only(tmp_path / "voice.mp3", container="mp3", acodec="libmp3lame"),
    ):
        with pytest.raises(NotAVideo, match="only audio") as error:
            media.probe_video(path)
        _assert_user_facing(error, tmp_path)


def test_a_still_image_renamed_mp4_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "photo.mp4"
    Image.new("RGB", (32, 32)).save(path, format="PNG")
    with pytest.raises(NotAVideo, match="still image"):
        media.probe_video(path)


def test_text_and_random_bytes_renamed_mp4_are_unreadable(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("Meeting notes\n" * 100)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(50_000))
    for path in (text, noise):
        with pytest.raises(UnreadableVideo) as error:
            media.probe_video(path)
        _assert_user_facing(error, tmp_path)


def test_playlist_formats_that_open_other_files_are_refused(tmp_path: Path) -> None:
    """An ffconcat list named .mp4 would make FFmpeg read another file on the server."""
    make_video(tmp_path / "secret.mp4", container="mp4", vcodec="libx264", fps=25, frames=2)
    playlist = tmp_path / "upload.mp4"
    playlist.write_text("ffconcat version 1.0\nfile secret.mp4\n")
    with av.open(str(playlist)) as plain:  # what an unguarded av.open does with it
        assert plain.format.name == "concat" and plain.streams.video
    with pytest.raises(UnreadableVideo):
        media.probe_video(playlist)
    with pytest.raises(UnreadableVideo):
        media.VideoWriter(tmp_path / "out.mp4", fps=25, width=32, height=32, audio_from=playlist)


def test_videos_over_the_limits_are_too_large(tmp_path: Path) -> None:
    wide = make_video(tmp_path / "wide.mp4", container="mp4", vcodec="libx264", fps=25, frames=1, width=4112, height=16)
    with pytest.raises(VideoTooLarge, match="4112 x 16") as error:
        media.probe_video(wide)
    _assert_user_facing(error, tmp_path)
    assert media.probe_video(wide, max_side=5000).width == 4112

    second = make_video(tmp_path / "second.mp4", container="mp4", vcodec="libx264", fps=25, frames=25)
    with pytest.raises(VideoTooLarge, match="limit is 0.5 s"):
        media.probe_video(second, max_duration_seconds=0.5)
    with pytest.raises(VideoTooLarge):
        media.VideoReader(second, max_duration_seconds=0.5)
    assert media.probe_video(second, max_duration_seconds=None).duration_seconds == pytest.approx(1.0)


def test_missing_video_file(tmp_path: Path) -> None:
    with pytest.raises(MediaFileMissing) as error:
        media.probe_video(tmp_path / "gone.mp4")
    _assert_user_facing(error, tmp_path)
    with pytest.raises(MediaFileMissing):
        media.VideoWriter(tmp_path / "out.mp4", fps=25, width=32, height=32, audio_from=tmp_path / "gone.mp4")
    assert not (tmp_path / "out.mp4").exists()
