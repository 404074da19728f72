"""A generated driving set for expression transfer, and the per-frame measures on it.

The driver is a *different* person from the animated subject: one public-domain portrait
is posed frame by frame (mouth openings, blinks, head turns) by warping its own landmark
regions (``models.synthetic.make_expression``), with a fixed seed. The measures run the
project's face analysis (``FaceAnalyzer``: 478 MediaPipe points, dlib embedding) on the
driver and on the animated output. Used by ``benchmarks/expression.py`` and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.errors import NoFaceFound
from models.face import FaceAnalyzer
from models.synthetic import make_expression

FOREHEAD, CHIN = 10, 152  # mesh points at the top and bottom of the face's midline
INNER_UPPER_LIP, INNER_LOWER_LIP = 13, 14
BLINK_FRACTION = 0.3  # a frame is a blink when its eye aperture is under 30 % of the open eye's


@dataclass(frozen=True)
class ExpressionSchedule:
    """Per-frame targets of the generated driver (arrays of length T)."""

    mouth: np.ndarray  # extra lip gap, mouth widths
    blink: np.ndarray  # eye closure in [0, 1]
    rotation: np.ndarray  # in-plane head rotation, degrees
    neutral: np.ndarray  # bool: no expression and no motion (sharpness is measured here)


def make_schedule(frames: int = 48, *, seed: int = 0) -> ExpressionSchedule:
    """A still start (6 frames), two mouth openings, two blinks and a head turn, placed
    with a fixed seed so they do not overlap."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)
    mouth = np.zeros(frames)
    blink = np.zeros(frames)
    rotation = np.zeros(frames)
    # mouth openings: cos^2 bumps 7 frames wide
    for centre in (10, 30):
        c = centre + int(rng.integers(-1, 2))
        amp = float(rng.uniform(0.25, 0.45))
        u = np.clip(np.abs(t - c) / 4.0, 0, 1)
        mouth = np.maximum(mouth, amp * np.cos(0.5 * np.pi * u) ** 2)
    # blinks: 3 frames, closure 0.6 / 1 / 0.6
    for centre in (18, 40):
        c = centre + int(rng.integers(-1, 2))
        for dt, v in ((-1, 0.6), (0, 1.0), (1, 0.6)):
            if 0 <= c + dt < frames:
                blink[c + dt] = v
    # head turn: a smooth excursion over the second half
    amp = float(rng.uniform(8.0, 12.0)) * (1 if rng.random() < 0.5 else -1)
    span = (t >= frames // 2) & (t < frames - 2)
    phase = (t - frames // 2) / max(frames - 2 - frames // 2, 1)
    rotation = np.where(span, amp * np.sin(np.pi * phase) ** 2, 0.0)
    neutral = (mouth < 1e-3) & (blink < 1e-3) & (np.abs(rotation) < 1e-3)
    return ExpressionSchedule(mouth=mouth, blink=blink, rotation=rotation, neutral=neutral)


def make_driver(photo: np.ndarray, schedule: ExpressionSchedule, analyzer: FaceAnalyzer) -> np.ndarray:
    """(T, H, W, 3) uint8: the photo posed as ``schedule`` says (its own landmarks warped)."""
    face = analyzer.analyze(photo)
    x0, y0, x1, y1 = face.box
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    h, w = photo.shape[:2]
    out = np.empty((len(schedule.mouth), h, w, 3), np.uint8)
    for t in range(len(out)):
        posed = make_expression(photo, face.landmarks, mouth=float(schedule.mouth[t]), blink=float(schedule.blink[t]))
        m = cv2.getRotationMatrix2D(centre, float(schedule.rotation[t]), 1.0)
        out[t] = cv2.warpAffine(posed, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out


def make_still_driver(photo: np.ndarray, frames: int = 12, *, seed: int = 0, noise: float = 2.0) -> np.ndarray:
    """A still driver: the photo repeated with fresh sensor noise (sigma ``noise`` grey
    levels) in each frame, as a camera pointed at a motionless face gives."""
    rng = np.random.default_rng(seed)
    base = photo.astype(np.float32)
    return np.stack([np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
                     for _ in range(frames)])


def mouth_gap(landmarks: np.ndarray) -> float:
    """Inner-lip gap divided by face height (forehead to chin along the mesh midline)."""
    gap = np.linalg.norm(landmarks[INNER_UPPER_LIP, :2] - landmarks[INNER_LOWER_LIP, :2])
    return float(gap / max(np.linalg.norm(landmarks[FOREHEAD, :2] - landmarks[CHIN, :2]), 1e-6))


def track(analyzer: FaceAnalyzer, frames) -> list[np.ndarray]:
    """Static-mode mesh of every frame (each frame analysed on its own)."""
    return [analyzer.analyze(np.ascontiguousarray(f)).landmarks for f in frames]


def track_video(analyzer: FaceAnalyzer, frames, *, settle: int = 3) -> list[np.ndarray]:
    """Video-mode mesh of a clip in one pass, read as the animator reads its driver: a fresh
    track, settled ``settle`` extra calls on the first frame. Static mode reads the open mouth
    of a photo that shows teeth erratically (docs/motion.md); the tracker is steadier."""
    analyzer.new_video()
    out = []
    for i, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)
        for _ in range(1 + (settle if i == 0 else 0)):
            points = analyzer.landmarks(frame)
        if points is None:
            raise NoFaceFound(f"no face was tracked in frame {i}")
        out.append(points)
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def amplitude_ratio(driver: np.ndarray, output: np.ndarray, neutral: np.ndarray) -> float:
    """Least-squares slope of the output's change against the driver's change, each taken
    from its own median over the neutral frames."""
    d = driver - np.median(driver[neutral])
    o = output - np.median(output[neutral])
    return float((d @ o) / max(d @ d, 1e-12))


def blink_events(aperture: np.ndarray, neutral: np.ndarray, fraction: float = BLINK_FRACTION) -> list[tuple[int, int]]:
    """Runs (first, last) of frames whose aperture is under ``fraction`` of the open eye's
    (median over the neutral frames)."""
    closed = aperture < fraction * np.median(aperture[neutral])
    runs, start = [], None
    for i, c in enumerate(closed):
        if c and start is None:
            start = i
        if not c and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(closed) - 1))
    return runs


