"""Synthetic driving videos with known motion, made from one still photo.

No public-domain face *video* ships in any package we can use, so tests and the demo build
driving clips from a public-domain portrait: smooth head motion (rotation, scale and
translation about the face centre, sinusoidal in time), plus a mouth that opens and
closes and a blink, both as local warps placed with the face mesh. Because the head motion
is a known affine per frame, callers know where every landmark should be.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.face import (
    INNER_LIPS,
    LEFT_EYE_CORNERS,
    LEFT_EYE_LIDS,
    MOUTH_CORNERS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYE_LIDS,
    FaceAnalyzer,
)

_CAVITY_RGB = np.array([45, 18, 22], np.float32)  # inside of an open mouth


@dataclass(frozen=True, kw_only=True)
class MotionSpec:
    """Amplitudes of the synthetic motion. Angles in degrees, distances in face widths.

    Head pose follows ``sin(2 pi cycles t / (T - 1))``: frame 0 is the photo itself.
    The mouth opens as ``mouth_open * sin^2(pi mouth_cycles t / (T - 1))`` (extra lip gap
    in mouth widths); the blink closes the eyes fully at ``blink_at`` (fraction of the clip)
    with a Gaussian time profile of ``blink_width`` (fraction of the clip).
    """

    rotation: float = 8.0
    translation: tuple[float, float] = (0.08, 0.05)
    scale: float = 0.06
    cycles: float = 1.0
    mouth_open: float = 0.35
    mouth_cycles: float = 2.0
    blink_at: float | None = 0.5
    blink_width: float = 0.06

    def _phase(self, t: int, frames: int) -> float:
        return 2 * np.pi * self.cycles * t / max(frames - 1, 1)

    def affine(self, t: int, frames: int, *, centre: tuple[float, float], face_width: float) -> np.ndarray:
        """(2, 3) float64 map from photo px to frame-t px."""
        s = np.sin(self._phase(t, frames))
        c2 = np.sin(2 * self._phase(t, frames))
        m = cv2.getRotationMatrix2D(centre, self.rotation * s, 1 + self.scale * c2)
        m[0, 2] += self.translation[0] * face_width * s
        m[1, 2] += self.translation[1] * face_width * c2
        return m

    def mouth(self, t: int, frames: int) -> float:
        return self.mouth_open * float(np.sin(np.pi * self.mouth_cycles * t / max(frames - 1, 1)) ** 2)

    def blink(self, t: int, frames: int) -> float:
        """Eye closure in [0, 1]."""
        if self.blink_at is None:
            return 0.0
        x = (t / max(frames - 1, 1) - self.blink_at) / self.blink_width
        return float(np.exp(-0.5 * x * x)) if abs(x) < 3 else 0.0


def _window(x: np.ndarray, centre: float, half: float) -> np.ndarray:
    """cos^2 bump: 1 at ``centre``, 0 beyond ``half``."""
    u = np.clip(np.abs(x - centre) / half, 0, 1)
    return np.cos(0.5 * np.pi * u) ** 2


def _mouth_warp(map_y: np.ndarray, xs: np.ndarray, ys: np.ndarray, lm: np.ndarray, amount: float,
                face_width: float) -> np.ndarray:
    """Drop the lower lip and jaw by ``amount`` mouth widths (map_y edited in place).
    Returns the (H, W) float32 opacity of the dark cavity that opens between the lips."""
    left, right = lm[MOUTH_CORNERS[0], :2], lm[MOUTH_CORNERS[1], :2]
    width = float(np.linalg.norm(right - left))
    cx = float((left[0] + right[0]) / 2)
    y_line = float((lm[INNER_LIPS[0], 1] + lm[INNER_LIPS[1], 1]) / 2)
    y_chin = float(lm[:, 1].max())
    drop = amount * width * _window(xs, cx, 0.75 * width)  # (W,) lower-lip drop per column
    # below the lip line everything moves down by `drop`, fading out below the chin
    fade = np.clip(1 - (ys - y_chin) / (0.35 * face_width), 0, 1)  # (H,)
    moved = (ys[:, None] >= y_line + drop[None, :])
    map_y -= np.where(moved, drop[None, :] * fade[:, None], 0).astype(np.float32)
    gap = (ys[:, None] > y_line) & ~moved
    depth = np.clip(np.minimum(ys[:, None] - y_line, y_line + drop[None, :] - ys[:, None]) / 1.5, 0, 1)
    alpha = np.where(gap, depth, 0).astype(np.float32)
    map_y[gap] = y_line  # the gap would otherwise repeat the lip line; it is painted over
    return cv2.GaussianBlur(alpha, (0, 0), 0.8)


def _blink_warp(map_y: np.ndarray, xs: np.ndarray, ys: np.ndarray, lm: np.ndarray, closure: float) -> None:
    """Lower both upper eyelids by ``closure`` of the lid gap (map_y edited in place):
    the lid skin above stretches, the eye between the lids is squeezed to a line."""
    for (up, lo), (c0, c1) in ((RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS), (LEFT_EYE_LIDS, LEFT_EYE_CORNERS)):
        width = float(np.linalg.norm(lm[c0, :2] - lm[c1, :2]))
        ex = float((lm[c0, 0] + lm[c1, 0]) / 2)
        y_u, y_l = float(lm[up, 1]), float(lm[lo, 1])
        gap = max(y_l - y_u, 1.0)
        y_top = y_u - 0.6 * width
        win = _window(xs, ex, 0.75 * width)  # (W,)
        down = min(closure, 0.97) * gap * win
        y_u2 = y_u + down[None, :]  # (1, W) the lid's new row
        y = ys[:, None]  # (H, 1)
        cols = (win > 1e-6)[None, :]
        above = cols & (y >= y_top) & (y < y_u2)
        below = cols & (y >= y_u2) & (y <= y_l)
        src_above = y_top + (y - y_top) * (y_u - y_top) / (y_u2 - y_top)
        src_below = y_u + (y - y_u2) * (y_l - y_u) / np.maximum(y_l - y_u2, 1e-3)
        map_y[:] = np.where(above, src_above, np.where(below, src_below, map_y)).astype(np.float32)


def make_expression(image: np.ndarray, landmarks: np.ndarray, *, mouth: float, blink: float) -> np.ndarray:
    """The photo with the mouth opened by ``mouth`` mouth widths and eyes closed by ``blink``."""
    if mouth <= 0 and blink <= 0:
        return image
    h, w = image.shape[:2]
    face_width = float(np.ptp(landmarks[:, 0]))
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    map_x = np.broadcast_to(xs[None, :], (h, w)).astype(np.float32)
    map_y = np.broadcast_to(ys[:, None], (h, w)).astype(np.float32)
    cavity = None
    if blink > 0:
        _blink_warp(map_y, xs, ys, landmarks, blink)
    if mouth > 0:
        cavity = _mouth_warp(map_y, xs, ys, landmarks, mouth, face_width)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if cavity is not None:
        a = cavity[..., None]
        out = (out.astype(np.float32) * (1 - a) + _CAVITY_RGB * a).astype(np.uint8)
    return out


def turn_head(image: np.ndarray, landmarks: np.ndarray, yaw: float) -> np.ndarray:
    """The photo with the head turned by ``yaw`` degrees about its vertical axis, as if the
    head were a cylinder seen from afar: a horizontal remap inside an ellipse around the
    face, fading back to the photo outside it. Nothing hidden appears (the far side is only
    compressed), but the face mesh reads it as a 3-D turn (about 30 degrees of mesh yaw at
    45), which is what a driver turning past the animator's limits needs."""
    h, w = image.shape[:2]
    x0, y0 = landmarks[:, 0].min(), landmarks[:, 1].min()
    x1, y1 = landmarks[:, 0].max(), landmarks[:, 1].max()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    radius = 0.62 * (x1 - x0)  # the cylinder: a little wider than the face (cheeks, ears)
    xs = np.arange(w, dtype=np.float64)[None, :]
    ys = np.arange(h, dtype=np.float64)[:, None]
    angle = np.arcsin(np.clip((xs - cx) / radius, -0.999, 0.999)) - np.radians(yaw)
    turned = cx + radius * np.sin(np.clip(angle, -np.pi / 2, np.pi / 2))  # (1, W) source column
    rho = np.sqrt(((xs - cx) / (1.15 * radius)) ** 2 + ((ys - cy) / (0.75 * (y1 - y0))) ** 2)  # (H, W)
    weight = np.clip((1.2 - rho) / 0.4, 0, 1)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep: 1 on the head, 0 away from it
    map_x = (weight * turned + (1 - weight) * xs).astype(np.float32)
    map_y = np.broadcast_to(ys, (h, w)).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def make_driving_clip(
    image: np.ndarray,
    *,
    frames: int = 50,
    motion: MotionSpec = MotionSpec(),
    analyzer: FaceAnalyzer | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A (T, H, W, 3) uint8 clip of the photo's face moving as ``motion`` says, and the
    (2, 3) affine of each frame (photo px -> frame px) for the head motion."""
    if frames < 1:
        raise ValueError("frames must be at least 1")
    face = (analyzer or FaceAnalyzer(with_embedding=False)).analyze(image)
    lm = face.landmarks
    x0, y0, x1, y1 = face.box
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    h, w = image.shape[:2]
    clip = np.empty((frames, h, w, 3), np.uint8)  # (T, H, W, 3)
    affines = []
    for t in range(frames):
        still = make_expression(image, lm, mouth=motion.mouth(t, frames), blink=motion.blink(t, frames))
        m = motion.affine(t, frames, centre=centre, face_width=face.width())
        clip[t] = cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        affines.append(m)
    return clip, affines
