"""models.synthetic: driving clips whose motion is known, so other tests can rely on it."""

from __future__ import annotations

import numpy as np
import pytest

from models.face import Face, FaceAnalyzer, eye_aperture, mouth_aperture
from models.synthetic import MotionSpec, make_driving_clip, make_expression


@pytest.fixture(scope="module")
def mesh() -> FaceAnalyzer:
    return FaceAnalyzer(with_embedding=False)


@pytest.fixture(scope="module")
def face(mesh: FaceAnalyzer, astronaut: np.ndarray) -> Face:
    return mesh.analyze(astronaut)


def test_clip_shape_and_first_frame_is_the_photo(mesh: FaceAnalyzer, astronaut: np.ndarray) -> None:
    clip, affines = make_driving_clip(astronaut, frames=6, motion=MotionSpec(), analyzer=mesh)
    assert clip.shape == (6, 512, 512, 3) and clip.dtype == np.uint8
    assert len(affines) == 6 and all(m.shape == (2, 3) for m in affines)
    assert np.allclose(affines[0], [[1, 0, 0], [0, 1, 0]])
    assert np.array_equal(clip[0], astronaut)


def test_landmarks_follow_the_returned_affines(mesh: FaceAnalyzer, face: Face, astronaut: np.ndarray) -> None:
    spec = MotionSpec(rotation=12.0, translation=(0.1, 0.06), scale=0.08, mouth_open=0.0, blink_at=None)
    clip, affines = make_driving_clip(astronaut, frames=9, motion=spec, analyzer=mesh)
    source = face.landmarks[:, :2].astype(np.float64)
    moved = 0.0
    for frame, m in zip(clip, affines):
        expected = source @ m[:, :2].T + m[:, 2]
        got = mesh.analyze(frame).landmarks[:, :2]
        assert np.linalg.norm(got - expected, axis=1).mean() < 0.02 * face.width()
        moved = max(moved, float(np.linalg.norm(expected - source, axis=1).mean()))
    assert moved > 0.1 * face.width()  # the motion is not trivially small


def test_head_motion_is_smooth(astronaut: np.ndarray, face: Face) -> None:
    spec = MotionSpec()
    centre = ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2)
    pts = face.landmarks[:, :2].astype(np.float64)
    moved = [pts @ m[:, :2].T + m[:, 2]
             for m in (spec.affine(t, 40, centre=centre, face_width=face.width()) for t in range(40))]
    jumps = [np.linalg.norm(b - a, axis=1).max() for a, b in zip(moved, moved[1:])]
    assert max(jumps) < 0.05 * face.width()  # no landmark moves more than 5 % of the face per frame


def test_mouth_opens_and_eyes_close(mesh: FaceAnalyzer, face: Face, astronaut: np.ndarray) -> None:
    rest_mouth, rest_eye = mouth_aperture(face.landmarks), eye_aperture(face.landmarks)
    opened = mesh.analyze(make_expression(astronaut, face.landmarks, mouth=0.35, blink=0.0)).landmarks
    closed = mesh.analyze(make_expression(astronaut, face.landmarks, mouth=0.0, blink=1.0)).landmarks
    assert mouth_aperture(opened) > rest_mouth + 0.05
    assert eye_aperture(closed) < 0.75 * rest_eye
    assert abs(eye_aperture(opened) - rest_eye) < 0.05  # each warp stays local
    assert make_expression(astronaut, face.landmarks, mouth=0.0, blink=0.0) is astronaut


def test_expression_profiles() -> None:
    spec = MotionSpec(mouth_open=0.3, mouth_cycles=1.0, blink_at=0.5, blink_width=0.05)
    assert spec.mouth(0, 21) == 0 and spec.mouth(10, 21) == pytest.approx(0.3)
    assert spec.blink(10, 21) == pytest.approx(1.0) and spec.blink(0, 21) == 0
    assert MotionSpec(blink_at=None).blink(5, 10) == 0


def test_rejects_empty_clip(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError):
        make_driving_clip(astronaut, frames=0)
