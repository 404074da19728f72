"""Expression transfer across identities on the generated driving set (fixed seed).

Grace Hopper's portrait, posed by warping its own landmark regions (mouth openings,
blinks, a head turn; ``models.expression_metrics``), drives the astronaut's photo through
the default ``LandmarkAnimator``; the project's face analysis measures driver and output.
The thresholds are the ones this animator reaches (see docs/motion.md for the numbers and
for the targets of issue 22 that it does not reach yet).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

import models.landmark.animator as landmark_animator
from models import expression_metrics as em
from models.face import FaceAnalyzer, eye_aperture
from models.landmark import LandmarkAnimator
from models.landmark.expression import MAX_PITCH, MAX_YAW, _rotation, head_turn, limit_turn
from models.landmark.keypoints import face_axis_scale, transfer_points, transfer_points_rigid
from models.landmark.warp import DenseWarp
from models.synthetic import make_expression, turn_head
from studio_support import verified_consent

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
UNIQUE = np.array([255, 0, 255])  # the driver's mouth interior; neither photo has this colour


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def setup(analyzer: FaceAnalyzer, astronaut: np.ndarray, grace_hopper: np.ndarray):
    schedule = em.make_schedule(48, seed=0)
    driver = em.make_driver(grace_hopper, schedule, analyzer)
    face = analyzer.analyze(astronaut)
    verified = verified_consent(face.embedding, now=NOW)
    out = list(LandmarkAnimator().animate(verified, astronaut, list(driver)))
    return schedule, driver, face, verified, out


@pytest.fixture(scope="module")
def series(analyzer: FaceAnalyzer, setup) -> dict[str, np.ndarray]:
    schedule, driver, _, _, out = setup
    mesh = FaceAnalyzer(with_embedding=False)
    d, o = em.track(mesh, driver), em.track(mesh, out)
    return {"d_mouth": np.array([em.mouth_gap(p) for p in em.track_video(mesh, driver)]),
            "o_mouth": np.array([em.mouth_gap(p) for p in em.track_video(mesh, out)]),
            "d_eye": np.array([eye_aperture(p) for p in d]), "o_eye": np.array([eye_aperture(p) for p in o])}


def test_mouth_follows_a_different_driver(setup, series) -> None:
    """Hopper drives the astronaut; mouth read by the tracker over each clip."""
    schedule = setup[0]
    r = em.pearson(series["d_mouth"], series["o_mouth"])
    amp = em.amplitude_ratio(series["d_mouth"], series["o_mouth"], schedule.neutral)
    assert r >= 0.9, (r, series)
    assert 0.75 <= amp <= 1.25, amp


def test_mouth_follows_in_the_other_direction(analyzer: FaceAnalyzer, setup, astronaut: np.ndarray,
                                              grace_hopper: np.ndarray) -> None:
    """The astronaut (a smiling photo that shows teeth) drives Hopper: the direction whose
    static-mesh amplitude read 1.34 (docs/motion.md)."""
    schedule = setup[0]
    driver = em.make_driver(astronaut, schedule, analyzer)
    verified = verified_consent(analyzer.analyze(grace_hopper).embedding, now=NOW)
    out = list(LandmarkAnimator().animate(verified, grace_hopper, list(driver)))
    mesh = FaceAnalyzer(with_embedding=False)
    d = np.array([em.mouth_gap(p) for p in em.track_video(mesh, driver)])
    o = np.array([em.mouth_gap(p) for p in em.track_video(mesh, out)])
    assert em.pearson(d, o) >= 0.9, (d, o)
    assert 0.75 <= em.amplitude_ratio(d, o, schedule.neutral) <= 1.25, (d, o)


def test_blinks_are_carried_over_without_false_blinks(setup, series) -> None:
    """A blink is an aperture under half of the driver's deepest dip (the mesh rule); the
    output must cross the same fraction of its own open eye within one frame."""
    neutral = setup[0].neutral
    fraction = em.mesh_blink_fraction(series["d_eye"], neutral)
    scores = em.blink_scores(series["d_eye"], series["o_eye"], neutral, fraction)
    assert scores["driver_blinks"] == 2
    assert scores["false"] == 0, scores
    assert scores["reproduced"] == 2 and scores["f1"] >= 0.95, (scores, series["d_eye"], series["o_eye"])
    # the issue's own rule (under 30 % of the open eye) sees no blink in the driver at all: the
    # mesh never reads a lid gap that small (see docs/motion.md), so it cannot be asserted
    assert em.blink_scores(series["d_eye"], series["o_eye"], neutral)["driver_blinks"] == 0


def test_neutral_frames_keep_the_photo_detail(setup, astronaut: np.ndarray) -> None:
    schedule, _, face, _, out = setup
    ref = em.sharpness(astronaut, face.box)
    ratios = [em.sharpness(out[t], face.box) / ref for t in np.flatnonzero(schedule.neutral)]
    assert np.median(ratios) >= 0.85, ratios


def test_identity_stays_the_subject(analyzer: FaceAnalyzer, setup) -> None:
    _, _, face, _, out = setup
    dists = [float(np.linalg.norm(analyzer.analyze(f).embedding - face.embedding)) for f in out[::4]]
    assert np.median(dists) <= 0.35, dists


def test_a_still_driver_gives_a_still_output(setup, grace_hopper: np.ndarray, astronaut: np.ndarray) -> None:
    verified = setup[3]
    still = em.make_still_driver(grace_hopper, frames=8, seed=0)
    out = list(LandmarkAnimator().animate(verified, astronaut, list(still)))
    assert em.frame_to_frame(out) <= 0.5


def test_no_driver_pixels_reach_the_output(analyzer: FaceAnalyzer, setup, grace_hopper: np.ndarray,
                                           astronaut: np.ndarray) -> None:
    """The driver's open mouth is painted a colour found in neither photo; the output's open
    mouth is drawn from the subject's photo only, so that colour never appears."""
    schedule, _, _, verified, _ = setup
    lm = analyzer.analyze(grace_hopper).landmarks
    frames = []
    for amount in (0.0, 0.2, 0.4, 0.3, 0.0):
        posed = make_expression(grace_hopper, lm, mouth=amount, blink=0.0).copy()
        cavity = (np.abs(posed.astype(int) - [45, 18, 22]).max(axis=2) < 12) & (grace_hopper.max(axis=2) > 60)
        posed[cavity] = UNIQUE
        frames.append(posed)
    painted = sum(int((np.abs(f.astype(int) - UNIQUE).max(axis=2) == 0).sum()) for f in frames)
    assert painted > 200  # the driver really shows the colour
    assert not (np.abs(astronaut.astype(int) - UNIQUE).max(axis=2) < 40).any()
    out = list(LandmarkAnimator().animate(verified, astronaut, frames))
    for frame in out:
        assert not (np.abs(frame.astype(int) - UNIQUE).max(axis=2) < 40).any()


