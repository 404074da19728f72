"""The default animator: first-order motion from face-mesh keypoints, no learned weights.

Pipeline per clip (options as in ``AnimationOptions``):

1. Source: find the face (``FaceAnalyzer.analyze``), cut a square head crop at
   ``crop_size`` (or keep the whole photo, capped at ``max_output_side``), express its mesh
   in that image's pixels and derive K first-order keypoints from it (``MeshKeypoints``).
2. Driving, one pass: tracked mesh of every frame; frames without a face hold the last
   good pose (the first good pose for frames before it). With ``find_best_frame`` the
   whole clip is read first, then the reference is the frame closest in normalised shape
   to the source; otherwise frames stream and the first face is the reference. Only the
   landmarks are kept, so the clip is read exactly once and memory stays small.
3. Each output frame depends only on (frame t, reference): FOMM's relative transfer with
   movement-scale adaptation for keypoints and mesh points, a dense warp (``DenseWarp``),
   paste-back into the photo.

With ``expressive=True`` (the default; ``models.landmark.expression``) the reference is the
driver's resting frame unless ``AnimationOptions.reference="closest"``, the driving landmarks
are smoothed and their head turn limited, the movement scale is per face axis, lids close over
the eyes with the subject's own lid skin, an opening mouth gets an interior drawn from the
subject's photo, and the warp is bicubic with sub-pixel motion dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from models.animate import AnimationOptions, Animator, ProgressCallback
from models.crop import PasteBack, extract_crop, plan_crop
from models.errors import NoFaceFound
from models.face import FaceAnalyzer
from models.landmark.expression import LandmarkFilter, MouthInterior, close_lids, cover_eyes, eye_closure, limit_turn
from models.landmark.keypoints import (
    Keypoints,
    MeshKeypoints,
    best_frame,
    face_axis_scale,
    movement_scale,
    resting_frame,
    transfer,
    transfer_points,
    transfer_points_rigid,
)
from models.landmark.warp import DenseWarp

_TRACKER_WARMUP = 3  # extra tracking calls on the first driving frame (expressive mode)


class LandmarkAnimator(Animator):
    """Weight-free default animator (see module docstring).

    ``face_index`` picks the face when the photo shows several (see ``FaceAnalyzer``).
    ``expressive=False`` gives the plain warp of issue 20 (no mouth interior, no lid
    closure, no landmark smoothing, bilinear resampling); it is kept for comparison.
    """

    name = "landmark"

    def __init__(self, *, analyzer: FaceAnalyzer | None = None, num_keypoints: int = 30,
                 face_index: int | None = None, expressive: bool = True):
        self.expressive = expressive
        self.analyzer = analyzer or FaceAnalyzer(with_embedding=False)
        self.num_keypoints = num_keypoints
        self.face_index = face_index

    # -- step 1 --------------------------------------------------------------------------------
    def _prepare_source(
        self, source: np.ndarray, options: AnimationOptions
    ) -> tuple[np.ndarray, np.ndarray, PasteBack | None]:
        """(working image (h, w, 3), its mesh (N, 3) in that image's px, paste-back or None)."""
        face_index = options.face_index if options.face_index is not None else self.face_index
        face = self.analyzer.analyze(source, face_index=face_index)
        if options.paste_back:
            box = plan_crop(face, source.shape)
            paste = PasteBack(source, box, max_side=options.max_output_side)
            # A warp has no model resolution to respect: never work below the head's size in
            # the output, or a large portrait would be animated at 256 px and blown up again.
            # The expressive animator works at exactly that size: a small head is not blown up
            # to crop_size and shrunk again (two resamplings blur it).
            side = paste.box.size if self.expressive else max(options.crop_size, paste.box.size)
            crop = extract_crop(source, box, side)  # (side, side, 3)
            return crop, box.to_crop(face.landmarks, side), paste
        h, w = source.shape[:2]
        f = min(1.0, options.max_output_side / max(h, w))
        if f < 1:
            source = cv2.resize(source, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(source), face.landmarks * np.float32(f), None

    # -- step 2 --------------------------------------------------------------------------------
    def _driving_landmarks(self, driving: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray | None, tuple[int, int]]]:
        self.analyzer.new_video()
        steady = LandmarkFilter() if self.expressive else (lambda p: p)
        primed = not self.expressive
        for frame in driving:
            frame = np.ascontiguousarray(frame)
            pose = self.analyzer.landmarks(frame)
            if pose is not None and not primed:
                # MediaPipe's tracker starts from the detector's box and settles over a few
                # frames (a 2-4 px drift of a still face): let it settle on the first face
                for _ in range(_TRACKER_WARMUP):
                    again = self.analyzer.landmarks(frame)
                    if again is None:
                        break
                    pose = again
                primed = True
            yield steady(pose), frame.shape[:2]

    def _animate(
        self,
        source: np.ndarray,
        driving: Iterable[np.ndarray],
        *,
        options: AnimationOptions,
        progress: ProgressCallback | None,
        total_frames: int | None,
    ) -> Iterator[np.ndarray]:
        image, points, paste = self._prepare_source(source, options)
        kp_model = MeshKeypoints(points, num_keypoints=self.num_keypoints)
        warp = DenseWarp(image, points, kp_model.source, sharp=self.expressive)
        mouth = MouthInterior(image, points) if self.expressive else None
        finish: Callable[[np.ndarray], np.ndarray] = paste if paste is not None else (lambda frame: frame)

        if options.find_best_frame:
            tracked = list(self._driving_landmarks(driving))
            poses = _hold_last_good([lm for lm, _ in tracked])
            # "resting": a different person drives; their usual pose (the medoid of the clip)
            # is the reference, so their neutral face gives back the photo itself
            resting = self.expressive and options.reference == "resting"
            ref = resting_frame(poses) if resting else best_frame(points, poses)
            stream: Iterable[tuple[np.ndarray, tuple[int, int]]] = zip(poses, (s for _, s in tracked))
            total = len(poses)
        else:
            stream = _hold_streaming(self._driving_landmarks(driving))
            ref, total = 0, total_frames

        reference = None
        for t, (pose, shape) in enumerate(stream):
            if reference is None and pose is not None:
                reference = poses[ref] if options.find_best_frame else pose
                alpha, absolute_scale = _scales(points, reference, image.shape[:2], shape, options,
                                                face_axes=self.expressive)
                kp_ref = kp_model(reference)
            if pose is None:  # nothing tracked yet in a streamed clip: the source as it is
                frame = image
            else:
                if self.expressive:  # turns beyond what a 2-D warp can show are limited smoothly
                    pose = limit_turn(pose, reference)
                kp_new = transfer(kp_model.source, kp_model(pose), kp_ref, relative=options.relative,
                                  alpha=alpha, absolute_scale=absolute_scale)
                if self.expressive and options.relative:
                    # the head's tilt stays rigid on the subject's own face; keypoints
                    # are centroids of mesh points, so they follow the same rule
                    new_points = transfer_points_rigid(points, pose, reference, alpha=alpha)
                    kp_new = Keypoints(value=kp_model.centroid @ new_points, jacobian=kp_new.jacobian)
                else:
                    new_points = transfer_points(points, pose, reference, relative=options.relative,
                                                 alpha=alpha, absolute_scale=absolute_scale)
                closure = (0.0, 0.0)
                if self.expressive:
                    closure = eye_closure(pose, reference)
                    open_points, new_points = new_points, close_lids(new_points, closure)
                frame = warp(kp_new, new_points)
                if max(closure) > 0:
                    frame = cover_eyes(frame, open_points, new_points, closure)
                if mouth is not None:
                    frame = mouth(frame, new_points)
            yield finish(frame)
            if progress is not None:
                progress(t + 1, total)


def _scales(source_points: np.ndarray, reference: np.ndarray, source_hw: tuple[int, int],
            driving_hw: tuple[int, int], options: AnimationOptions, *,
            face_axes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, absolute_scale), each (2,). ``absolute_scale`` maps driving px to source px
    as FOMM's normalised frames do; ``alpha`` scales relative displacements: the hull-area
    ratio with ``adapt_movement_scale``, else the same frame-size ratio as FOMM. With
    ``face_axes`` (the expressive animator) each axis gets its own ratio, face width across
    and face height (forehead to chin) down, so a mouth that opens by 10 % of the driver's
    face height opens by 10 % of the subject's, whatever the two faces' proportions."""
    absolute_scale = np.array([source_hw[1] / driving_hw[1], source_hw[0] / driving_hw[0]])
    if options.adapt_movement_scale and face_axes:
        return face_axis_scale(source_points, reference), absolute_scale
    if options.adapt_movement_scale:
        return np.full(2, movement_scale(source_points, reference)), absolute_scale
    return absolute_scale, absolute_scale


def _hold_last_good(poses: list[np.ndarray | None]) -> list[np.ndarray]:
    """Fill frames without a face with the last good pose (the first one for a leading gap)."""
    good = [p for p in poses if p is not None]
    if not good:
        raise NoFaceFound("no face was found in any frame of the driving video")
    last = good[0]
    filled = []
    for p in poses:
        last = p if p is not None else last
        filled.append(last)
    return filled


def _hold_streaming(
    tracked: Iterable[tuple[np.ndarray | None, tuple[int, int]]],
) -> Iterator[tuple[np.ndarray | None, tuple[int, int]]]:
    """Streaming variant: hold the last good pose; before the first one there is none (None),
    and a clip that never shows a face is an error once it ends."""
    last = None
    for pose, shape in tracked:
        last = pose if pose is not None else last
        yield last, shape
    if last is None:
        raise NoFaceFound("no face was found in any frame of the driving video")
