"""studio.media video reading and writing, on tiny real files in every common container."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_support import (
    clip_frame,
    decoded_audio_seconds,
    gray_level,
    make_audio_only,
    make_video,
    stream_facts,
)
from studio import media

# (container, file suffix, video codec, pixel format, audio codec, fps, frames, width, height)
INPUTS = [
    ("mp4", "mp4", "libx264", "yuv420p", "aac", Fraction(30), 12, 64, 48),
    ("mov", "mov", "libx264", "yuv420p", "aac", Fraction(30000, 1001), 12, 64, 48),
    ("webm", "webm", "libvpx-vp9", "yuv420p", "libopus", Fraction(24), 10, 64, 48),
    ("matroska", "mkv", "libx264", "yuv444p", "libopus", Fraction(25), 9, 63, 47),  # odd size
    ("avi", "avi", "mpeg4", "yuv420p", "libmp3lame", Fraction(25), 10, 64, 48),
]


def _mean_gray(frame: np.ndarray) -> float:
    """Mean of the gray part (right three quarters) of a clip frame."""
    return float(frame[:, frame.shape[1] // 2 :].mean())


@pytest.mark.parametrize("container,suffix,vcodec,pix_fmt,acodec,fps,frames,width,height", INPUTS, ids=[i[1] for i in INPUTS])
def test_reads_every_container_in_order(
    tmp_path: Path, container: str, suffix: str, vcodec: str, pix_fmt: str, acodec: str, fps: Fraction, frames: int, width: int, height: int
) -> None:
    path = make_video(
        tmp_path / f"in.{suffix}", container=container, vcodec=vcodec, pix_fmt=pix_fmt, acodec=acodec, fps=fps, frames=frames, width=width, height=height
    )
    info = media.probe_video(path)
    assert (info.width, info.height) == (width, height)
    assert info.fps == pytest.approx(float(fps), rel=1e-3)
    assert info.has_audio and info.audio_codec is not None
    assert info.frame_count_exact is (suffix != "avi")
    assert abs(info.frame_count - frames) <= (1 if suffix == "avi" else 0)  # AVI counts packets
    assert info.duration_seconds == pytest.approx(frames / float(fps), abs=0.1)

    decoded = list(media.VideoReader(path))
    assert len(decoded) == frames
    assert all(f.shape == (height, width, 3) and f.dtype == np.uint8 for f in decoded)
    levels = [_mean_gray(f) for f in decoded]
    assert levels == pytest.approx([gray_level(i) for i in range(frames)], abs=6)
    assert decoded[0][:, 1].mean(axis=0) == pytest.approx([255, 0, 0], abs=30)  # red bar stays left


@pytest.mark.parametrize("suffix,container", [("mp4", "mp4"), ("mkv", "matroska"), ("webm", "webm")])
def test_duration_and_count_are_the_videos_even_when_the_audio_runs_longer(tmp_path: Path, suffix: str, container: str) -> None:
    vcodec, acodec = ("libvpx-vp9", "libopus") if container == "webm" else ("libx264", "aac")
    path = make_video(tmp_path / f"in.{suffix}", container=container, vcodec=vcodec, acodec=acodec, fps=25, frames=25, audio_seconds=3.0)
    info = media.probe_video(path)
    assert info.frame_count == 25 and info.frame_count_exact
    assert info.duration_seconds == pytest.approx(1.0, abs=0.05)


def test_round_trip_is_browser_playable_h264_high_with_aac_of_matching_length(tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", container="mp4", vcodec="libx264", acodec="aac", fps=25, frames=25, audio_seconds=3.0)
    out = tmp_path / "out.mp4"
    with media.VideoWriter(out, fps=25, width=64, height=48, audio_from=source) as writer:
        for frame in media.VideoReader(source):
            writer.write(255 - frame)

    facts = stream_facts(out)
    assert facts["video_codec"] == "h264" and facts["profile"] == "High" and facts["pix_fmt"] == "yuv420p"
    assert facts["audio_codec"] == "aac"
    assert facts["video_seconds"] == pytest.approx(1.0, abs=0.01)
    # AAC is copied in whole 1024-sample packets: trimmed to within one packet (21 ms).
    assert decoded_audio_seconds(out) == pytest.approx(1.0, abs=0.05)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart puts the index first"
    back = list(media.VideoReader(out))
    assert [_mean_gray(f) for f in back] == pytest.approx([255 - gray_level(i) for i in range(25)], abs=6)


@pytest.mark.parametrize("suffix,container,acodec", [("webm", "webm", "libopus"), ("avi", "avi", "libmp3lame")])
def test_non_aac_audio_is_reencoded_and_trimmed_to_the_sample(tmp_path: Path, suffix: str, container: str, acodec: str) -> None:
    vcodec = "libvpx-vp9" if container == "webm" else "mpeg4"
    source = make_video(tmp_path / f"in.{suffix}", container=container, vcodec=vcodec, acodec=acodec, fps=25, frames=10, audio_seconds=2.0)
    out = tmp_path / "out.mp4"
    media.write_video(out, list(media.VideoReader(source)), fps=25, audio_from=source)
    assert stream_facts(out)["audio_codec"] == "aac"
    assert decoded_audio_seconds(out) == pytest.approx(0.4, abs=0.03)


def test_max_audio_seconds_cuts_the_audio_short(tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.webm", container="webm", vcodec="libvpx-vp9", acodec="libopus", fps=25, frames=25)
    out = tmp_path / "out.mp4"
    with media.VideoWriter(out, fps=25, width=64, height=48, audio_from=source, max_audio_seconds=0.5) as writer:
        writer.write(np.stack(list(media.VideoReader(source))))
    assert stream_facts(out)["video_seconds"] == pytest.approx(1.0, abs=0.01)
    assert decoded_audio_seconds(out) == pytest.approx(0.5, abs=0.03)


def test_shorter_audio_is_kept_whole_and_a_silent_source_gives_a_silent_output(tmp_path: Path) -> None:
    short = make_audio_only(tmp_path / "short.m4a", seconds=0.3)
    out = tmp_path / "out.mp4"
    media.write_video(out, np.zeros((25, 32, 32, 3), np.uint8), fps=25, audio_from=short)
    assert decoded_audio_seconds(out) == pytest.approx(0.3, abs=0.03)

    silent = make_video(tmp_path / "silent.mkv", container="matroska", vcodec="libx264", fps=25, frames=3)
    media.write_video(tmp_path / "out2.mp4", media.VideoReader(silent), fps=25, audio_from=silent)
    assert media.probe_video(tmp_path / "out2.mp4").has_audio is False


def test_odd_dimensions_are_cropped_to_even_keeping_the_top_left(tmp_path: Path) -> None:
    frames = np.stack([clip_frame(i, 63, 47) for i in range(3)])  # (3, 47, 63, 3)
    frames[:, -1, :] = 0  # the bottom row and right column are the ones that go
    frames[:, :, -1] = 0
    out = tmp_path / "odd.mp4"
    media.write_video(out, frames, fps=24)
    info = media.probe_video(out)
    assert (info.width, info.height) == (62, 46)
    back = np.stack(list(media.VideoReader(out)))  # (3, 46, 62, 3)
    assert np.abs(back.astype(int) - frames[:, :46, :62]).mean() < 3


@pytest.mark.parametrize("fps,expected", [(24.0, Fraction(24)), (25, Fraction(25)), (29.97, Fraction(30000, 1001)), (30000 / 1001, Fraction(30000, 1001))])
def test_writer_keeps_the_exact_frame_rate(tmp_path: Path, fps: float, expected: Fraction) -> None:
    out = tmp_path / "rate.mp4"
    media.write_video(out, np.zeros((5, 16, 16, 3), np.uint8), fps=fps)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == expected


@pytest.mark.parametrize("frames", [1, 2, 37])
def test_any_frame_count_survives_a_round_trip(tmp_path: Path, frames: int) -> None:
    source = np.stack([clip_frame(i, 32, 32) for i in range(frames)])
    out = tmp_path / "n.mp4"
    media.write_video(out, iter(source), fps=25)
    info = media.probe_video(out)
    assert info.frame_count == frames and info.frame_count_exact
    assert len(list(media.VideoReader(out))) == frames


def test_reader_is_re_iterable_and_chunks_batch_in_order(tmp_path: Path) -> None:
    path = make_video(tmp_path / "in.mp4", container="mp4", vcodec="libx264", fps=25, frames=10)
    reader = media.VideoReader(path)
    first, second = np.stack(list(reader)), np.stack(list(reader))
    assert np.array_equal(first, second)
    chunks = list(reader.chunks(4))
    assert [c.shape[0] for c in chunks] == [4, 4, 2]
    assert np.array_equal(np.concatenate(chunks), first)
    with pytest.raises(ValueError):
        next(reader.chunks(0))


def test_max_side_downscales_while_decoding_and_keeps_the_aspect(tmp_path: Path) -> None:
    path = make_video(tmp_path / "in.mp4", container="mp4", vcodec="libx264", fps=25, frames=3, width=128, height=96)
    reader = media.VideoReader(path, max_side=32)
    assert reader.size == (32, 24)
    frames = list(reader)
    assert all(f.shape == (24, 32, 3) for f in frames)
    assert frames[2][:, 20:].mean() == pytest.approx(gray_level(2), abs=6)
    assert media.VideoReader(path, max_side=1000).size == (128, 96), "never upscales"


def _write_rotated(path: Path, frames: int = 3) -> Path:
    """A 64x32 clip (red bar on the left) stored with a +90 degree display matrix."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 32), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_phone_rotation_is_applied(tmp_path: Path) -> None:
    """A display matrix of +90 degrees (counter-clockwise) is how phones store portrait video."""
    path = _write_rotated(tmp_path / "rotated.mp4")

    info = media.probe_video(path)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    frame = next(iter(media.VideoReader(path)))
    assert frame.shape == (64, 32, 3)
    # Turning the picture a quarter counter-clockwise moves its left edge to the bottom.
    assert frame[-4:, :, 0].mean() > 240 and frame[-4:, :, 1].mean() < 30
    assert frame[:8, :, 1].mean() > 10  # the top is gray, not red
    half = next(iter(media.VideoReader(path, max_side=32)))
    assert half.shape == (32, 16, 3)


