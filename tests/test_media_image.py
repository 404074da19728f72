"""studio.media.read_image: every common format and colour mode becomes upright 8-bit RGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio import media


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def face(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[40:200:2, 150:350:2])  # (80, 100, 3), the face


def test_png_and_lossless_webp_round_trip_exactly_from_path_or_bytes(tmp_path: Path, face: np.ndarray) -> None:
    for fmt, options in (("PNG", {}), ("WEBP", {"lossless": True})):
        data = _encode(Image.fromarray(face), fmt, **options)
        path = tmp_path / f"face.{fmt.lower()}"
        path.write_bytes(data)
        for source in (data, path, str(path)):
            image = media.read_image(source)
            assert image.dtype == np.uint8 and image.shape == face.shape
            assert np.array_equal(image, face)


def test_jpeg_and_lossy_webp_decode_close_to_the_original(grace_hopper: np.ndarray) -> None:
    for fmt in ("JPEG", "WEBP"):
        image = media.read_image(_encode(Image.fromarray(grace_hopper), fmt, quality=95))
        assert image.shape == grace_hopper.shape
        assert np.abs(image.astype(int) - grace_hopper).mean() < 4


@pytest.mark.parametrize(
    "orientation,turn",
    [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))],
)
def test_exif_orientation_is_applied(face: np.ndarray, orientation: int, turn: object) -> None:
    """Orientation 6 is how a phone held upright stores its photo: rotate 90 degrees clockwise to view."""
    stored = Image.fromarray(face)  # (80, 100): wider than tall, as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # (80, 100, 3), not turned
    image = media.read_image(data)
    expected = turn(plain)  # type: ignore[operator]
    assert image.shape == expected.shape
    assert np.array_equal(image, expected)
    if orientation in (6, 8):
        assert image.shape[:2] == (100, 80)


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 16).astype(np.uint16).reshape(16, 64)  # (16, 64)
    path = tmp_path / "depth16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")
    image = media.read_image(path)
    assert image.shape == (16, 64, 3)
    assert np.array_equal(image[..., 0], image[..., 2])
    expected = np.rint(ramp / 257.0)
    assert np.abs(image[..., 0].astype(int) - expected).max() <= 1
    assert image.min() == 0 and image.max() == 255
    assert len(np.unique(image)) > 200, "a plain convert('RGB') would clip most of it to 255"


def test_cmyk_jpeg_becomes_rgb(face: np.ndarray) -> None:
    cmyk = Image.fromarray(face).convert("CMYK")
    image = media.read_image(_encode(cmyk, "JPEG", quality=95))
    assert image.shape == face.shape
    assert np.abs(image.astype(int) - face).mean() < 6


def test_grayscale_and_bilevel_images_fill_three_channels(face: np.ndarray) -> None:
    gray = Image.fromarray(face).convert("L")
    image = media.read_image(_encode(gray, "PNG"))
    assert image.shape == face.shape
    assert np.array_equal(image[..., 0], np.asarray(gray)) and np.array_equal(image[..., 0], image[..., 1])
    bilevel = media.read_image(_encode(gray.convert("1"), "PNG"))
    assert set(np.unique(bilevel)) <= {0, 255}


def test_palette_images_keep_their_colours(face: np.ndarray) -> None:
    palette = Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    for fmt in ("PNG", "GIF", "BMP"):
        image = media.read_image(_encode(palette, fmt))
        assert np.array_equal(image, np.asarray(palette.convert("RGB")))


def test_transparency_is_laid_on_white(face: np.ndarray) -> None:
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])  # (80, 100, 4)
    rgba[:, :50, 3] = 0  # left half fully transparent
    rgba[:, 50:60, 3] = 128  # a half-transparent band
    image = media.read_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert image.shape == face.shape
    assert (image[:, :50] == 255).all()
    assert np.array_equal(image[:, 60:], face[:, 60:])
    blend = (face[:, 50:60].astype(int) * 128 + 255 * 127) / 255
    assert np.abs(image[:, 50:60].astype(int) - blend).max() <= 1

    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((0, 0), 1)
    palette.info["transparency"] = 0  # colour 0 is see-through
    image = media.read_image(_encode(palette, "PNG", transparency=0))
    assert tuple(image[0, 0]) == (200, 100, 50) and tuple(image[1, 1]) == (255, 255, 255)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    image = media.read_image(data)
    assert image.shape == (8, 8, 3) and tuple(image[0, 0]) == (255, 0, 0)


def test_embedded_colour_profiles_are_applied_and_broken_ones_ignored(face: np.ndarray) -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tagged = media.read_image(_encode(Image.fromarray(face), "PNG", icc_profile=srgb))
    assert np.abs(tagged.astype(int) - face).max() <= 2  # sRGB -> sRGB is (nearly) the identity
    broken = media.read_image(_encode(Image.fromarray(face), "PNG", icc_profile=b"not a profile" * 10))
    assert np.array_equal(broken, face)


def test_dark_sixteen_bit_and_float_images_keep_their_scale(tmp_path: Path) -> None:
    dark = np.full((4, 4), 200, np.uint16)  # 200 / 65535: nearly black, not mid-gray
    path = tmp_path / "dark16.png"
    Image.fromarray(dark).save(path)
    assert media.read_image(path).max() <= 1

    unit = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4)
    tiff = tmp_path / "float.tiff"
    Image.fromarray(unit, mode="F").save(tiff)
    image = media.read_image(tiff)
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
