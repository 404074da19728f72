"""LandmarkAnimator on synthetic driving clips made from the astronaut photo.

The driving clips come from ``models.synthetic`` with known head motion, so the expected
landmark positions of every output frame follow from FOMM's relative-transfer rule; all
animation goes through ``Animator.animate`` with a real ``VerifiedConsent``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from consent.verify import VerifiedConsent
from models.animate import AnimationOptions
from models.errors import NoFaceFound
from models.face import Face, FaceAnalyzer, eye_aperture, mouth_aperture
from models.landmark import LandmarkAnimator
from models.landmark.keypoints import best_frame, hull_area
from models.synthetic import MotionSpec, make_driving_clip
from studio_support import verified_consent

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
HEAD = MotionSpec(rotation=10.0, translation=(0.08, 0.05), scale=0.06, mouth_open=0.0, blink_at=None)
FACE = MotionSpec(rotation=0.0, translation=(0.0, 0.0), scale=0.0, mouth_open=0.35, mouth_cycles=1.0,
                  blink_at=0.3, blink_width=0.06)
T_HEAD = 15  # frames 0, 7 and 14 are the photo's own pose
T_FACE = 20


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def mesh() -> FaceAnalyzer:
    """Landmarks only (no embedding): for measuring many frames."""
    return FaceAnalyzer(with_embedding=False)


@pytest.fixture(scope="module")
def source_face(analyzer: FaceAnalyzer, astronaut: np.ndarray) -> Face:
    return analyzer.analyze(astronaut)


@pytest.fixture(scope="module")
def verified(source_face: Face) -> VerifiedConsent:
    return verified_consent(source_face.embedding, now=NOW)


@pytest.fixture(scope="module")
def head_clip(astronaut: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    return make_driving_clip(astronaut, frames=T_HEAD, motion=HEAD)


@pytest.fixture(scope="module")
def head_output(verified: VerifiedConsent, astronaut: np.ndarray, head_clip) -> list[np.ndarray]:
    return list(LandmarkAnimator().animate(verified, astronaut, list(head_clip[0])))


@pytest.fixture(scope="module")
def face_clip(astronaut: np.ndarray) -> np.ndarray:
    return make_driving_clip(astronaut, frames=T_FACE, motion=FACE)[0]


@pytest.fixture(scope="module")
def face_output(verified: VerifiedConsent, astronaut: np.ndarray, face_clip: np.ndarray) -> list[np.ndarray]:
    return list(LandmarkAnimator().animate(verified, astronaut, list(face_clip)))


def _expected_landmarks(source: np.ndarray, affines: list[np.ndarray]) -> list[np.ndarray]:
    """Where the output's landmarks belong, derived from the known driving motion.

    The driving frame t shows the photo's face moved by the affine M_t, so its landmarks are
    D_t = M_t(S). The animator takes as reference the driving frame whose normalised shape is
    closest to the source (here one with M_ref = identity, up to detector noise), and moves
    the source by alpha (D_t - D_ref) with alpha = sqrt(hull(S)) / sqrt(hull(D_ref)) (FOMM's
    adapt_movement_scale; 1 / scale of M_ref, so 1 here). Hence E_t = S + alpha (D_t - D_ref)."""
    s = source[:, :2].astype(np.float64)
    driving = [s @ m[:, :2].T + m[:, 2] for m in affines]
    ref = best_frame(s, driving)
    alpha = np.sqrt(hull_area(s)) / np.sqrt(hull_area(driving[ref]))
    return [s + alpha * (d - driving[ref]) for d in driving]


def test_output_frames_have_the_photo_size(head_output: list[np.ndarray], astronaut: np.ndarray) -> None:
    assert len(head_output) == T_HEAD
    assert all(f.shape == astronaut.shape and f.dtype == np.uint8 for f in head_output)


def test_landmarks_follow_the_driving_head_motion(
    mesh: FaceAnalyzer, source_face: Face, head_clip, head_output: list[np.ndarray]
) -> None:
    expected = _expected_landmarks(source_face.landmarks, head_clip[1])
    errors = []
    for frame, want in zip(head_output, expected):
        got = mesh.analyze(frame).landmarks[:, :2]
        errors.append(np.linalg.norm(got - want, axis=1).mean() / source_face.width())
    assert np.mean(errors) < 0.03, errors
    assert max(errors) < 0.05, errors
    # and the motion is really there: the largest expected shift is well above the tolerance
    shift = max(np.linalg.norm(e - source_face.landmarks[:, :2], axis=1).mean() for e in expected)
    assert shift / source_face.width() > 0.08


def test_identity_is_preserved(analyzer: FaceAnalyzer, source_face: Face, head_output: list[np.ndarray]) -> None:
    for frame in head_output[1::3]:
        distance = np.linalg.norm(analyzer.analyze(frame).embedding - source_face.embedding)
        assert distance < 0.4


def test_no_tearing_between_consecutive_frames(
    verified: VerifiedConsent, source_face: Face, astronaut: np.ndarray
) -> None:
    """First-order bound: a pixel whose content moves by d px changes by at most about
    d * |grad I| nearby. d is the largest expected landmark step between the two frames
    (+1 px for detector jitter); |grad I| is the larger Sobel gradient of the two frames,
    max-filtered over a window as wide as that step; 12 grey levels allow for bilinear
    resampling of sharp edges. A tear (a fold or a rip in the warp) moves content by more
    than d and breaks the bound -- checked below on a deliberately torn frame.
    The clip is the first 10 frames of a slow 60-frame motion, so steps are ~2-4 px."""
    clip, affines = make_driving_clip(astronaut, frames=60, motion=HEAD)
    clip, affines = clip[:10], affines[:10]
    out = list(LandmarkAnimator().animate(verified, astronaut, list(clip)))
    expected = _expected_landmarks(source_face.landmarks, affines)
    seen = 0
    for t in range(1, len(out)):
        step = float(np.linalg.norm(expected[t] - expected[t - 1], axis=1).max()) + 1.0
        assert _tear_pixels(out[t - 1], out[t], step) == 0, t
        torn = out[t].copy()  # a band of the face slips sideways by three steps
        shift = int(3 * step)
        torn[100:140, 150:300] = out[t][100:140, 150 + shift : 300 + shift]
        found = _tear_pixels(out[t - 1], torn, step)
        assert found > 0, t
        seen += found
    # the bicubic warp keeps the hair's edges sharp, which widens the per-pixel allowance:
    # a single early frame may show only a few torn pixels, the clip shows hundreds
    assert seen > 200, seen


def _tear_pixels(before: np.ndarray, after: np.ndarray, step: float) -> int:
    a, b = before.astype(np.float32), after.astype(np.float32)
    size = 2 * int(np.ceil(step)) + 3
    grad = cv2.dilate(np.maximum(_gradient(a), _gradient(b)), np.ones((size, size), np.uint8))
    jump = np.abs(b - a).max(axis=2)
    return int((jump > step * grad + 12.0).sum())


def _gradient(image: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3) / 8
    return np.sqrt(gx**2 + gy**2).max(axis=2)


@pytest.fixture(scope="module")
def apertures(mesh: FaceAnalyzer, face_clip: np.ndarray, face_output: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Mouth and eye apertures measured by the face mesh on every driving and output frame."""
    found = {"driving": [mesh.analyze(f).landmarks for f in face_clip],
             "output": [mesh.analyze(f).landmarks for f in face_output]}
    return {f"{what}_{side}": np.array([fn(lm) for lm in found[side]])
            for what, fn in (("mouth", mouth_aperture), ("eye", eye_aperture)) for side in found}


