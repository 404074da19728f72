"""Expression layers on top of the dense warp: an open mouth's interior, eyelids that close,
and a steadier driver.

* ``MouthInterior``: when the transferred inner lips part further than in the photo, the
  gap is filled from the subject's own photo only: the part of the photo's visible mouth
  interior above its lips' midline (the upper teeth, if the photo shows them) moves rigidly
  with the upper lip, over a shaded cavity whose colour is the subject's own lip colour
  darkened, with a lighter tongue hint at the bottom (the lower lip covers the lower teeth).
  Nothing is taken from the driver's frame.
* ``close_lids``: the driver's eye closure (relative to its reference frame, corrected for
  the face mesh's under-reporting of blinks) moves the subject's upper-lid points onto the
  lower lid, so the warp stretches the subject's own lid skin over the eye.
* ``LandmarkFilter``: an adaptive low-pass on the driving landmarks: jitter below a
  fraction of the face size is smoothed away, real motion passes at once.
"""

from __future__ import annotations

import cv2
import numpy as np

# Inner-lip contour of the MediaPipe mesh, corner to corner (61/291 side corners 78/308).
UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
# Eyelid contours, corner to corner, upper and lower matched point by point.
RIGHT_UPPER = [246, 161, 160, 159, 158, 157, 173]
RIGHT_LOWER = [7, 163, 144, 145, 153, 154, 155]
LEFT_UPPER = [398, 384, 385, 386, 387, 388, 466]
LEFT_LOWER = [382, 381, 380, 374, 373, 390, 249]
RIGHT_IRIS = list(range(468, 473))
LEFT_IRIS = list(range(473, 478))
FOREHEAD, CHIN = 10, 152

_MESH_BLINK_GAIN = 2.5  # the mesh reports a full closure as only ~45-55 % less lid gap: undo that
_BOTH_EYES = 0.3  # the other eye closing by at least this share of one eye's closure: a blink
_CLOSURE_DEADZONE = 0.12  # measured closures below this are jitter
_OPEN_START = 0.006  # extra lip gap (face heights) at which the interior starts to show
_OPEN_FULL = 0.016  # ... and at which it is fully drawn


def lid_gap(points: np.ndarray, upper: list[int], lower: list[int]) -> float:
    return float(np.mean(points[lower, 1] - points[upper, 1]))


