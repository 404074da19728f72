"""The demo material: a driving clip of another person (Grace Hopper's portrait posed with
mouth openings, blinks and head turns) that the demo renders onto the consenting astronaut."""

from __future__ import annotations

import numpy as np
import pytest

from models import expression_metrics as em
from models.face import FaceAnalyzer, eye_aperture
from studio import media
from studio.demo import DEMO_FPS, demo_driving_frames, demo_schedule, ensure_demo, other_person_photo
from studio_support import small_pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    pipeline = small_pipeline(tmp_path_factory.mktemp("demo-home"))
    return ensure_demo(pipeline.config, pipeline), pipeline


def _eye_line_degrees(landmarks: np.ndarray) -> float:
    """Angle of the line through the two outer eye corners (mesh points 33 and 263)."""
    dx, dy = landmarks[263, :2] - landmarks[33, :2]
    return float(np.degrees(np.arctan2(dy, dx)))


def test_the_demo_driver_is_another_person_and_moves(demo) -> None:
    material, pipeline = demo
    info = media.probe_video(material.driving)
    assert info.fps == DEMO_FPS and 6.0 <= info.duration_seconds <= 8.0
    frames = np.stack(list(media.VideoReader(material.driving)))  # (T, H, W, 3)
    schedule = demo_schedule(len(frames))

    analyzer = FaceAnalyzer()
    first = analyzer.analyze(frames[0])
    subject = pipeline.face_analyzer().analyze(media.read_image(material.photo))
    assert np.linalg.norm(first.embedding - subject.embedding) > 0.6  # not the consenting subject

    still = first.landmarks
    mouth_peak = int(np.argmax(schedule.mouth))
    assert em.mouth_gap(analyzer.analyze(frames[mouth_peak]).landmarks) > em.mouth_gap(still) + 0.1
    blinks = np.flatnonzero(schedule.blink == 1.0)
    assert len(blinks) >= 2
    for t in blinks:
        assert eye_aperture(analyzer.analyze(frames[t]).landmarks) < 0.6 * eye_aperture(still)
    for degrees in (schedule.rotation.min(), schedule.rotation.max()):
        t = int(np.flatnonzero(schedule.rotation == degrees)[0])
        turned = _eye_line_degrees(analyzer.analyze(frames[t]).landmarks) - _eye_line_degrees(still)
        assert abs(degrees) >= 8 and abs(turned + degrees) < 3  # image y points down: the sign flips


def test_the_demo_driver_is_made_the_same_way_every_time() -> None:
    photo = other_person_photo()
    a = demo_driving_frames(photo, seconds=0.4)
    b = demo_driving_frames(photo, seconds=0.4)
    assert a.shape == (10, 512, 512, 3) and np.array_equal(a, b)
