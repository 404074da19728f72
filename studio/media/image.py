"""Decoding uploaded photos into upright 8-bit RGB, refusing bombs before they go off.

Pillow parses only the header in ``Image.open``; the declared size is checked against the
limits there, so a small file that claims 50000 x 50000 pixels is refused without
allocating anything. Only the plugins in ``_IMAGE_FORMATS`` may parse uploads.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from studio.media.errors import ImageTooLarge, MediaFileMissing, UnreadableImage
from studio.media.limits import MAX_IMAGE_PIXELS, MAX_SIDE

# Pillow's JPEG plugin also opens the MPO files many phones write. Everything else Pillow
# can parse (EPS via Ghostscript, ICNS, PSD, TGA, ...) is refused.
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

# Transparent pixels are laid on white: cut-out portraits are usually meant for a light page,
# and black would leave dark fringes around hair.
_ALPHA_BACKGROUND = (255, 255, 255)


def read_image(
    source: str | Path | bytes,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int = MAX_SIDE,
) -> np.ndarray:
    """Decode an uploaded photo into ``(H, W, 3)`` uint8 RGB, upright as the camera meant.

    The declared dimensions are checked against ``max_pixels`` and ``max_side`` before any
    pixel data is decoded, so a tiny file that claims 50000 x 50000 pixels costs nothing.
    Raises ``MediaFileMissing``, ``UnreadableImage`` or ``ImageTooLarge``.
    """
    with _open_image(source) as header:
        _check_size(header, max_pixels=max_pixels, max_side=max_side)
        if header.format == "PNG":
            _verify_png(header)
    with _open_image(source) as image:  # verify() used the first one up
        rgb = _decode(image)  # (H, W, 3)
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UnreadableImage("The image has no pixels.")
    return np.ascontiguousarray(rgb)


def read_preview(source: str | Path | bytes, *, size: int = 256) -> np.ndarray:
    """A small ``(h, w, 3)`` uint8 RGB preview (longest side ``size``) for the web page.

    The same header limits as :func:`read_image` apply first; JPEGs are decoded at reduced
    scale (Pillow's draft mode), so a preview costs a fraction of a full decode.
    """
    with _open_image(source) as image:
        _check_size(image, max_pixels=MAX_IMAGE_PIXELS, max_side=MAX_SIDE)
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        rgb = _decode(image)  # (H, W, 3)
    step = max(1, -(-max(rgb.shape[:2]) // size))  # ceil division: every step-th pixel
    return np.ascontiguousarray(rgb[::step, ::step])


def _check_size(header: Any, *, max_pixels: int, max_side: int) -> None:
    """Refuse an image whose header declares more pixels than allowed (nothing decoded yet)."""
    width, height = header.size
    if width * height > max_pixels or max(width, height) > max_side:
        raise ImageTooLarge(
            f"The image is {width} x {height} pixels; the limit is {max_side} pixels a side "
            f"and {max_pixels / 1e6:g} megapixels."
        )


def _decode(image: Any) -> np.ndarray:
    """Decode the pixels, turn them upright, and convert them to (H, W, 3) uint8 RGB."""
    from PIL import ImageOps

    try:
        image.load()  # the only step that decodes pixel data
        return _to_rgb8(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage("The image is damaged or truncated and cannot be decoded.") from exc


def _verify_png(image: Any) -> None:
    """Check every chunk's CRC without decoding: zlib inflates a damaged IDAT into
    plausible-looking pixels, and only the checksums tell."""
    try:
        image.verify()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage("The image is damaged: its checksums do not match.") from exc


def _open_image(source: str | Path | bytes) -> Any:
    """Parse only the image header, with Pillow's own bomb check turned into our error."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        fp: Any = io.BytesIO(bytes(source))
    else:
        fp = Path(source)
        if not fp.is_file():
            raise MediaFileMissing("The image file does not exist or is not a regular file.")
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; our own limit is lower.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp, formats=_IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(
            "The image declares far more pixels than the studio accepts "
            "(possible decompression bomb)."
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage(
            "The file is not an image in a supported format (PNG, JPEG, WebP, GIF, BMP, TIFF)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage("The image header is damaged and cannot be read.") from exc


def _to_rgb8(image: Any) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 sRGB-ish RGB.

    Pillow's own ``convert("RGB")`` clips 16-bit values at 255 instead of scaling them, and
    converts CMYK without the embedded colour profile, so both are handled here.
    """
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_gray_to_rgb8(np.asarray(image), mode=image.mode)
    if image.mode in ("CMYK", "RGB") and image.info.get("icc_profile"):
        image = _convert_to_srgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_ALPHA_BACKGROUND, 255))
        image = Image.alpha_composite(background, rgba)
    try:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ValueError as exc:
        raise UnreadableImage(f"The image uses an unsupported colour mode ({image.mode}).") from exc


def _high_depth_gray_to_rgb8(values: np.ndarray, *, mode: str) -> np.ndarray:
    """16-bit, 32-bit or float grayscale (H, W) -> (H, W, 3) uint8.

    ``I;16*`` is 16-bit by definition. ``I`` (32-bit) is what Pillow gives for some 16-bit
    PNG and TIFF files, so it is read as 16-bit when it uses more than 8 bits. ``F``
    (float TIFF) is read as 0..1 when it stays within that range, else as 0..255.
    """
    values = values.astype(np.float64)  # (H, W)
    if not np.all(np.isfinite(values)):
        raise UnreadableImage("The image contains invalid (non-finite) pixel values.")
    top = float(values.max(initial=0.0))
    if mode.startswith("I;16") or (mode == "I" and top > 255):
        scale = 255.0 / 65535.0
    elif mode == "F" and top <= 1.0:
        scale = 255.0
    else:
        scale = 1.0
    gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _convert_to_srgb(image: Any) -> Any:
    """Apply the embedded ICC profile (CMYK print files, Display P3 phone photos)."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A broken profile is common in the wild and not worth refusing the photo for.
        return image.convert("RGB")