def test_variable_frame_rate_input_yields_every_frame(tmp_path: Path) -> None:
    pts = [0, 1, 2, 4, 5, 9, 10, 11]  # gaps, as phones write when the scene is dark
    path = make_video(tmp_path / "vfr.mkv", container="matroska", vcodec="libx264", fps=25, frames=len(pts), pts=pts)
    frames = list(media.VideoReader(path))
    assert len(frames) == len(pts)
    assert [_mean_gray(f) for f in frames] == pytest.approx([gray_level(i) for i in range(len(pts))], abs=6)


def test_writer_rejects_wrong_frames_and_bad_settings(tmp_path: Path) -> None:
    with media.VideoWriter(tmp_path / "a.mp4", fps=25, width=32, height=32) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((16, 32, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError):
        media.VideoWriter(tmp_path / "b.mp4", fps=0, width=32, height=32)
    with pytest.raises(ValueError):
        media.VideoWriter(tmp_path / "c.mp4", fps=25, width=1, height=32)
    with pytest.raises(ValueError):
        media.write_video(tmp_path / "d.mp4", [], fps=25)


def test_writer_removes_its_partial_file_when_the_block_fails(tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", container="mp4", vcodec="libx264", acodec="aac", fps=25, frames=5)
    out = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="animator crashed"):
        with media.VideoWriter(out, fps=25, width=64, height=48, audio_from=source) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            raise RuntimeError("animator crashed")
    assert not out.exists()


def test_closing_a_writer_that_got_no_frames_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "empty.mp4"
    writer = media.VideoWriter(out, fps=25, width=32, height=32)
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    assert not out.exists()


def test_sha256_file_streams_the_same_digest_as_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).bytes(3 * (1 << 20) + 17))  # spans several reads
    assert media.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_abort_deletes_the_partial_file_and_is_a_no_op_after_close(tmp_path: Path) -> None:
    partial = tmp_path / "partial.mp4"
    writer = media.VideoWriter(partial, fps=25, width=32, height=32)
    writer.write(np.zeros((3, 32, 32, 3), np.uint8))
    writer.abort()
    assert not partial.exists()
    writer.abort()  # twice is fine

    done = tmp_path / "done.mp4"
    writer = media.VideoWriter(done, fps=25, width=32, height=32)
    writer.write(np.zeros((3, 32, 32, 3), np.uint8))
    writer.close()
    writer.abort()
    assert media.probe_video(done).frame_count == 3


