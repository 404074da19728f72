"""Square face crops for the motion models and seamless paste-back into the full photo.

Motion models work at a fixed square resolution (FOMM's ``vox-256`` at 256 px) on crops
that show the whole head, as in the VoxCeleb preprocessing the checkpoints were trained
on. A ``CropBox`` may extend past the photo's border (a face near the edge): the missing
part is filled by reflection, and ``PasteBack`` only writes the part that lies inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.face import Face


@dataclass(frozen=True)
class CropBox:
    """A square in full-image pixels: columns x0..x0+size, rows y0..y0+size."""

    x0: int
    y0: int
    size: int

    @property
    def x1(self) -> int:
        return self.x0 + self.size

    @property
    def y1(self) -> int:
        return self.y0 + self.size

    def to_crop(self, points: np.ndarray, crop_size: int) -> np.ndarray:
        """Map (N, >=2) image px to crop px of a ``crop_size`` crop (extra columns are scaled)."""
        s = crop_size / self.size
        out = points.astype(np.float32) * np.float32(s)
        out[:, 0] -= self.x0 * s
        out[:, 1] -= self.y0 * s
        return out


def plan_crop(face: Face, image_shape: tuple[int, ...], *, scale: float = 1.9, lift: float = 0.1) -> CropBox:
    """A square ``scale`` times the face mesh's larger side, its centre raised by ``lift`` of
    the face height so hair and chin both fit (the mesh stops at the hairline)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    x0, y0, x1, y1 = face.box
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - lift * (y1 - y0)
    size = max(int(round(side)), 8)
    return CropBox(x0=int(round(cx - size / 2)), y0=int(round(cy - size / 2)), size=size)


def extract_crop(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """(size, size, 3) uint8 crop of ``box``; parts outside the photo are mirrored in."""
    h, w = image.shape[:2]
    cx0, cy0 = max(box.x0, 0), max(box.y0, 0)
    cx1, cy1 = min(box.x1, w), min(box.y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"crop box {box} lies outside the {w}x{h} image")
    region = image[cy0:cy1, cx0:cx1]
    pads = (cy0 - box.y0, box.y1 - cy1, cx0 - box.x0, box.x1 - cx1)  # top, bottom, left, right
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, borderType=cv2.BORDER_REFLECT_101)
    interp = cv2.INTER_AREA if box.size > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


def elliptical_mask(size: int, *, inner: float = 0.78, radii: tuple[float, float] = (0.47, 0.5)) -> np.ndarray:
    """(size, size) float32: 1 inside the ellipse scaled by ``inner``, smoothly 0 at its rim.
    ``radii`` are the ellipse's half-axes (x, y) as fractions of ``size``."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.sqrt(((xx - c) / (radii[0] * size)) ** 2 + ((yy - c) / (radii[1] * size)) ** 2)
    t = np.clip((1.0 - d) / (1.0 - inner), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep: no visible edge


class PasteBack:
    """Blend animated crops into the photo at the photo's resolution (capped at ``max_side``).

    The photo is downscaled once here; each call resizes the crop to its box, corrects its
    mean colour against the photo on the feathered seam (generators drift in colour) and
    blends it in with a feathered elliptical mask, so the seam is invisible and everything
    away from the face stays exactly the photo.
    """

    def __init__(self, full_image: np.ndarray, box: CropBox, *, max_side: int = 1920, match_colors: bool = True):
        h, w = full_image.shape[:2]
        self.factor = min(1.0, max_side / max(h, w))
        if self.factor < 1:
            size = (max(1, round(w * self.factor)), max(1, round(h * self.factor)))
            self.base = cv2.resize(full_image, size, interpolation=cv2.INTER_AREA)
        else:
            self.base = np.ascontiguousarray(full_image).copy()
        oh, ow = self.base.shape[:2]
        self.box = CropBox(x0=round(box.x0 * self.factor), y0=round(box.y0 * self.factor),
                           size=max(1, round(box.size * self.factor)))
        b = self.box
        self._dst = (slice(max(b.y0, 0), min(b.y1, oh)), slice(max(b.x0, 0), min(b.x1, ow)))
        self._src = (slice(self._dst[0].start - b.y0, self._dst[0].stop - b.y0),
                     slice(self._dst[1].start - b.x0, self._dst[1].stop - b.x0))
        if self._dst[0].stop <= self._dst[0].start or self._dst[1].stop <= self._dst[1].start:
            raise ValueError(f"crop box {box} lies outside the {w}x{h} image")
        mask = elliptical_mask(b.size)[self._src]
        self._mask = np.ascontiguousarray(mask)
        self._inv = np.ascontiguousarray(1.0 - mask)
        self._seam = (mask > 0.05) & (mask < 0.6)
        self.match_colors = match_colors and bool(self._seam.any())
        self._base_region = self.base[self._dst]
        self._base_seam_mean = self._base_region[self._seam].astype(np.float32).mean(axis=0) if self.match_colors \
            else None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.base.shape  # type: ignore[return-value]

    def __call__(self, animated_crop: np.ndarray) -> np.ndarray:
        """(s, s, 3) uint8 crop -> (H', W', 3) uint8 photo with the crop blended in."""
        if animated_crop.ndim != 3 or animated_crop.shape[0] != animated_crop.shape[1]:
            raise ValueError(f"expected a square (s, s, 3) crop, got {animated_crop.shape}")
        s = self.box.size
        interp = cv2.INTER_AREA if animated_crop.shape[0] > s else cv2.INTER_LINEAR
        crop = cv2.resize(animated_crop, (s, s), interpolation=interp)[self._src]
        if self._base_seam_mean is not None:
            offset = self._base_seam_mean - crop[self._seam].astype(np.float32).mean(axis=0)
            if np.abs(offset).max() >= 1.0:
                shifted = crop.astype(np.float32) + offset.astype(np.float32)  # (h, w, 3)
                crop = np.clip(shifted, 0, 255).astype(np.uint8)
        out = self.base.copy()
        out[self._dst] = cv2.blendLinear(np.ascontiguousarray(crop), self._base_region, self._mask, self._inv)
        return out