def mesh_blink_fraction(driver_eye: np.ndarray, neutral: np.ndarray) -> float:
    """The blink threshold the face mesh can see: half way down the driver's deepest dip.

    MediaPipe never reports a lid gap under ~43 % of the open eye's, even on a photo whose
    eyes are painted out, so the 30 % rule finds no blink at all; this threshold is the
    driver's own, and the output must cross it at the same frames."""
    open_eye = float(np.median(driver_eye[neutral]))
    return 1.0 - 0.5 * (1.0 - float(driver_eye.min()) / open_eye)


def blink_scores(driver_eye: np.ndarray, output_eye: np.ndarray, neutral: np.ndarray,
                 fraction: float = BLINK_FRACTION) -> dict[str, float]:
    """Driver blinks reproduced within 1 frame (recall), output blinks that match a driver
    blink within 1 frame (precision), their F1 and the count of false output blinks; a blink
    is an aperture under ``fraction`` of the open eye's, for driver and output alike."""
    d, o = blink_events(driver_eye, neutral, fraction), blink_events(output_eye, neutral, fraction)

    def near(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] - 1 <= b[1] and b[0] - 1 <= a[1]

    hit = sum(any(near(a, b) for b in o) for a in d)
    good = sum(any(near(b, a) for a in d) for b in o)
    recall = hit / len(d) if d else float("nan")
    precision = good / len(o) if o else (1.0 if not d else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if d and precision + recall > 0 else 0.0
    return {"driver_blinks": len(d), "reproduced": hit, "f1": f1, "false": len(o) - good}


def sharpness(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Variance of the Laplacian of the grey image over ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    grey = cv2.cvtColor(np.ascontiguousarray(image[max(y0, 0):y1, max(x0, 0):x1]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def frame_to_frame(frames) -> float:
    """Mean absolute difference between consecutive frames, grey levels."""
    f = np.asarray(frames, dtype=np.float32)
    return float(np.abs(np.diff(f, axis=0)).mean()) if len(f) > 1 else 0.0
