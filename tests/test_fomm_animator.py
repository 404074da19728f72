"""FommAnimator: consent-gated, face crop in, animated frames out, best-frame semantics.

Tiny FOMM networks (random weights, converted to a safetensors folder) at a 128 px crop; the
driving clips are ``models.synthetic`` head motions of the astronaut photo.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from consent.verify import VerifiedConsent
from fomm_support import TINY, one_torch_thread, random_checkpoint  # noqa: F401 (autouse fixture)
from models.animate import AnimationOptions
from models.crop import extract_crop, plan_crop
from models.errors import NoFaceFound
from models.face import FaceAnalyzer
from models.fomm import animate_frames, convert_checkpoint
from models.fomm.animator import FommAnimator, _to_frames, _to_tensor
from models.synthetic import MotionSpec, make_driving_clip
from studio_support import verified_consent

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
HEAD = MotionSpec(rotation=10.0, translation=(0.08, 0.05), scale=0.06, mouth_open=0.0, blink_at=None)
CROP = 128




@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(with_embedding=False)


@pytest.fixture(scope="module")
def verified(astronaut: np.ndarray) -> VerifiedConsent:
    face = FaceAnalyzer().analyze(astronaut)
    return verified_consent(face.embedding, now=NOW)


@pytest.fixture(scope="module")
def animator(tmp_path_factory, analyzer) -> FommAnimator:
    folder = tmp_path_factory.mktemp("fomm")
    torch.save(random_checkpoint(TINY, seed=11), folder / "tiny.pth.tar")
    converted = convert_checkpoint(folder / "tiny.pth.tar", folder / "converted", config=TINY)
    return FommAnimator.from_checkpoint(converted, device="cpu", batch_size=3, analyzer=analyzer)


@pytest.fixture(scope="module")
def clip(astronaut: np.ndarray, analyzer) -> np.ndarray:
    """10 frames; the head is in the photo's own pose at index 5 (frame 7 of a 15-frame cycle)."""
    frames, _ = make_driving_clip(astronaut, frames=15, motion=HEAD, analyzer=analyzer)
    return frames[2:12]


def _crops(animator: FommAnimator, astronaut, clip, *, best: bool):
    """Source crop, driving crops and reference index, planned the way the animator plans them."""
    face = animator.analyzer.analyze(astronaut)
    box = plan_crop(face, astronaut.shape)
    plan = animator._plan_driving(list(clip), box.to_crop(face.landmarks, CROP), best=best)
    source = _to_tensor([extract_crop(astronaut, box, CROP)])
    driving = _to_tensor([extract_crop(frame, plan.box, CROP) for frame in clip])
    return source, driving, plan.reference_index


def test_animate_pastes_every_frame_back_into_the_photo(animator, verified, astronaut, clip):
    calls = []
    frames = list(animator.animate(verified, astronaut, list(clip), progress=lambda done, total: calls.append((done, total))))
    assert len(frames) == len(clip)
    assert all(frame.shape == astronaut.shape and frame.dtype == np.uint8 for frame in frames)
    assert calls == [(t + 1, len(clip)) for t in range(len(clip))]
    # Far from the face the photo is untouched; on the face the frames change over the clip.
    assert np.array_equal(frames[3][-20:, :20], astronaut[-20:, :20])
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 10


def test_crop_output_equals_animate_frames_on_the_planned_crops(animator, verified, astronaut, clip):
    options = AnimationOptions(paste_back=False, find_best_frame=False, crop_size=CROP)
    frames = np.stack(list(animator.animate(verified, astronaut, list(clip), options=options)))
    source, driving, reference = _crops(animator, astronaut, clip, best=False)
    assert reference == 0
    expected = _to_frames(animate_frames(animator.kp_detector, animator.generator, source, driving))
    assert frames.shape == (len(clip), CROP, CROP, 3)
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_best_frame_is_the_source_pose_and_motion_is_measured_from_it(animator, verified, astronaut, clip):
    source, driving, reference = _crops(animator, astronaut, clip, best=True)
    assert reference == 5
    options = AnimationOptions(paste_back=False, find_best_frame=True, crop_size=CROP)
    frames = np.stack(list(animator.animate(verified, astronaut, list(clip), options=options)))
    from_best = _to_frames(animate_frames(animator.kp_detector, animator.generator, source, driving[reference:]))
    assert np.abs(frames[reference:].astype(int) - from_best.astype(int)).max() <= 1
    from_first = np.stack(list(animator.animate(verified, astronaut, list(clip), options=AnimationOptions(
        paste_back=False, find_best_frame=False, crop_size=CROP))))
    assert np.abs(frames.astype(int) - from_first.astype(int)).mean() > 0.5


def test_driving_video_without_a_face_is_refused(animator, verified, astronaut):
    flat = [np.full((96, 96, 3), 128, np.uint8)] * 3
    with pytest.raises(NoFaceFound, match="driving"):
        list(animator.animate(verified, astronaut, flat))


def test_animate_demands_verified_consent(animator, astronaut, clip):
    with pytest.raises(TypeError, match="VerifiedConsent"):
        animator.animate(object(), astronaut, list(clip))  # type: ignore[arg-type]


def test_crop_size_must_suit_the_network(animator, verified, astronaut, clip):
    with pytest.raises(ValueError, match="multiple of 128"):
        list(animator.animate(verified, astronaut, list(clip), options=AnimationOptions(crop_size=100)))