def eye_closure(pose: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Closure in [0, 1] of the (right, left) eye of ``pose`` relative to ``reference``."""
    out = []
    for up, lo in ((RIGHT_UPPER, RIGHT_LOWER), (LEFT_UPPER, LEFT_LOWER)):
        ref = max(lid_gap(reference, up, lo), 1e-3)
        measured = 1.0 - lid_gap(pose, up, lo) / ref
        c = (measured - _CLOSURE_DEADZONE) / (1.0 - _CLOSURE_DEADZONE)
        out.append(float(np.clip(_MESH_BLINK_GAIN * c, 0.0, 1.0)))
    # Both eyes closing together is a blink: the mesh often under-reads one eye (glasses,
    # glare), so both take the larger closure; one eye alone is a wink and stays one.
    if min(out) > _BOTH_EYES * max(out):
        out = [max(out)] * 2
    return out[0], out[1]


def close_lids(points: np.ndarray, closure: tuple[float, float]) -> np.ndarray:
    """(N, 2) ``points`` with each upper lid (and iris) moved towards the lower lid by its
    closure: lid skin covers the eye, the eye between is squeezed."""
    out = np.array(points, dtype=np.float64, copy=True)
    for (up, lo, iris), c in zip(((RIGHT_UPPER, RIGHT_LOWER, RIGHT_IRIS), (LEFT_UPPER, LEFT_LOWER, LEFT_IRIS)),
                                 closure):
        if c <= 0:
            continue
        gap_before = lid_gap(out, up, lo)
        target = out[lo] + 0.04 * (out[up] - out[lo])  # a hair-line of lash stays
        out[up] = out[up] + c * (target - out[up])
        if len(out) > max(iris):
            # the iris is squeezed with the eye: its points follow the lid gap's shrink
            low = out[lo, 1].mean()
            shrink = lid_gap(out, up, lo) / max(gap_before, 1e-3)
            out[iris, 1] = low + (out[iris, 1] - low) * shrink
    return out


class LandmarkFilter:
    """Adaptive exponential smoothing of (N, >=2) landmarks, per point: a step under
    ``jitter`` (fraction of the face height) is blended in at ``slow``; larger steps pass
    through proportionally faster, a step of 3x ``jitter`` at once."""

    def __init__(self, *, jitter: float = 0.004, slow: float = 0.25):
        self.jitter, self.slow = jitter, slow
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        p = np.asarray(points, dtype=np.float64)
        if self.state is None or self.state.shape != p.shape:
            self.state = p.copy()
            return points
        height = max(float(np.linalg.norm(p[FOREHEAD, :2] - p[CHIN, :2])), 1.0)
        step = np.linalg.norm(p[:, :2] - self.state[:, :2], axis=1) / (self.jitter * height)  # (N,)
        a = np.clip(self.slow + (1 - self.slow) * (step - 1) / 2, self.slow, 1.0)[:, None]
        self.state = self.state + a * (p - self.state)
        return self.state.astype(np.float32)


def _polygon(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points[UPPER_INNER], points[LOWER_INNER[-2:0:-1]]])[:, :2]


def _fill(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    return mask.astype(np.float32) / 255.0


def _face_height(points: np.ndarray) -> float:
    return max(float(np.linalg.norm(points[FOREHEAD, :2] - points[CHIN, :2])), 1.0)


def _lip_gap(points: np.ndarray) -> float:
    return float(np.mean(points[LOWER_INNER[1:-1], 1] - points[UPPER_INNER[1:-1], 1]))


class MouthInterior:
    """Draws the interior of a mouth that opens wider than in the photo (see module doc)."""

    def __init__(self, source: np.ndarray, source_points: np.ndarray):
        self.source = source
        self.points = np.asarray(source_points, dtype=np.float64)[:, :2]
        self.height = _face_height(self.points)
        self.gap = _lip_gap(self.points)
        h, w = source.shape[:2]
        poly = _polygon(self.points)
        inside = _fill((h, w), poly)
        # the photo's own interior above the lips' midline rides the upper lip
        xs = np.arange(w, dtype=np.float64)
        mid = 0.5 * (np.interp(xs, self.points[UPPER_INNER, 0], self.points[UPPER_INNER, 1])
                     + np.interp(xs, self.points[LOWER_INNER, 0], self.points[LOWER_INNER, 1]))
        rows = np.arange(h, dtype=np.float64)[:, None]
        self.upper_mask = (inside * (rows < mid[None, :])).astype(np.float32)
        # the subject's lip colour, from a ring just outside the inner contour
        ring = cv2.dilate((inside > 0.5).astype(np.uint8), np.ones((7, 7), np.uint8)) - (inside > 0.5)
        ring_px = source[ring.astype(bool)]
        lip = ring_px.reshape(-1, 3).astype(np.float32).mean(axis=0) if len(ring_px) else np.array([150, 80, 80.0])
        self.dark = (0.22 * lip).astype(np.float32)
        self.tongue = (0.62 * lip + 0.1 * np.array([255, 120, 120])).astype(np.float32)
        pad = int(0.6 * self.height)
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        self.window = (max(int(lo[0]) - pad, 0), max(int(lo[1]) - pad, 0),
                       min(int(hi[0]) + pad, w), min(int(hi[1]) + pad, h))

    def __call__(self, frame: np.ndarray, new_points: np.ndarray) -> np.ndarray:
        new = np.asarray(new_points, dtype=np.float64)[:, :2]
        extra = (_lip_gap(new) / _face_height(new) - self.gap / self.height)
        strength = float(np.clip((extra - _OPEN_START) / (_OPEN_FULL - _OPEN_START), 0.0, 1.0))
        if strength <= 0:
            return frame
        h, w = frame.shape[:2]
        poly = _polygon(new)
        lo = np.maximum(np.floor(poly.min(axis=0)).astype(int) - 3, 0)
        hi = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + 4, [w, h])
        if np.any(hi - lo < 2):
            return frame
        x0, y0 = lo
        sub = (hi[1] - y0, hi[0] - x0)
        mask = _fill(sub, poly - [x0, y0])  # (sh, sw)
        # shaded cavity: dark at the top and the corners, a tongue hint at the bottom
        yy, xx = np.mgrid[0:sub[0], 0:sub[1]].astype(np.float32)
        upper_y = np.interp(xx[0] + x0, new[UPPER_INNER, 0], new[UPPER_INNER, 1]) - y0
        lower_y = np.interp(xx[0] + x0, new[LOWER_INNER, 0], new[LOWER_INNER, 1]) - y0
        v = np.clip((yy - upper_y) / np.maximum(lower_y - upper_y, 1.0), 0, 1)  # 0 top .. 1 bottom
        cx = 0.5 * (new[UPPER_INNER[0], 0] + new[UPPER_INNER[-1], 0]) - x0
        half = max(0.5 * abs(new[UPPER_INNER[-1], 0] - new[UPPER_INNER[0], 0]), 1.0)
        u = np.clip(np.abs(xx - cx) / half, 0, 1)
        tongue = np.clip((v - 0.55) / 0.45, 0, 1) * (1 - u**2)
        cavity = self.dark[None, None] * (1 - tongue[..., None]) + self.tongue[None, None] * tongue[..., None] * 0.8
        cavity *= (1 - 0.35 * u**2)[..., None]
        layer = cavity
        # the photo's own upper teeth/interior, moved rigidly (similarity) with the upper lip
        if self.upper_mask.max() > 0:
            m, _ = cv2.estimateAffinePartial2D(self.points[UPPER_INNER].astype(np.float32),
                                               new[UPPER_INNER].astype(np.float32))
            if m is not None:
                m = m.copy()
                m[:, 2] -= [x0, y0]
                teeth = cv2.warpAffine(self.source, m, (sub[1], sub[0]), flags=cv2.INTER_LINEAR).astype(np.float32)
                a = cv2.warpAffine(self.upper_mask, m, (sub[1], sub[0]), flags=cv2.INTER_LINEAR)[..., None]
                a = a * mask[..., None]
                layer = layer * (1 - a) + teeth * a
        alpha = (strength * cv2.GaussianBlur(mask, (0, 0), 0.7))[..., None]
        out = frame.copy()
        region = out[y0:hi[1], x0:hi[0]].astype(np.float32)
        out[y0:hi[1], x0:hi[0]] = np.clip(region * (1 - alpha) + layer * alpha, 0, 255).astype(np.uint8)
        return out


_EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}


def cover_eyes(frame: np.ndarray, before: np.ndarray, after: np.ndarray,
               closure: tuple[float, float]) -> np.ndarray:
    """Draw closing lids: between each eye's open upper lid (``before``) and its closed
    position (``after``), the frame shows the subject's lid skin from just above the lid,
    slid down with the lid, and a soft lash line at the lid's edge. The squeezed eye that the
    warp alone leaves is covered, with no hole and no foreign texture."""
    out = frame
    h, w = frame.shape[:2]
    for (up, corners), c in zip(((RIGHT_UPPER, _EYE_CORNERS["right"]), (LEFT_UPPER, _EYE_CORNERS["left"])), closure):
        if c < 0.05:
            continue
        idx = [corners[0], *up, corners[1]]
        top, lid = before[idx, :2].astype(np.float64), after[idx, :2].astype(np.float64)
        order = np.argsort(top[:, 0])
        top, lid = top[order], lid[order]
        x0, x1 = int(np.floor(top[:, 0].min())), int(np.ceil(top[:, 0].max())) + 1
        travel = float(np.max(lid[:, 1] - top[:, 1]))
        margin = max(2.0, 0.5 * travel)
        y0 = int(np.floor(top[:, 1].min() - travel - margin)) - 2
        y1 = int(np.ceil(lid[:, 1].max())) + 3
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 - x0 < 3:
            continue
        xs = np.arange(x0, x1, dtype=np.float64)
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        t_y = np.interp(xs, top[:, 0], top[:, 1])[None, :]
        l_y = np.interp(xs, lid[:, 0], lid[:, 1])[None, :]
        shift = l_y - t_y + margin
        map_y = (ys - shift).astype(np.float32)
        map_x = np.broadcast_to(xs[None, :], map_y.shape).astype(np.float32)
        skin = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
        inside = np.clip(np.minimum(ys - t_y + 1.0, l_y - ys + 1.0), 0, 1)  # between the two lines
        ends = np.clip(np.minimum(xs - x0, x1 - 1 - xs) / max(0.15 * (x1 - x0), 1.0), 0, 1)[None, :]
        alpha = (inside * ends * min(1.0, 1.5 * c))[..., None].astype(np.float32)
        lash = np.exp(-0.5 * ((ys - l_y) / 0.9) ** 2) * ends * min(1.0, c)
        skin *= (1 - 0.45 * lash)[..., None]
        if out is frame:
            out = frame.copy()
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + skin * alpha, 0, 255).astype(np.uint8)
    return out


MAX_YAW = 22.0  # degrees: the largest head turn (left/right) a 2-D warp of one photo is asked to show
MAX_PITCH = 15.0  # degrees: the largest nod (up/down); a turn of both stays inside the ellipse of the two
_KNEE = 0.6  # turns up to this share of the limit pass unchanged; beyond it they are compressed


def _soft_limit(angle: float, limit: float) -> float:
    """Identity up to ``_KNEE * limit``, then a smooth (C1) approach to ``limit``, never past it."""
    knee = _KNEE * limit
    a = abs(angle)
    if a <= knee:
        return angle
    return float(np.sign(angle) * (knee + (limit - knee) * np.tanh((a - knee) / (limit - knee))))


def head_turn(pose: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(R, yaw, pitch, roll in degrees): the rotation taking the reference's 3-D mesh (x, y px,
    z depth) to the pose's, by a least-squares fit (Kabsch) of the 468 mesh points, with
    R = Rz(roll) Ry(yaw) Rx(pitch)."""
    p = np.asarray(pose, dtype=np.float64)[:468, :3]
    q = np.asarray(reference, dtype=np.float64)[:468, :3]
    p, q = p - p.mean(axis=0), q - q.mean(axis=0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1.0, 1.0, d]) @ vt  # proper rotation: q -> p
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return r, float(yaw), float(pitch), float(roll)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rz @ ry @ rx