def test_a_late_starting_audio_track_stays_late_when_reencoded(tmp_path: Path) -> None:
    """Opus starting 0.4 s into the video: re-encoded AAC must start 0.4 s in too."""
    source = tmp_path / "late.mkv"
    with av.open(str(source), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = out.add_stream("libopus", rate=48_000)
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 32, 32), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=48_000, frame_size=960)
        tone = np.full((1, 2 * 960), 0.25, np.float32)  # packed stereo, 960 samples
        for k in range(30):  # 0.6 s of audio, starting at 0.4 s
            chunk = av.AudioFrame.from_ndarray(tone, format="flt", layout="stereo")
            chunk.sample_rate, chunk.time_base, chunk.pts = 48_000, Fraction(1, 48_000), 19_200 + 960 * k
            for resampled in resampler.resample(chunk):
                out.mux(audio.encode(resampled))
        out.mux(audio.encode(None))

    result = tmp_path / "out.mp4"
    media.write_video(result, media.VideoReader(source), fps=25, audio_from=source)
    with av.open(str(result)) as container:
        stream = container.streams.audio[0]
        first = next(container.decode(stream))
        assert float(first.pts * first.time_base) == pytest.approx(0.4, abs=0.05)
    assert decoded_audio_seconds(result) == pytest.approx(0.6, abs=0.05)