def test_mouth_opening_shows(apertures: dict[str, np.ndarray]) -> None:
    driving, output = apertures["mouth_driving"], apertures["mouth_output"]
    assert np.corrcoef(driving, output)[0, 1] > 0.9, (driving, output)
    assert output.max() - output[0] > 0.6 * (driving.max() - driving[0])


def test_blink_shows(apertures: dict[str, np.ndarray]) -> None:
    """MediaPipe reports a synthetic full blink as a ~40 % smaller eye aperture, and sees
    that again through our warp; we require the output's dip where the driving's is and
    clearly above the jitter of the open-eye frames."""
    driving, output = apertures["eye_driving"], apertures["eye_output"]
    blink = int(np.argmin(driving))
    assert abs(int(np.argmin(output)) - blink) <= 1, (driving, output)
    open_frames = np.abs(np.arange(T_FACE) - blink) > 3
    dip = np.median(output[open_frames]) - output.min()
    assert dip > 4 * output[open_frames].std() and dip > 0.03, (driving, output)
    assert np.corrcoef(driving, output)[0, 1] > 0.7


def test_frames_without_a_face_hold_the_last_pose(
    verified: VerifiedConsent, astronaut: np.ndarray, head_clip
) -> None:
    clip = head_clip[0]
    blank = np.full_like(clip[0], 127)
    driving = [blank, clip[0], clip[3], blank, clip[5]]
    out = list(LandmarkAnimator().animate(verified, astronaut, driving))
    assert len(out) == 5
    assert np.array_equal(out[0], out[1])  # a leading gap takes the first pose
    assert np.array_equal(out[3], out[2])  # a gap holds the last pose
    assert not np.array_equal(out[4], out[2])
    with pytest.raises(NoFaceFound, match="driving video"):
        list(LandmarkAnimator().animate(verified, astronaut, [blank, blank]))
    streamed = list(LandmarkAnimator().animate(verified, astronaut, driving,
                                               options=AnimationOptions(find_best_frame=False)))
    assert np.array_equal(streamed[3], streamed[2])


