"""Opening videos safely and describing them (``probe_video``, ``VideoInfo``).

Every video input, whether probed, streamed or used as an audio source, is opened by
``open_video`` so that one list of FFmpeg demuxers decides what may parse an upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio.media.errors import (
    EmptyVideo,
    MediaFileMissing,
    NotAVideo,
    UnreadableVideo,
    VideoTooLarge,
)
from studio.media.limits import MAX_FPS, MAX_SIDE, MAX_VIDEO_SECONDS

# FFmpeg demuxers allowed to parse uploads. Playlist demuxers (hls, concat, dash) are left
# out on purpose: they open further files named inside the upload, a known way to read
# files from a server. The audio-only and single-image demuxers are there so that such
# uploads are recognised and refused with NotAVideo rather than a vague read error.
VIDEO_DEMUXERS = ",".join(
    (
        "mov,mp4,m4a,3gp,3g2,mj2",
        "matroska,webm",
        "avi,flv,asf,mpegts,mpeg,ogg,gif",
        "mp3,wav,flac,aac",
        "png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,tiff_pipe",
    )
)
_STILL_IMAGE_DEMUXERS = ("png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")
_FALLBACK_FPS = 25.0  # for the rare stream that states no rate and no frame count


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    """What the studio needs to know about a video before decoding all of it.

    ``width`` and ``height`` are the displayed size (after the display-matrix rotation that
    phones write; ``rotation`` is that angle, counter-clockwise). ``frame_count`` and
    ``duration_seconds`` are the video stream's, not the longest track's: read from the
    sample table (MP4/MOV) or counted from the video packets (others).
    ``frame_count_exact`` is False only where packets and frames may differ (AVI).
    """

    width: int
    height: int
    fps: float
    frame_count: int
    frame_count_exact: bool
    duration_seconds: float
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    rotation: int = 0


def probe_video(
    path: str | Path,
    *,
    max_side: int = MAX_SIDE,
    max_duration_seconds: float | None = MAX_VIDEO_SECONDS,
) -> VideoInfo:
    """Read a video's header and its first frame, and refuse what the studio cannot use.

    Decoding the first frame is what catches files whose header is intact but whose data is
    not (and MKV files that declare a stream but hold no frames). Raises
    ``MediaFileMissing``, ``UnreadableVideo``, ``NotAVideo``, ``EmptyVideo`` or
    ``VideoTooLarge``.
    """
    with open_video(path) as container:
        stream = video_stream(container)
        coded_w, coded_h = stream.codec_context.width, stream.codec_context.height
        # Limits first, from the header alone: decoding a huge frame, or reading a huge
        # file to count its frames, is the cost they exist to avoid.
        if max(coded_w, coded_h) > max_side:
            raise VideoTooLarge(
                f"The video is {coded_w} x {coded_h} pixels; the limit is {max_side} pixels a side."
            )
        _check_duration(_header_duration(container, stream), max_duration_seconds)
        _check_complete(container, Path(path).stat().st_size)
        fps, duration, frames, exact = _timing(container, stream)
        _check_duration(duration, max_duration_seconds)
        if fps > MAX_FPS:
            raise VideoTooLarge(f"The video declares {fps:.0f} frames per second; the limit is {MAX_FPS:g}.")
        audio = list(container.streams.audio)
        video_codec = stream.codec_context.name
    with open_video(path) as container:  # _timing may have read to the end
        first = _first_frame(container, video_stream(container))
    rotation = rotation_of(first)
    coded_w, coded_h = coded_w or first.width, coded_h or first.height
    width, height = (coded_h, coded_w) if rotation % 180 else (coded_w, coded_h)
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        frame_count=frames,
        frame_count_exact=exact,
        duration_seconds=duration,
        has_audio=bool(audio),
        video_codec=video_codec,
        audio_codec=audio[0].codec_context.name if audio else None,
        rotation=rotation,
    )


def open_video(path: str | Path) -> Any:
    """Open an input container, allowing only the demuxers in ``VIDEO_DEMUXERS``."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaFileMissing("The video file does not exist or is not a regular file.")
    if path.stat().st_size == 0:
        raise EmptyVideo("The video file is empty.")
    try:
        return av.open(
            str(path),
            "r",
            container_options={"format_whitelist": VIDEO_DEMUXERS},
            timeout=30.0,
        )
    except av.error.EOFError as exc:
        # A recognised container that ends before any stream can be described: in practice
        # an MKV/WebM written with no frames (or cut off right after its header).
        raise EmptyVideo("The video file ends before its first frame.") from exc
    except av.error.FFmpegError as exc:
        raise UnreadableVideo(
            "The file is not a video in a supported format (MP4, MOV, WebM, MKV, AVI) or it is damaged."
        ) from exc


