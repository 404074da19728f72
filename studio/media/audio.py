"""Carrying the driving video's audio track into the rendered MP4."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from studio.media.errors import UnreadableVideo
from studio.media.probe import open_video

_AAC_BITRATE = 128_000
# Containers whose AAC packets are raw (MP4-style) and can be copied as they are; AAC from
# MPEG-TS or .aac files carries ADTS headers and is re-encoded instead.
_COPY_FROM = ("mov,", "matroska")
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


class AudioCarry:
    """Moves one audio track from a source file into the output, a little at a time.

    ``pump(until=t)`` muxes everything that starts before ``t`` seconds (relative to the
    source's start), so audio and video interleave as they are written; ``finish(end)``
    drains up to ``end`` and flushes the encoder. AAC is copied packet by packet (trimmed to
    whole packets, about 21 ms); other codecs are decoded, resampled and encoded to AAC,
    trimmed to the sample.
    """

    def __init__(self, source: Any, in_stream: Any, out_stream: Any, *, copy: bool) -> None:
        import av

        self._source, self._in, self._out, self._copy = source, in_stream, out_stream, copy
        self._origin = (source.start_time or 0) / 1_000_000  # seconds, AV_TIME_BASE
        self._pending: Any = None
        self._done = False
        self._samples = 0
        if copy:
            self._items: Iterator[Any] = iter(source.demux(in_stream))
        else:
            self._resampler = av.AudioResampler(
                format=out_stream.codec_context.format.name,
                layout=out_stream.codec_context.layout.name,
                rate=out_stream.codec_context.sample_rate,
                frame_size=out_stream.codec_context.frame_size or 1024,
            )
            self._items = iter(source.decode(in_stream))

    @classmethod
    def open(cls, path: Path, out: Any) -> AudioCarry | None:
        """Set up the output audio stream from ``path``'s first audio track (None: no audio)."""
        source = open_video(path)
        if not source.streams.audio:
            source.close()
            return None
        in_stream = source.streams.audio[0]
        if in_stream.codec_context.name == "aac" and source.format.name.startswith(_COPY_FROM):
            return cls(source, in_stream, out.add_stream_from_template(in_stream), copy=True)
        rate = in_stream.codec_context.sample_rate or 48_000
        if rate not in _AAC_RATES:
            rate = 48_000
        channels = in_stream.codec_context.channels or 2
        out_stream = out.add_stream("aac", rate=rate, layout="mono" if channels == 1 else "stereo")
        out_stream.codec_context.bit_rate = _AAC_BITRATE
        return cls(source, in_stream, out_stream, copy=False)

    def pump(self, *, until: float, trim: bool = False) -> None:
        """Mux what starts before ``until``; with ``trim`` also cut what runs past it."""
        import av

        out = self._out.container
        try:
            while not self._done:
                item = self._pending if self._pending is not None else next(self._items, None)
                self._pending = None
                if item is None:
                    self._done = True
                    break
                start = self._seconds(item)
                if start is not None and start >= until:
                    self._pending = item  # belongs to a later stretch of video
                    break
                if self._copy:
                    self._mux_packet(item, out)
                else:
                    self._encode_frame(item, out, end=until if trim else None)
        except av.error.FFmpegError as exc:
            raise UnreadableVideo("The driving video's audio track is damaged.") from exc

    def finish(self, *, end: float) -> None:
        import av

        self.pump(until=end, trim=True)
        if self._copy:
            return
        try:
            for frame in self._resampler.resample(None):
                self._encode_resampled(frame, self._out.container, end=end)
            self._out.container.mux(self._out.encode(None))
        except av.error.FFmpegError as exc:
            raise UnreadableVideo("The driving video's audio track is damaged.") from exc

    def close(self) -> None:
        self._source.close()

    def _seconds(self, item: Any) -> float | None:
        if item.pts is None or item.time_base is None:
            return None
        return float(item.pts * item.time_base) - self._origin

    def _mux_packet(self, packet: Any, out: Any) -> None:
        if packet.dts is None and packet.size == 0:
            return  # the demuxer's end-of-stream marker
        shift = round(self._origin / packet.time_base) if packet.time_base else 0
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self._out
        out.mux(packet)

    def _encode_frame(self, frame: Any, out: Any, *, end: float | None) -> None:
        if self._samples == 0:
            # Keep a late-starting track late: its first sample sits where it sat in the source.
            start = self._seconds(frame) or 0.0
            self._samples = max(0, round(start * self._out.codec_context.sample_rate))
        frame.pts = None  # the resampler re-times; output pts count samples below
        for resampled in self._resampler.resample(frame):
            self._encode_resampled(resampled, out, end=end)

    def _encode_resampled(self, frame: Any, out: Any, *, end: float | None) -> None:
        rate = self._out.codec_context.sample_rate
        if end is not None:
            room = max(0, int(round(end * rate)) - self._samples)
            if room == 0:
                return
            if frame.samples > room:
                frame = _trim_audio_frame(frame, room)
        frame.pts = self._samples
        frame.time_base = Fraction(1, rate)
        self._samples += frame.samples
        out.mux(self._out.encode(frame))


def _trim_audio_frame(frame: Any, samples: int) -> Any:
    """The first ``samples`` of a planar frame (the AAC encoder's fltp, as resampled)."""
    import av

    planes = frame.to_ndarray()  # (channels, samples)
    trimmed = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(planes[:, :samples]), format=frame.format.name, layout=frame.layout.name
    )
    trimmed.sample_rate = frame.sample_rate
    return trimmed
