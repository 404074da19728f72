"""Clips with motion and the edits a published video goes through (re-encoding, scaling,
crops, tone changes...), as the watermark's tests and benchmark apply them.

Only public-domain images from scikit-image are used as content. H.264 goes through PyAV
(libx264, yuv420p) directly, in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import av
import cv2
import numpy as np

Attack = Callable[[np.ndarray], np.ndarray]


def panning_clip(image: np.ndarray, *, height: int, width: int, frames: int = 50, zoom: float = 0.7,
                 seed: int = 0) -> np.ndarray:
    """A camera panning (and slowly zooming) across ``image``: uint8 (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    ih, iw = image.shape[:2]
    aspect = width / height
    crop_h = min(ih * zoom, iw * zoom / aspect)
    start = rng.uniform(0, 1, 2)
    direction = rng.uniform(-1, 1, 2)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        ch = crop_h * (1.0 - 0.1 * t / max(frames - 1, 1))
        cw = ch * aspect
        fy = np.clip(start[0] + 0.5 * direction[0] * t / max(frames - 1, 1), 0, 1)
        fx = np.clip(start[1] + 0.5 * direction[1] * t / max(frames - 1, 1), 0, 1)
        y0, x0 = fy * (ih - ch), fx * (iw - cw)
        m = np.array([[cw / width, 0, x0], [0, ch / height, y0]], np.float64)
        out[t] = cv2.warpAffine(image, m, (width, height), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
    return out


def lit_backdrop(cover: np.ndarray, level: int, fraction: float, seed: int = 0) -> np.ndarray:
    """``cover`` (RGB or grey) with its top ``fraction`` replaced by a lit studio wall: flat grey
    ``level`` plus sensor noise (sigma 1.5 grey levels, seeded). A bright backdrop is common in
    studio footage and is what a brightness or contrast edit clips first. uint8 (H, W, 3)."""
    rgb = cover if cover.ndim == 3 else np.repeat(cover[:, :, None], 3, axis=2)
    out = np.ascontiguousarray(rgb[:, :, :3]).copy()
    rows = int(round(out.shape[0] * fraction))
    noise = np.random.default_rng(seed).normal(0.0, 1.5, (rows, *out.shape[1:]))
    out[:rows] = np.clip(level + noise + 0.5, 0, 255).astype(np.uint8)
    return out


def h264(frames: np.ndarray, crf: int, *, fps: int = 25, out_fps: int | None = None) -> np.ndarray:
    """Encode with libx264 (yuv420p, preset medium) at ``crf`` and decode again."""
    buf = io.BytesIO()
    t, h, w = frames.shape[:3]
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=out_fps or fps)
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: h - h % 2, : w - w % 2]), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r") as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def jpeg(frames: np.ndarray, quality: int = 50) -> np.ndarray:
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        ok, enc = cv2.imencode(".jpg", f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[i] = cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1]
    return out


def resize(frames: np.ndarray, factor: float) -> np.ndarray:
    h, w = frames.shape[1:3]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])


def crop(frames: np.ndarray, area: float, *, where: str = "center") -> np.ndarray:
    """Keep ``area`` of the frame with the same aspect ratio (centre or top-left corner)."""
    h, w = frames.shape[1:3]
    side = np.sqrt(area)
    ch, cw = int(round(h * side)), int(round(w * side))
    y0, x0 = ((h - ch) // 2, (w - cw) // 2) if where == "center" else (0, 0)
    return np.ascontiguousarray(frames[:, y0 : y0 + ch, x0 : x0 + cw])


def rotate(frames: np.ndarray, degrees: float) -> np.ndarray:
    h, w = frames.shape[1:3]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return np.stack([cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for f in frames])


def _tone(frames: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a per-value table: the same result as the arithmetic, without float copies of the clip."""
    return table.astype(np.uint8)[frames]


def brightness(frames: np.ndarray, delta: int) -> np.ndarray:
    return _tone(frames, np.clip(np.arange(256, dtype=np.int16) + delta, 0, 255))


def contrast(frames: np.ndarray, factor: float) -> np.ndarray:
    f = np.arange(256, dtype=np.float32)
    return _tone(frames, np.clip((f - 128) * factor + 128, 0, 255).round())


def noise(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).round().astype(np.uint8)


def blur(frames: np.ndarray, size: int = 3) -> np.ndarray:
    return np.stack([cv2.blur(f, (size, size)) for f in frames])


def frame_rate(frames: np.ndarray, src: int = 25, dst: int = 30) -> np.ndarray:
    """Resample time by nearest frame (duplicates), like a 25 -> 30 fps conversion."""
    n = int(round(len(frames) * dst / src))
    idx = np.minimum((np.arange(n) * src / dst).round().astype(int), len(frames) - 1)
    return frames[idx]


def excerpt(frames: np.ndarray, seconds: float = 1.0, fps: int = 25) -> np.ndarray:
    n = int(round(seconds * fps))
    start = (len(frames) - n) // 2
    return frames[start : start + n]


ATTACKS: dict[str, Attack] = {
    "none": lambda f: f,
    "h264_crf23": lambda f: h264(f, 23),
    "h264_crf28": lambda f: h264(f, 28),
    "h264_crf35": lambda f: h264(f, 35),
    "jpeg50": lambda f: jpeg(f, 50),
    "resize50": lambda f: resize(f, 0.5),
    "resize200": lambda f: resize(f, 2.0),
    "crop90": lambda f: crop(f, 0.9),
    "crop80": lambda f: crop(f, 0.8),
    "crop80_corner": lambda f: crop(f, 0.8, where="corner"),
    "rotate+2": lambda f: rotate(f, 2.0),
    "rotate-2": lambda f: rotate(f, -2.0),
    "brightness+30": lambda f: brightness(f, 30),
    "brightness-30": lambda f: brightness(f, -30),
    "contrast1.3": lambda f: contrast(f, 1.3),
    "noise5": lambda f: noise(f, 5.0),
    "blur3": blur,
    "fps25to30": frame_rate,
    "excerpt1s": excerpt,
    "crop90+crf28": lambda f: h264(crop(f, 0.9), 28),
}