def test_best_frame_makes_motion_relative_to_the_closest_pose(
    verified: VerifiedConsent, astronaut: np.ndarray, head_clip
) -> None:
    """Driving = [tilted, as-photo, tilted]: with best-frame alignment the as-photo frame is
    the reference and reproduces the photo; without it the first (tilted) frame is the
    reference, and the as-photo frame rotates the photo the other way."""
    clip = head_clip[0]
    driving = [clip[3], clip[7], clip[11]]
    animator = LandmarkAnimator()
    best = list(animator.animate(verified, astronaut, driving, options=AnimationOptions(reference="closest")))
    first = list(animator.animate(verified, astronaut, driving, options=AnimationOptions(find_best_frame=False)))
    rest = list(animator.animate(verified, astronaut, [clip[7]]))[0]  # a one-frame clip: the photo itself
    assert np.abs(best[1].astype(int) - rest).mean() < 0.5
    assert np.abs(first[1].astype(int) - rest).mean() > 2.0
    assert np.array_equal(first[0], rest)  # its own reference


def test_progress_is_reported_per_frame(verified: VerifiedConsent, astronaut: np.ndarray, head_clip) -> None:
    calls: list[tuple[int, int | None]] = []
    frames = list(head_clip[0][:4])
    list(LandmarkAnimator().animate(verified, astronaut, frames, progress=lambda d, t: calls.append((d, t))))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls.clear()
    list(LandmarkAnimator().animate(verified, astronaut, iter(frames), options=AnimationOptions(find_best_frame=False),
                                    progress=lambda d, t: calls.append((d, t)), total_frames=4))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_whole_image_and_absolute_modes(verified: VerifiedConsent, astronaut: np.ndarray, head_clip) -> None:
    frames = list(head_clip[0][:3])
    whole = list(LandmarkAnimator().animate(verified, astronaut, frames,
                                            options=AnimationOptions(paste_back=False, reference="closest")))
    assert [f.shape for f in whole] == [astronaut.shape] * 3
    assert np.abs(whole[0].astype(int) - astronaut).max() <= 1  # frame 0 is the reference: no motion
    absolute = list(LandmarkAnimator().animate(verified, astronaut, frames,
                                               options=AnimationOptions(relative=False)))
    assert [f.shape for f in absolute] == [astronaut.shape] * 3
    far = np.ones(astronaut.shape[:2], bool)
    far[:300, 100:380] = False
    assert np.array_equal(absolute[2][far], astronaut[far])


def test_paste_back_into_a_1080p_photo(verified: VerifiedConsent, astronaut: np.ndarray, head_clip) -> None:
    photo = np.full((1080, 1920, 3), 60, np.uint8)
    photo[400:912, 900:1412] = astronaut
    out = list(LandmarkAnimator().animate(verified, photo, list(head_clip[0][2:5]),
                                          options=AnimationOptions(reference="closest")))
    assert [f.shape for f in out] == [photo.shape] * 3
    far = np.ones(photo.shape[:2], bool)
    far[400:760, 1000:1300] = False  # the head and its surroundings
    for frame in out:
        assert np.array_equal(frame[far], photo[far])
    assert np.abs(out[1].astype(int) - photo).max() > 50  # the head did move


def test_animate_demands_a_verified_consent(astronaut: np.ndarray) -> None:
    for fake in (None, {"consent": "trust me"}, "urn:uuid:1"):
        with pytest.raises(TypeError, match="VerifiedConsent"):
            LandmarkAnimator().animate(fake, astronaut, [astronaut])  # type: ignore[arg-type]


def test_large_portraits_are_warped_at_their_own_resolution(
    verified: VerifiedConsent, astronaut: np.ndarray, head_clip
) -> None:
    """On a 1024 px photo the head box is ~400 px: the warp works at that size rather than at
    the 256 px crop_size, so the reference pose gives back the photo itself, not a blur."""
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    out = list(LandmarkAnimator().animate(verified, big, [head_clip[0][0]],
                                          options=AnimationOptions(find_best_frame=False)))[0]
    assert np.abs(out.astype(int) - big).mean() < 0.05

    def sharpness(image: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(image[140:360, 360:540], cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())

    assert sharpness(out) > 0.95 * sharpness(big)


def test_head_crop_past_the_photo_border(verified: VerifiedConsent, astronaut: np.ndarray, head_clip) -> None:
    """A face close to the top-left corner: the head crop extends past the photo (mirrored
    in), and the result is still the photo's size with the far side untouched."""
    corner = np.ascontiguousarray(astronaut[40:, 150:])  # face ~30 px from the top and left edges
    out = list(LandmarkAnimator().animate(verified, corner, list(head_clip[0][2:4]),
                                          options=AnimationOptions(reference="closest")))
    assert [f.shape for f in out] == [corner.shape] * 2
    assert np.array_equal(out[1][300:], corner[300:]) and np.array_equal(out[1][:, 250:], corner[:, 250:])
    assert np.abs(out[1].astype(int) - corner).max() > 50
