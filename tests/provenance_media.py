"""Small real media files for the provenance and audit tests (PyAV, H.264 + AAC)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

N_FRAMES, SIZE, FPS, SAMPLE_RATE = 64, 128, 25, 48000


def make_frames(n: int = N_FRAMES, size: int = SIZE) -> np.ndarray:
    """Textured moving colour bars, (T, H, W, 3) uint8."""
    t = np.arange(n)[:, None, None]
    x = np.arange(size)[None, None, :]
    y = np.arange(size)[None, :, None]
    rng = np.random.default_rng(7)
    grain = rng.integers(0, 24, size=(1, size, size))
    red = (x * 2 + t * 3 + grain) % 256 + 0 * y
    green = (y * 2 + grain) % 256 + 0 * x + 0 * t
    blue = ((x + y + t) * 5 // 3 + grain) % 256
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)  # (T, H, W, 3)


def write_test_mp4(path: Path, frames: np.ndarray | None = None, *, crf: int = 18) -> np.ndarray:
    """A small H.264 (yuv420p) + AAC MP4 of ``frames`` with a 440 Hz tone. Returns the frames."""
    frames = make_frames() if frames is None else frames
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf)}
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        frame_size = audio.codec_context.frame_size or 1024
        n_samples = SAMPLE_RATE * len(frames) // FPS // frame_size * frame_size
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n_samples) / SAMPLE_RATE)).astype(np.float32)
        for start in range(0, n_samples, frame_size):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + frame_size], format="flt", layout="mono")
            chunk.sample_rate = SAMPLE_RATE
            chunk.pts = start
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    return frames


def decode(path: Path) -> tuple[np.ndarray, int]:
    """All video frames (T, H, W, 3) and the number of decoded audio samples."""
    frames, samples = [], 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
    return np.stack(frames), samples


def remux_without_manifest(src: Path, dst: Path) -> None:
    """Copy the audio and video packets into a new MP4: what any re-muxing tool does to a manifest."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as target:
        mapping = {s.index: target.add_stream_from_template(s) for s in source.streams if s.type in ("video", "audio")}
        for packet in source.demux():
            if packet.dts is None or packet.stream.index not in mapping:
                continue
            packet.stream = mapping[packet.stream.index]
            target.mux(packet)
