"""Streaming frames out of a video file in constant memory (``VideoReader``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from studio.media.errors import UnreadableVideo, VideoExceedsLimit
from studio.media.limits import MAX_VIDEO_SECONDS, DecodedLimits
from studio.media.probe import open_video, probe_video, rotation_of, video_stream


class VideoReader:
    """A re-iterable stream of ``(H, W, 3)`` uint8 RGB frames from a video file.

    Each ``iter()`` re-opens the file and decodes on the fly, so memory stays constant
    whatever the length. ``max_side`` (optional) downscales while decoding, keeping the
    aspect ratio, so a 4K driving video never exists in memory at full size. Frames come
    out upright (display rotation applied) and in decode order; a variable-frame-rate file
    yields its frames without retiming, and ``info.fps`` is its average rate.

    A decoding error part-way through raises ``UnreadableVideo`` naming the frame where it
    happened, rather than ending the stream quietly: a render from a silently shortened
    driving video would look complete and be wrong. (Files cut short are refused earlier,
    by ``probe_video``, where the container's index shows it.)

    ``limits`` (optional) is checked on every decoded frame, not on the header: a file whose
    header under-declares its length, rate or size stops with ``VideoExceedsLimit`` at the first
    frame past the limit, before that frame is yielded.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_side: int | None = None,
        max_duration_seconds: float | None = MAX_VIDEO_SECONDS,
        limits: DecodedLimits | None = None,
    ) -> None:
        if max_side is not None and max_side < 2:
            raise ValueError(f"max_side must be at least 2, got {max_side}")
        self.path = Path(path)
        self.info = probe_video(self.path, max_duration_seconds=max_duration_seconds)
        self.max_side = max_side
        self.limits = limits
        self.size = _fit_within(self.info.width, self.info.height, max_side)
        """(width, height) of the frames this reader yields."""

    def __iter__(self) -> Iterator[np.ndarray]:
        width, height = self.size
        quarter_turns = self.info.rotation // 90
        # swscale works on the stored (unrotated) picture, so ask it for the rotated size.
        coded_w, coded_h = (height, width) if quarter_turns % 2 else (width, height)
        with open_video(self.path) as container:
            stream = video_stream(container)
            stream.thread_type = "AUTO"
            frames = _decode_checked(container, stream)
            if self.limits is not None:
                frames = _within_limits(frames, self.limits, fps=self.info.fps)
            for frame in frames:
                rgb = frame.to_ndarray(
                    format="rgb24", width=coded_w, height=coded_h, interpolation="AREA"
                )  # (h, w, 3)
                if quarter_turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))
                yield rgb

    def luma(self) -> Iterator[np.ndarray]:
        """The decoded luma plane of each frame: ``(H, W)`` uint8, upright, at the stored size.

        No colour conversion and no scaling (``max_side`` does not apply): the cheapest view
        of what the file delivers, for checks that only need brightness, such as reading back
        a watermark. Planar YUV and grey formats give their Y plane as decoded (video range
        for most H.264); any other pixel format is converted to grey.
        """
        return _luma_planes(self.path, self.info.rotation)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """Frames in batches of ``n`` (the last one may be shorter): ``(<=n, H, W, 3)``.

        Each batch is a fresh array filled in place as frames decode, rather than a list of
        frames stacked at the end, which would hold every frame twice.
        """
        if n < 1:
            raise ValueError(f"chunk size must be positive, got {n}")
        width, height = self.size
        batch = np.empty((n, height, width, 3), np.uint8)  # (n, H, W, 3)
        filled = 0
        for frame in self:
            batch[filled] = frame
            filled += 1
            if filled == n:
                yield batch
                batch = np.empty((n, height, width, 3), np.uint8)
                filled = 0
        if filled:
            yield batch[:filled]


def luma_planes(path: str | Path) -> Iterator[np.ndarray]:
    """``VideoReader(path).luma()`` without probing the file first: for a file this process
    has just written and trusts (the render pipeline's read-back of its own output), where
    the probe's checks and its extra decode are pure cost (about 50 ms at 1080p). The display
    rotation is taken from the first frame."""
    return _luma_planes(Path(path), None)


def _luma_planes(path: Path, rotation: int | None) -> Iterator[np.ndarray]:
    """Y planes as ``VideoReader.luma`` describes; ``rotation`` None: read from the first frame."""
    with open_video(path) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        for frame in _decode_checked(container, stream):
            if rotation is None:
                rotation = rotation_of(frame)
            name = frame.format.name
            if name.startswith(("yuv", "yuvj", "gray")) and len(frame.planes) in (1, 3, 4) \
                    and not name.startswith(("yuyv", "uyvy")) and "16" not in name and "10" not in name:
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            else:
                y = frame.to_ndarray(format="gray")  # (h, w)
            if rotation // 90:
                y = np.rot90(y, k=rotation // 90)
            yield np.ascontiguousarray(y)


def _decode_checked(container: Any, stream: Any) -> Iterator[Any]:
    """Decoded frames, with FFmpeg errors turned into ``UnreadableVideo`` at a known frame."""
    import av

    frames = container.decode(stream)
    index = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            raise UnreadableVideo(f"The video is damaged after frame {index} and cannot be decoded further.") from exc
        index += 1
        yield frame


def _within_limits(frames: Iterator[Any], limits: DecodedLimits, *, fps: float) -> Iterator[Any]:
    """``frames`` until one goes past ``limits``, then ``VideoExceedsLimit`` (that frame is not yielded).

    A frame's length is taken as 1/``fps`` (the rate the output is written at), so the clip's
    length after ``n`` frames is the larger of ``n / fps`` and the span of the decoded
    timestamps plus one frame: the count catches extra frames, the timestamps catch gaps.
    """
    frame_limit = limits.frames if limits.frames is not None else int(limits.seconds * fps + 1e-6)
    first_time: float | None = None
    count = 0
    for frame in frames:
        count += 1
        if max(frame.width, frame.height) > limits.max_side:
            raise VideoExceedsLimit(
                f"Frame {count} of the video is {frame.width} x {frame.height} pixels; "
                f"the limit is {limits.max_side} pixels a side."
            )
        stamp = frame.time  # seconds, None when the stream carries no timestamps
        if stamp is not None:
            first_time = stamp if first_time is None else min(first_time, stamp)
        span = 0.0 if stamp is None or first_time is None else stamp - first_time
        seconds = max(count / fps, span + 1 / fps)
        if count > frame_limit or seconds > limits.seconds + 1e-6:
            raise VideoExceedsLimit(
                f"The video runs past {limits.seconds:g} s, the longest {limits.seconds_source} allows "
                f"(frame {count} ends at {seconds:.2f} s), whatever its header declares."
            )
        if span > 0 and count > limits.max_fps and (count - 1) / span > limits.max_fps:
            raise VideoExceedsLimit(
                f"The video's frames come at {(count - 1) / span:.0f} per second; the limit is {limits.max_fps:g}."
            )
        yield frame


def _fit_within(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Scale (width, height) down so the longer side is at most ``max_side``; never up."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))