def test_large_head_turns_are_limited_smoothly(analyzer: FaceAnalyzer, setup) -> None:
    """The astronaut's real 3-D mesh, turned in 3-D: small turns pass unchanged, large ones
    approach the documented limits (22 degrees yaw, 15 pitch; a turn of both stays inside
    their ellipse, in its own direction) monotonically and never pass them; the in-plane tilt
    is kept."""
    face = setup[2]
    ref = face.landmarks.astype(np.float64)
    centre = ref[:468].mean(axis=0)

    def turned(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
        out = ref.copy()
        out[:, :3] = (ref[:, :3] - centre) @ _rotation(yaw, pitch, roll).T + centre
        return out

    small = turned(8.0, 5.0)
    assert limit_turn(small, ref) is small  # within 60 % of the limits' ellipse: untouched
    last = 0.0
    for yaw in (16.0, 20.0, 30.0, 45.0, 70.0):
        _, got, _, _ = head_turn(limit_turn(turned(yaw, 0.0), ref), ref)
        assert last < got < MAX_YAW, (yaw, got)
        last = got
    _, yaw, pitch, roll = head_turn(limit_turn(turned(-50.0, 40.0, 12.0), ref), ref)
    assert 0.9 < np.hypot(yaw / MAX_YAW, pitch / MAX_PITCH) < 1.0, (yaw, pitch)
    assert abs((yaw / MAX_YAW) / (pitch / MAX_PITCH) - (-50.0 / MAX_YAW) / (40.0 / MAX_PITCH)) < 0.02
    assert abs(roll - 12.0) < 0.5


def test_turns_past_the_limits_render_without_folds(analyzer: FaceAnalyzer, setup, grace_hopper: np.ndarray,
                                                    astronaut: np.ndarray, monkeypatch) -> None:
    """Hopper's photo turned as a cylinder (``turn_head``; the mesh reads up to ~34 degrees of
    yaw, past the 22-degree limit) drives the astronaut. Every frame's backward warp keeps
    orientation (Jacobian determinant > 0 over the whole moving window: no fold, no tear),
    the turn reaching the warp is under the limit, and the output stays the astronaut (dlib
    distance median <= 0.35; the cylinder is a crude turn, its worst frame reads up to 0.4)."""
    verified = setup[3]
    lm = analyzer.analyze(grace_hopper).landmarks
    frames = [turn_head(grace_hopper, lm, yaw) for yaw in (0, 0, 15, 30, 45, 55, 45, 20, 0, -20, -45, -55, -30, 0)]
    dets, turns = [], []

    class Checked(DenseWarp):  # the real warp, with each frame's map checked before use
        def __call__(self, kp_new, new_points):
            _, _, map_x, map_y = self.backward_map(kp_new, new_points)
            dx_dy, dx_dx = np.gradient(map_x)
            dy_dy, dy_dx = np.gradient(map_y)
            dets.append(float((dx_dx * dy_dy - dx_dy * dy_dx).min()))
            return super().__call__(kp_new, new_points)

    def limited(pose, reference):
        out = limit_turn(pose, reference)
        turns.append((head_turn(pose, reference)[1], head_turn(out, reference)[1]))
        return out

    monkeypatch.setattr(landmark_animator, "DenseWarp", Checked)
    monkeypatch.setattr(landmark_animator, "limit_turn", limited)
    out = list(LandmarkAnimator().animate(verified, astronaut, frames))
    assert max(abs(before) for before, _ in turns) > MAX_YAW, turns  # the driver does go past the limit
    assert all(abs(after) < MAX_YAW for _, after in turns), turns
    assert len(dets) == len(frames) and min(dets) > 0, dets
    source = analyzer.analyze(astronaut).embedding
    dists = [float(np.linalg.norm(analyzer.analyze(f).embedding - source)) for f in out]
    assert np.median(dists) <= 0.35 and max(dists) <= 0.4, [round(d, 3) for d in dists]


def test_a_tilting_driver_turns_the_subject_rigidly(analyzer: FaceAnalyzer, astronaut: np.ndarray,
                                                    grace_hopper: np.ndarray) -> None:
    """The astronaut (lips apart) tilts her head 10 degrees; Hopper (lips closed) must tilt the
    same way with her own face unchanged. The plain relative rule moves Hopper's lips by the
    astronaut's displacements and pulls them apart; the rigid rule does not."""
    ref = analyzer.analyze(astronaut).landmarks.astype(np.float64)
    src = analyzer.analyze(grace_hopper).landmarks.astype(np.float64)
    centre = ref[:468, :2].mean(axis=0)
    pose = ref.copy()
    pose[:, :2] = (ref[:, :2] - centre) @ _rotation(0.0, 0.0, 10.0)[:2, :2].T + centre
    alpha = face_axis_scale(src, ref)
    rigid = transfer_points_rigid(src, pose, ref, alpha=alpha)
    s_centre = src[:468, :2].mean(axis=0)
    expected = (src[:, :2] - s_centre) @ _rotation(0.0, 0.0, 10.0)[:2, :2].T + s_centre
    assert np.abs(rigid - expected).max() < 1e-6
    plain = transfer_points(src, pose, ref, relative=True, alpha=alpha, absolute_scale=alpha)
    closed = em.mouth_gap(src)
    assert abs(em.mouth_gap(rigid) - closed) < 1e-6
    assert em.mouth_gap(plain) - closed > 0.005  # the shear the rigid rule removes
