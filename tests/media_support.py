"""Tiny real media files for the studio.media tests, written with PyAV directly.

The inputs are made with PyAV rather than with ``studio.media`` itself, so a bug in the
writer cannot hide the same bug in the reader. Frame ``i`` of every clip is a flat gray of
level ``gray_level(i)`` with a pure red bar over the left quarter, so tests can check both
the order of frames and where the picture's left edge went.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 48_000


def gray_level(i: int) -> int:
    return 16 + (12 * i) % 224


def clip_frame(i: int, width: int, height: int) -> np.ndarray:
    frame = np.full((height, width, 3), gray_level(i), np.uint8)  # (H, W, 3)
    frame[:, : max(1, width // 4)] = (255, 0, 0)
    return frame


def make_video(
    path: Path,
    *,
    container: str,
    vcodec: str,
    fps: Fraction | int,
    frames: int,
    width: int = 64,
    height: int = 48,
    pix_fmt: str = "yuv420p",
    acodec: str | None = None,
    audio_seconds: float | None = None,
    pts: list[int] | None = None,
) -> Path:
    """Write a clip; ``pts`` (in 1/fps units) makes the frame timing irregular."""
    rate = Fraction(fps)
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(vcodec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        audio = out.add_stream(acodec, rate=SAMPLE_RATE) if acodec else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, width, height), format="rgb24")
            frame.pts = i if pts is None else pts[i]
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            seconds = frames / float(rate) if audio_seconds is None else audio_seconds
            _encode_sine(out, audio, seconds)
    return path


def make_audio_only(path: Path, *, container: str = "mp4", acodec: str = "aac", seconds: float = 1.0) -> Path:
    with av.open(str(path), "w", format=container) as out:
        _encode_sine(out, out.add_stream(acodec, rate=SAMPLE_RATE), seconds)
    return path


def _encode_sine(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    """A 440 Hz stereo tone, resampled to whatever the encoder takes, frame_size included."""
    ctx = stream.codec_context
    resampler = av.AudioResampler(
        format=ctx.format.name, layout=ctx.layout.name, rate=SAMPLE_RATE, frame_size=ctx.frame_size or None
    )
    total = int(round(seconds * SAMPLE_RATE))
    for start in range(0, total, 1024):
        n = min(1024, total - start)
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(start, start + n) / SAMPLE_RATE)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")  # (2, n)
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
        for resampled in resampler.resample(frame):
            out.mux(stream.encode(resampled))
    for resampled in resampler.resample(None):
        out.mux(stream.encode(resampled))
    out.mux(stream.encode(None))


def stream_facts(path: Path) -> dict[str, object]:
    """What a browser cares about, read with PyAV: codecs, profile, pixel format, durations."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts: dict[str, object] = {
            "format": container.format.name,
            "video_codec": video.codec_context.name,
            "profile": video.codec_context.profile,
            "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.codec_context.width, video.codec_context.height),
            "video_seconds": float(video.duration * video.time_base),
            "audio_codec": None,
            "audio_seconds": None,
        }
        if container.streams.audio:
            audio = container.streams.audio[0]
            facts["audio_codec"] = audio.codec_context.name
            facts["audio_seconds"] = float(audio.duration * audio.time_base)
    return facts


def decoded_audio_seconds(path: Path) -> float:
    """Seconds of audio actually decodable (independent of what the header claims)."""
    samples = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples += frame.samples
        rate = stream.codec_context.sample_rate
    return samples / rate
