"""Encoding frames into a browser-playable MP4 (``VideoWriter``, ``write_video``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from studio.media.audio import AudioCarry


class VideoWriter:
    """Encode frames into an MP4 that browsers play: H.264 yuv420p, AAC, moov first.

    H.264 in 4:2:0 needs even dimensions; an odd ``width`` or ``height`` is cropped by one
    pixel at the right or bottom edge (cropping, unlike padding, invents no pixels and keeps
    the top-left origin the watermark is aligned to). ``write`` still takes frames of the
    size given here.

    With ``audio_from``, the first audio track of that file is carried over: AAC packets are
    copied untouched, anything else is re-encoded to AAC. Audio is muxed as the video
    advances (interleaved, constant memory) and stops at the video's end, or earlier at
    ``max_audio_seconds``. A file without audio simply gives a silent output.

    Used as a context manager, an exception inside the block closes everything and removes
    the partial file, so a failed render leaves nothing behind that looks like output.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | Fraction,
        width: int,
        height: int,
        crf: int = 18,
        audio_from: str | Path | None = None,
        preset: str = "medium",
        max_audio_seconds: float | None = None,
    ) -> None:
        import av

        if width < 2 or height < 2:
            raise ValueError(f"frames must be at least 2 x 2 pixels, got {width} x {height}")
        if not 0 < float(fps) <= 240:
            raise ValueError(f"fps must be in (0, 240], got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.rate = _frame_rate(fps)
        self.frames_written = 0
        self._max_audio_seconds = max_audio_seconds
        self._closed = False
        self._container = av.open(
            str(self.path), "w", format="mp4", container_options={"movflags": "+faststart"}
        )
        self._audio: AudioCarry | None = None
        try:
            self._stream = _add_h264_stream(
                self._container, self.rate, width - width % 2, height - height % 2, crf, preset
            )
            if audio_from is not None:
                self._audio = AudioCarry.open(Path(audio_from), self._container)
        except BaseException:
            self.abort()
            raise

    def write(self, frame_or_frames: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` frame or a batch ``(T, H, W, 3)``, uint8 RGB."""
        import av

        frames = np.asarray(frame_or_frames)
        if frames.ndim == 3:
            frames = frames[None]  # (1, H, W, 3)
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"expected frames of shape (H, W, 3) = ({self.height}, {self.width}, 3), got {frames.shape}"
            )
        if frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames, got {frames.dtype}")
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        even = frames[:, : self._stream.height, : self._stream.width]  # (T, H', W', 3)
        for rgb in even:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709")
            frame.pts = self.frames_written
            frame.time_base = 1 / self.rate
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1
            if self._audio is not None:
                self._audio.pump(until=self._audio_end(self.frames_written / self.rate))

    def close(self) -> None:
        """Flush the encoders, mux the remaining audio up to the video's end, finish the file."""
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise ValueError("no frames were written; an MP4 needs at least one")
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish(end=self._audio_end(self.frames_written / self.rate))
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._release_audio()
        self._closed = True

    def abort(self) -> None:
        """Give up: release the files and delete the partial output (no-op once closed).

        ``with VideoWriter(...)`` calls this when its block raises; call it yourself from an
        ``except`` when not using ``with``.
        """
        import av

        if self._closed:
            return
        self._closed = True
        self._release_audio()
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError):
            pass  # the file is being discarded; a failing trailer write changes nothing
        self.path.unlink(missing_ok=True)

    @property
    def duration_seconds(self) -> float:
        """Seconds of video written so far (frames / rate)."""
        return float(self.frames_written / self.rate)

    def _audio_end(self, video_seconds: Fraction) -> float:
        end = float(video_seconds)
        return end if self._max_audio_seconds is None else min(end, self._max_audio_seconds)

    def _release_audio(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float | Fraction,
    audio_from: str | Path | None = None,
    crf: int = 18,
) -> None:
    """Encode ``frames`` (an array ``(T, H, W, 3)`` or an iterable of ``(H, W, 3)``) to MP4."""
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no frames to write")
    first = np.asarray(first)
    height, width = first.shape[:2]
    with VideoWriter(path, fps=fps, width=width, height=height, crf=crf, audio_from=audio_from) as writer:
        writer.write(first)
        for frame in iterator:
            writer.write(frame)


def _frame_rate(fps: float | Fraction) -> Fraction:
    """A float rate as the exact fraction it stands for (29.97 -> 30000/1001)."""
    if isinstance(fps, Fraction):
        return fps
    for base in (24, 30, 60, 120):  # the NTSC family
        ntsc = Fraction(base * 1000, 1001)
        if math.isclose(fps, float(ntsc), abs_tol=0.006):
            return ntsc
    return Fraction(fps).limit_denominator(1000)


def _add_h264_stream(container: Any, rate: Fraction, width: int, height: int, crf: int, preset: str) -> Any:
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = 1 / rate
    stream.codec_context.options = {"crf": str(crf), "preset": preset}
    # Tag what write() produces, so players do not guess BT.601 for HD frames.
    ctx = stream.codec_context
    ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # AVCOL_*_BT709
    ctx.color_range = 1  # AVCOL_RANGE_MPEG (limited, what swscale writes for yuv420p)
    return stream