def video_stream(container: Any) -> Any:
    """The first real video stream: cover art in audio files (attached_pic) does not count."""
    import av

    if container.format.name in _STILL_IMAGE_DEMUXERS:
        raise NotAVideo("The file is a still image, not a video.")
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if container.streams.audio:
        raise NotAVideo("The file holds only audio; a driving video needs moving pictures.")
    raise EmptyVideo("The video file holds no video frames.")


def _first_frame(container: Any, stream: Any) -> Any:
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise UnreadableVideo("The video is damaged: its first frame cannot be decoded.") from exc
    raise EmptyVideo("The video file holds no video frames.")


def _timing(container: Any, stream: Any) -> tuple[float, float, int, bool]:
    """(fps, duration in seconds, frame count, whether the count is exact).

    MP4/MOV sample tables give the count for free. Other containers either do not count
    (MKV/WebM: ``stream.frames`` is 0) or count packets rather than frames (AVI), and their
    duration is often the longest stream's, audio included; for those the video packets
    are counted by demuxing the file, which reads it but decodes nothing.
    """
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frames = int(stream.frames or 0)
    if frames > 0 and container.format.name.startswith("mov,"):
        duration = _header_duration(container, stream)
        exact = True
    else:
        frames, duration = _count_packets(container, stream)
        # One packet per frame holds for Matroska; AVI's MPEG-4 "not coded" packets do not
        # become frames, so there the count stays an estimate (within a frame or two).
        exact = container.format.name.startswith("matroska")
    if frames == 0:
        raise EmptyVideo("The video file holds no video frames.")
    if not rate and duration > 0:
        rate = Fraction(frames) / Fraction(duration)
    fps = float(rate) if rate else _FALLBACK_FPS
    return fps, duration or frames / fps, frames, exact


def _header_duration(container: Any, stream: Any) -> float:
    """The video stream's declared duration, else the container's (seconds; 0 if unknown)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def _count_packets(container: Any, stream: Any) -> tuple[int, float]:
    """(video packets holding data, seconds from the first to the end of the last)."""
    import av

    count, first, end = 0, None, None
    try:
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size == 0 or stamp is None:
                continue
            count += 1
            first = stamp if first is None else min(first, stamp)
            end = max(end or stamp, stamp + (packet.duration or 0))
    except av.error.FFmpegError as exc:
        raise UnreadableVideo("The video is damaged and cannot be read to its end.") from exc
    if count == 0 or first is None or end is None or stream.time_base is None:
        return count, 0.0
    return count, float((end - first) * stream.time_base)


def _check_duration(seconds: float, limit: float | None) -> None:
    if limit is not None and seconds > limit:
        raise VideoTooLarge(f"The video runs {seconds:.1f} s; the limit is {limit:g} s.")


def _check_complete(container: Any, file_size: int) -> None:
    """Refuse a file cut short: its index points at samples past the end of the file.

    MP4 written with ``+faststart`` keeps its index at the front, so a half-uploaded file
    still opens and decodes, then quietly ends early. Comparing the index with the file
    size catches that without reading the data. (MKV and WebM index only key frames, so a
    cut there shows up as a video that ends early.)
    """
    for stream in container.streams:
        entries = stream.index_entries
        if len(entries) and max(e.pos + e.size for e in entries) > file_size:
            raise UnreadableVideo("The video file is incomplete: it was cut short, perhaps during upload.")


def rotation_of(frame: Any) -> int:
    """Counter-clockwise display rotation in degrees, snapped to a multiple of 90."""
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, ValueError):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360