@pytest.mark.parametrize("container,suffix,vcodec,pix_fmt,acodec,fps,frames,width,height", INPUTS, ids=[i[1] for i in INPUTS])
def test_luma_planes_match_the_rgb_frames_brightness(
    tmp_path: Path, container: str, suffix: str, vcodec: str, pix_fmt: str, acodec: str, fps: Fraction, frames: int,
    width: int, height: int,
) -> None:
    path = make_video(tmp_path / f"in.{suffix}", container=container, vcodec=vcodec, pix_fmt=pix_fmt, fps=fps,
                      frames=frames, width=width, height=height)
    reader = media.VideoReader(path)
    planes, rgb = list(reader.luma()), list(reader)
    assert len(planes) == len(rgb) == frames
    # The unprobed reader (the pipeline's read-back of its own file) gives the same planes.
    assert all(np.array_equal(a, b) for a, b in zip(planes, media.luma_planes(path), strict=True))
    for y, f in zip(planes, rgb):
        assert y.shape == f.shape[:2] and y.dtype == np.uint8 and y.flags.c_contiguous
        # Video-range Y (16..235) of the decoded picture, against the RGB frame's own BT.601 luma
        # (these test files carry no colour tags, so FFmpeg converts with BT.601).
        expected = 16 + 219 / 255 * (0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2])
        assert np.abs(y.astype(np.float64) - expected).mean() < 4


def test_luma_planes_are_upright(tmp_path: Path) -> None:
    path = _write_rotated(tmp_path / "rotated.mp4", frames=1)
    y = next(media.VideoReader(path).luma())
    rgb = next(iter(media.VideoReader(path)))
    assert np.array_equal(next(media.luma_planes(path)), y)  # rotation read from the first frame
    assert y.shape == rgb.shape[:2] == (64, 32)
    assert abs(float(y[-4:].mean()) - float(y[:8].mean())) > 5  # the red bar (dark in Y) moved to the bottom
    assert (y[-4:].mean() < y[:8].mean()) == (rgb[-4:].mean() < rgb[:8].mean())