def limit_turn(pose: np.ndarray, reference: np.ndarray, *, max_yaw: float = MAX_YAW,
               max_pitch: float = MAX_PITCH) -> np.ndarray:
    """The driving mesh (N, 3) with its head turn relative to ``reference`` limited: a turn
    within 60 % of the limits' ellipse (yaw / max_yaw, pitch / max_pitch) passes unchanged (the
    same array); beyond, the whole mesh is turned back in 3-D about its centre, in the same
    direction, so that the turn approaches the ellipse smoothly and never leaves it. Roll
    (in-plane tilt) and the expression (the mesh's shape) are kept."""
    if pose.shape[1] < 3:
        return pose
    r, yaw, pitch, roll = head_turn(pose, reference)
    # the turn's size relative to the limits' ellipse is limited, its direction kept
    size = float(np.hypot(yaw / max_yaw, pitch / max_pitch))
    limited = _soft_limit(size, 1.0)
    if limited == size:
        return pose
    new_yaw, new_pitch = yaw * limited / size, pitch * limited / size
    back = _rotation(new_yaw, new_pitch, roll) @ r.T  # undo the turn, redo the limited one
    p = np.asarray(pose, dtype=np.float64)
    centre = p[:468, :3].mean(axis=0)
    out = p.copy()
    out[:, :3] = (p[:, :3] - centre) @ back.T + centre
    return out.astype(pose.dtype)
