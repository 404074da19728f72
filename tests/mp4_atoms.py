"""Rewrite the durations an MP4 declares (mvhd, tkhd, mdhd) without touching its samples.

The attack on "duration from the header": the sample table (and so every frame) stays as it
was, while the movie, track and media headers claim a shorter clip. Atoms are walked by their
size fields (32-bit, 64-bit ``largesize`` and "to the end"), versions 0 and 1 both handled.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

_CONTAINERS = {b"moov", b"trak", b"mdia"}


def atoms(buf: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, body offset, end offset) of every atom, descending into moov/trak/mdia."""
    end = len(buf) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, at)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", buf, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError(f"atom {kind!r} at {at} has an impossible size {size}")
        yield kind, at + header, at + size
        if kind in _CONTAINERS:
            yield from atoms(buf, at + header, at + size)
        at += size


def declare_duration(path: Path, seconds: float) -> dict[bytes, int]:
    """Make mvhd, every tkhd and every mdhd declare ``seconds``; returns how many of each were patched.

    The edit list (elst) is left alone: FFmpeg honours it when decoding, so shortening it would
    really cut the clip, which is not the attack.
    """
    buf = bytearray(path.read_bytes())
    movie_scale = None
    patched = {b"mvhd": 0, b"tkhd": 0, b"mdhd": 0}
    for kind, body, _end in atoms(buf):
        version = buf[body]
        wide = version == 1
        if kind in (b"mvhd", b"mdhd"):
            scale_at = body + 4 + (16 if wide else 8)  # after version/flags and the two times
            (scale,) = struct.unpack_from(">I", buf, scale_at)
            if kind == b"mvhd":
                movie_scale = scale
            struct.pack_into(">Q" if wide else ">I", buf, scale_at + 4, int(round(seconds * scale)))
        elif kind == b"tkhd":
            if movie_scale is None:
                raise ValueError("tkhd before mvhd")
            duration_at = body + 4 + (16 if wide else 8) + 8  # times, then track id and a reserved word
            struct.pack_into(">Q" if wide else ">I", buf, duration_at, int(round(seconds * movie_scale)))
        else:
            continue
        patched[kind] += 1
    path.write_bytes(bytes(buf))
    return patched
