"""``FommAnimator``: the First Order Motion Model behind the studio's ``Animator`` interface.

1. Source: find the face (``FaceAnalyzer.analyze``), cut a square head crop at the model's
   resolution (``plan_crop`` / ``extract_crop``), as the VoxCeleb crops the weights saw.
2. Driving, first pass: face-mesh landmarks of every frame (cheap next to the networks).
   They give one fixed head crop for the whole clip (the union of the per-frame faces, as
   FOMM's ``crop-video.py`` does per track; a moving crop would add motion of its own) and,
   with ``find_best_frame``, the frame whose pose is closest to the source's: landmarks
   centred and divided by sqrt(convex-hull area), least squared difference, first minimum.
3. Driving, second pass: crops in batches through ``animate_stream``, all motion measured
   from the best frame (or the first). Each output depends only on its own frame and that
   reference, so frames come out in order with nothing buffered, the same result as the
   reference's backward + forward passes.
4. Paste the animated crop back into the photo (``PasteBack``), or yield the crop itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.animate import AnimationOptions, Animator, ProgressCallback
from models.crop import CropBox, PasteBack, extract_crop, plan_crop
from models.errors import NoFaceFound
from models.face import Face, FaceAnalyzer
from models.fomm.animate import animate_stream, hull_area
from models.fomm.checkpoint import load_checkpoint
from models.fomm.generator import OcclusionAwareGenerator
from models.fomm.keypoint_detector import KPDetector


def normalised_landmarks(points: np.ndarray) -> np.ndarray:
    """(N, 2+) px -> (N, 2) centred and divided by sqrt(hull area): pose without position or size."""
    xy = points[:, :2].astype(np.float64)
    xy = xy - xy.mean(axis=0)
    return xy / np.sqrt(hull_area(xy))


def _to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """(b, s, s, 3) uint8 -> (b, 3, s, s) float in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)


def _to_frames(batch: torch.Tensor) -> np.ndarray:
    """(b, 3, s, s) float in [0, 1] -> (b, s, s, 3) uint8, rounded like skimage's img_as_ubyte."""
    return batch.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass(frozen=True)
class _DrivingPlan:
    """What the first pass learns about the driving clip."""

    box: CropBox  # one head crop for every frame
    reference_frame: np.ndarray  # (h, w, 3) uint8, the frame motion is measured from
    reference_index: int
    frames: int


class FommAnimator(Animator):
    """First Order Motion Model animator (see module docstring); ``batch_size`` frames per network call."""

    name = "fomm"

    def __init__(
        self,
        *,
        kp_detector: KPDetector,
        generator: OcclusionAwareGenerator,
        analyzer: FaceAnalyzer | None = None,
        batch_size: int = 8,
        reduced_precision: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.kp_detector = kp_detector.eval()
        self.generator = generator.eval()
        self.analyzer = analyzer or FaceAnalyzer(with_embedding=False)
        self.batch_size = batch_size
        self.reduced_precision = reduced_precision

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: torch.device | str | None = None,
        align_corners: bool = True,
        batch_size: int = 8,
        analyzer: FaceAnalyzer | None = None,
        reduced_precision: bool = False,
    ) -> FommAnimator:
        """Load a ``.pth.tar`` or converted folder (vox-256) on ``device`` (CUDA when present)."""
        kp_detector, generator = load_checkpoint(path, align_corners=align_corners, device=device)
        return cls(
            kp_detector=kp_detector,
            generator=generator,
            analyzer=analyzer,
            batch_size=batch_size,
            reduced_precision=reduced_precision,
        )

    # -- step 2 -------------------------------------------------------------------------------
    def _plan_driving(self, driving: Iterable[np.ndarray], source_points: np.ndarray, *, best: bool) -> _DrivingPlan:
        self.analyzer.new_video()
        target = normalised_landmarks(source_points)
        lows, highs = np.full(2, np.inf), np.full(2, -np.inf)  # union of the faces' extents (x, y)
        best_error, reference, index, count = np.inf, None, 0, 0
        for t, frame in enumerate(driving):
            count += 1
            points = self.analyzer.landmarks(np.ascontiguousarray(frame))
            if points is None:
                continue
            lows, highs = np.minimum(lows, points[:, :2].min(axis=0)), np.maximum(highs, points[:, :2].max(axis=0))
            if reference is not None and not best:
                continue  # without best-frame search the first frame with a face is the reference
            error = float(((normalised_landmarks(points) - target) ** 2).sum()) if best else 0.0
            if error < best_error:
                best_error, reference, index = error, frame.copy(), t
        if reference is None:
            raise NoFaceFound("no face was found in any frame of the driving video")
        box = (float(lows[0]), float(lows[1]), float(highs[0]), float(highs[1]))
        face = Face(box=box, landmarks=np.zeros((0, 3), np.float32), score=1.0)
        return _DrivingPlan(plan_crop(face, reference.shape), reference, index, count)

    # -- steps 1, 3, 4 --------------------------------------------------------------------------
    def _animate(
        self,
        source: np.ndarray,
        driving: Iterable[np.ndarray],
        *,
        options: AnimationOptions,
        progress: ProgressCallback | None,
        total_frames: int | None,
    ) -> Iterator[np.ndarray]:
        size = options.crop_size
        if size % 128:
            raise ValueError("FOMM needs a crop_size that is a multiple of 128 (256 for vox-256)")
        face = self.analyzer.analyze(source, face_index=options.face_index)
        box = plan_crop(face, source.shape)
        source_crop = extract_crop(source, box, size)  # (s, s, 3)
        paste = PasteBack(source, box, max_side=options.max_output_side) if options.paste_back else None

        plan = self._plan_driving(driving, box.to_crop(face.landmarks, size), best=options.find_best_frame)
        reference = _to_tensor([extract_crop(plan.reference_frame, plan.box, size)])

        def batches() -> Iterator[torch.Tensor]:
            pending: list[np.ndarray] = []
            for frame in driving:
                pending.append(extract_crop(np.ascontiguousarray(frame), plan.box, size))
                if len(pending) == self.batch_size:
                    yield _to_tensor(pending)
                    pending = []
            if pending:
                yield _to_tensor(pending)

        done = 0
        for predictions in animate_stream(
            self.kp_detector,
            self.generator,
            _to_tensor([source_crop]),
            batches(),
            relative=options.relative,
            adapt_movement_scale=options.adapt_movement_scale,
            initial_frame=reference,
            reduced_precision=self.reduced_precision,
        ):
            for crop in _to_frames(predictions):
                yield paste(crop) if paste is not None else crop
                done += 1
                if progress is not None:
                    progress(done, plan.frames)
