"""models.crop: head crops with border padding and paste-back at the photo's resolution."""

from __future__ import annotations

import numpy as np
import pytest

from models.crop import CropBox, PasteBack, elliptical_mask, extract_crop, plan_crop
from models.face import Face, FaceAnalyzer


@pytest.fixture(scope="module")
def face(astronaut: np.ndarray) -> Face:
    return FaceAnalyzer(with_embedding=False).analyze(astronaut)


def test_plan_crop_is_a_square_holding_the_whole_face(face: Face) -> None:
    box = plan_crop(face, (512, 512, 3), scale=1.9)
    x0, y0, x1, y1 = face.box
    assert box.x0 < x0 and box.y0 < y0 and box.x1 > x1 and box.y1 > y1
    assert box.size == pytest.approx(1.9 * max(x1 - x0, y1 - y0), abs=1)
    # the hair above the mesh gets more room than the neck below it
    assert (y0 - box.y0) > (box.y1 - y1)


def test_extract_crop_inside_is_a_resize(astronaut: np.ndarray) -> None:
    box = CropBox(x0=100, y0=50, size=200)
    crop = extract_crop(astronaut, box, 200)
    assert crop.shape == (200, 200, 3) and crop.dtype == np.uint8
    assert np.array_equal(crop, astronaut[50:250, 100:300])
    assert extract_crop(astronaut, box, 256).shape == (256, 256, 3)


def test_extract_crop_mirrors_past_the_border(astronaut: np.ndarray) -> None:
    box = CropBox(x0=-30, y0=400, size=160)  # 30 px off the left edge, 48 px off the bottom
    crop = extract_crop(astronaut, box, 160)
    padded = np.pad(astronaut, ((0, 48), (30, 0), (0, 0)), mode="reflect")  # numpy "reflect" == cv2 REFLECT_101
    assert np.array_equal(crop, padded[400:560, 0:160])


def test_extract_crop_outside_the_image_is_an_error(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError):
        extract_crop(astronaut, CropBox(x0=600, y0=0, size=50), 32)


def test_mask_is_one_inside_zero_at_corners() -> None:
    m = elliptical_mask(101)
    assert m[50, 50] == pytest.approx(1.0)
    assert m[0, 0] == 0 and m[0, 50] < 0.05 and m[100, 100] == 0
    assert np.all(np.diff(m[50, 50:]) <= 1e-6)  # falls monotonically towards the rim


def _canvas(astronaut: np.ndarray, h: int, w: int, at: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # texture everywhere: any leak shows
    canvas[at[0] : at[0] + 512, at[1] : at[1] + 512] = astronaut
    return canvas


def test_paste_back_keeps_resolution_and_leaves_the_rest_alone(astronaut: np.ndarray, face: Face) -> None:
    photo = _canvas(astronaut, 1080, 1920, (300, 700))
    shifted = Face(box=(face.box[0] + 700, face.box[1] + 300, face.box[2] + 700, face.box[3] + 300),
                   landmarks=face.landmarks, score=face.score)
    box = plan_crop(shifted, photo.shape)
    crop = extract_crop(photo, box, 256)
    paste = PasteBack(photo, box)
    changed = crop.copy()
    changed[96:160, 96:160] = 255 - changed[96:160, 96:160]  # an edit in the middle of the face
    out = paste(changed)
    assert out.shape == photo.shape and out.dtype == np.uint8
    outside = np.ones(photo.shape[:2], bool)
    outside[box.y0 : box.y1, box.x0 : box.x1] = False
    assert np.array_equal(out[outside], photo[outside])  # bit-exact away from the face
    centre = (box.y0 + box.size // 2, box.x0 + box.size // 2)
    assert np.abs(out[centre].astype(int) - photo[centre]).max() > 50  # the edit arrived
    # an unchanged crop pastes back as (almost) the photo: only resampling differences
    same = paste(crop)
    assert np.abs(same.astype(int) - photo).mean() < 1.0


def test_paste_back_caps_the_side_and_downscales_once(astronaut: np.ndarray) -> None:
    photo = _canvas(astronaut, 1600, 2400, (400, 900))
    box = CropBox(x0=1000, y0=420, size=300)
    paste = PasteBack(photo, box, max_side=1920)
    assert paste.shape == (1280, 1920, 3)
    out = paste(extract_crop(photo, box, 256))
    assert out.shape == (1280, 1920, 3)
    assert paste.box == CropBox(x0=800, y0=336, size=240)


def test_paste_back_box_past_the_border(astronaut: np.ndarray) -> None:
    box = CropBox(x0=-40, y0=-20, size=200)
    paste = PasteBack(astronaut, box, match_colors=False)
    out = paste(np.zeros((128, 128, 3), np.uint8))
    assert out.shape == astronaut.shape
    assert np.array_equal(out[200:], astronaut[200:]) and np.array_equal(out[:, 200:], astronaut[:, 200:])
    assert out[70, 60].max() < astronaut[70, 60].max()  # dark crop blended in near the box centre


def test_colour_matching_hides_a_colour_drift(astronaut: np.ndarray) -> None:
    """A generator that tints the whole crop must not leave a visible ring at the seam."""
    box = CropBox(x0=120, y0=20, size=220)
    crop = extract_crop(astronaut, box, 256)
    tinted = np.clip(crop.astype(int) + [40, -20, 10], 0, 255).astype(np.uint8)
    matched = PasteBack(astronaut, box)(tinted)
    plain = PasteBack(astronaut, box, match_colors=False)(tinted)
    ring = (elliptical_mask(220) > 0.05) & (elliptical_mask(220) < 0.6)
    region = (slice(20, 240), slice(120, 340))
    err_matched = np.abs(matched[region][ring].astype(int) - astronaut[region][ring]).mean()
    err_plain = np.abs(plain[region][ring].astype(int) - astronaut[region][ring]).mean()
    assert err_matched < 0.3 * err_plain
