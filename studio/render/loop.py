"""Step 5 of the render: animate, label, watermark and encode, streaming in small batches.

``animate_label_mark_encode`` reads the driving video under the consent's and the studio's
limits (checked on the decoded frames, not the header), animates a batch of frames at a time,
draws the visible AI label where the render carries it, marks the batch in place, checks once
that the first marked batch carries the mark, and encodes. Nothing else of the render happens
here; a failure deletes the partial file and propagates.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from studio import media
from studio.errors import RenderCancelled, StudioError, TermsExceeded
from studio.render.confirm import confirm_first_frames
from studio.render.types import Job

if TYPE_CHECKING:  # pragma: no cover
    from watermark import Watermarker

BATCH_FRAMES = 8  # frames per animate/watermark/encode batch


@dataclass(frozen=True)
class Encoded:
    """The encoded, marked (not yet read back) video of one render attempt."""

    path: Path
    frames: int
    stage_seconds: dict[str, float] = field(default_factory=dict)  # animate, label, watermark, encode
    first_check_seconds: float = 0.0  # the check of the first marked batch (reported with the read-back)


def animate_label_mark_encode(
    job: Job,
    *,
    marker: Watermarker,
    payload: int,
    out: Path,
    max_video_seconds: float,
    cancelled: Callable[[], str | None],
) -> Encoded:
    """Render ``job``'s frames marked with ``payload`` into ``out`` (H.264, the driving audio)."""
    request, verified, info, report = job.request, job.verified, job.info, job.report
    label = job.label
    total = info.frame_count
    # The consent's duration and the studio's limits hold on the decoded frames, not the header.
    if verified.credential.max_duration_seconds <= max_video_seconds:
        limits = media.DecodedLimits(seconds=verified.credential.max_duration_seconds, seconds_source="the consent")
    else:
        limits = media.DecodedLimits(seconds=max_video_seconds, seconds_source="the studio's limit")
    driving = media.VideoReader(request.driving, max_duration_seconds=max_video_seconds, limits=limits)
    frames = _stop_past_limits(job.animator.animate(
        verified,
        job.photo,
        driving,
        options=request.options,
        progress=lambda done, n: report("animating", done, n or total),
        total_frames=total,
    ))
    writer: media.VideoWriter | None = None
    embedder = None
    written = 0
    t_first_check = 0.0
    t_anim = t_label = t_mark = t_enc = 0.0
    try:
        for batch, produce_seconds in _timed_batches(frames, BATCH_FRAMES):
            stop_if_cancelled(cancelled)
            t_anim += produce_seconds
            if label:
                t0 = time.perf_counter()
                for frame in batch:  # the batch is ours: label it in place
                    draw_ai_label(frame, out=frame)
                t_label += time.perf_counter() - t0
            t0 = time.perf_counter()
            if embedder is None:
                embedder = marker.embedder(batch.shape[1], batch.shape[2], payload)
            marked = embedder.embed(batch, out=batch)  # the batch is ours: mark it in place
            t_mark += time.perf_counter() - t0
            if written == 0:
                t0 = time.perf_counter()
                confirm_first_frames(marker, marked, payload)
                t_first_check = time.perf_counter() - t0
            t0 = time.perf_counter()
            if writer is None:
                writer = media.VideoWriter(
                    out, fps=info.fps, width=batch.shape[2], height=batch.shape[1], audio_from=request.driving
                )
            writer.write(marked)
            t_enc += time.perf_counter() - t0
            written += len(batch)
        if writer is None:
            raise StudioError("the driving video produced no frames")
        t0 = time.perf_counter()
        writer.close()
        t_enc += time.perf_counter() - t0
    except BaseException:
        if writer is not None:
            writer.abort()  # closes the encoder and deletes the partial file
        raise
    seconds = {"animate": t_anim, **({"label": t_label} if label else {}), "watermark": t_mark, "encode": t_enc}
    return Encoded(path=out, frames=written, stage_seconds=seconds, first_check_seconds=t_first_check)


def stop_if_cancelled(cancelled: Callable[[], str | None]) -> None:
    """Raise ``RenderCancelled`` if ``cancelled()`` names who cancelled the render."""
    who = cancelled()
    if who is not None:
        raise RenderCancelled(f"the render was cancelled by {who}; nothing was delivered")


def _stop_past_limits(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``frames``; a decoded frame past the consent's or studio's limits stops the render as a refusal."""
    try:
        yield from frames
    except media.VideoExceedsLimit as exc:
        raise TermsExceeded(f"{exc.user_message()} The render was stopped and nothing was delivered.") from exc


def _timed_batches(frames: Iterable[np.ndarray], n: int) -> Iterator[tuple[np.ndarray, float]]:
    """``(<=n, H, W, 3)`` batches of ``frames`` and the seconds spent producing each one."""
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        batch = list(itertools.islice(it, n))
        elapsed = time.perf_counter() - t0
        if not batch:
            return
        yield np.stack(batch), elapsed


def draw_ai_label(frame: np.ndarray, text: str = "AI-generated", *, out: np.ndarray | None = None) -> np.ndarray:
    """A visible disclosure label in the bottom-left corner, sized to the frame (``out=frame``: in place)."""
    import cv2

    out = frame.copy() if out is None else out
    h, w = out.shape[:2]
    scale = max(0.35, min(w, h) / 640)
    thickness = max(1, int(round(scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(3, int(6 * scale))
    x0, y1 = pad, h - pad
    y0 = y1 - th - base - 2 * pad
    box = out[max(0, y0) : y1, x0 : x0 + tw + 2 * pad]
    box[:] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    cv2.putText(out, text, (x0 + pad, y1 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
