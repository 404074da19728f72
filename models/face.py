"""Face analysis: find one face, its 478-point mesh and its 128-d likeness embedding.

Two offline models, both shipped inside their wheels (see docs/motion.md):

* MediaPipe 0.10.21 legacy ``solutions`` (Apache-2.0): ``FaceDetection`` (full range) proposes
  faces with a score, and ``FaceMesh(refine_landmarks=True)`` gives 478 3-D landmarks per face
  (468 mesh points + 10 iris points). A detection only counts as a face when the mesh confirms
  it, which removes the detector's false positives (it fires on ``skimage.data.camera()``).
* dlib's ResNet face descriptor with the public-domain 5-point aligner (128-d, L2 distance
  below ~0.6 means "same person"). The model files are opened directly from the
  ``face_recognition_models`` package folder, never through ``import face_recognition``,
  which calls ``quit()`` when ``pkg_resources`` is missing.

MediaPipe graphs are not thread-safe, so every graph call is made under a lock. Their C++ side
(TFLite, absl) logs straight to the process's stderr, past Python's logging and any environment
setting; its known start-up chatter is filtered out (``_native_chatter_filtered``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.errors import FaceCutOff, FaceTooSmall, MultipleFaces, NoFaceFound

# Landmark indices of the MediaPipe face mesh used across the motion code.
RIGHT_EYE_CORNERS = (33, 133)  # the eye on the image's left (subject's right)
LEFT_EYE_CORNERS = (362, 263)
RIGHT_EYE_LIDS = (159, 145)  # upper, lower
LEFT_EYE_LIDS = (386, 374)
RIGHT_IRIS = 468
LEFT_IRIS = 473
MOUTH_CORNERS = (61, 291)
INNER_LIPS = (13, 14)  # upper, lower

# Lines mediapipe's C++ writes to stderr when a graph is built or first run; none needs the user.
_NATIVE_CHATTER = (
    "TensorFlow Lite XNNPACK delegate",
    "absl::InitializeLog()",
    "inference_feedback_manager.cc",
    "landmark_projection_calculator.cc",
)
_STDERR_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time, process-wide


@contextmanager
def _native_chatter_filtered() -> Iterator[None]:
    """Run the block with file descriptor 2 sent to a temporary file, then write back every
    line that is not ``_NATIVE_CHATTER`` (so nothing else written meanwhile is lost)."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().splitlines(keepends=True)
                    if not any(part.encode() in line for part in _NATIVE_CHATTER)]
            if kept:
                os.write(2, b"".join(kept))


_DETECT_MAX_SIDE = 1280  # photos are searched on a copy at most this large
_TILE, _TILE_STRIDE = 512, 384  # fallback search windows (px) when the whole photo shows no face
_MESH_CROP_SIDE = 384  # each candidate face is meshed on a square crop of this size
_CUT_OFF_TOLERANCE = 0.03  # fraction of the face width a mesh may run past the border


@dataclass(frozen=True)
class Face:
    """One analysed face. Coordinates are pixels of the analysed image."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of the landmarks' extent
    landmarks: np.ndarray  # (478, 3) float32: x, y, z * width, all in px
    score: float  # detector confidence in [0, 1]
    embedding: np.ndarray | None = None  # (128,) float32 dlib descriptor

    def width(self) -> float:
        return self.box[2] - self.box[0]

    def height(self) -> float:
        return self.box[3] - self.box[1]

    def describe(self) -> str:
        x0, y0, x1, y1 = (round(v) for v in self.box)
        return f"({x0}, {y0})-({x1}, {y1})"


def eye_aperture(landmarks: np.ndarray) -> float:
    """Mean lid gap of both eyes divided by eye width: ~0.25-0.35 open, < 0.1 closed."""
    ratios = []
    for (up, lo), (c0, c1) in ((RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS), (LEFT_EYE_LIDS, LEFT_EYE_CORNERS)):
        gap = np.linalg.norm(landmarks[up, :2] - landmarks[lo, :2])
        ratios.append(gap / max(np.linalg.norm(landmarks[c0, :2] - landmarks[c1, :2]), 1e-6))
    return float(np.mean(ratios))


def mouth_aperture(landmarks: np.ndarray) -> float:
    """Inner-lip gap divided by mouth width: ~0 closed, 0.3+ clearly open."""
    gap = np.linalg.norm(landmarks[INNER_LIPS[0], :2] - landmarks[INNER_LIPS[1], :2])
    width = np.linalg.norm(landmarks[MOUTH_CORNERS[0], :2] - landmarks[MOUTH_CORNERS[1], :2])
    return float(gap / max(width, 1e-6))


def _dlib_model_path(name: str) -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face_recognition_models package is not installed")
    return str(Path(list(spec.submodule_search_locations)[0]) / "models" / name)


class _Dlib:
    """dlib's HOG detector, 5-point aligner and ResNet descriptor, loaded once per process."""

    _lock = threading.Lock()
    _instance: _Dlib | None = None

    def __init__(self) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.aligner = dlib.shape_predictor(_dlib_model_path("shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(_dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
        self.rectangle = dlib.rectangle

    @classmethod
    def get(cls) -> _Dlib:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


def _square_around(box: tuple[float, float, float, float], scale: float) -> tuple[float, float, float]:
    """(cx, cy, side) of a square ``scale`` times the larger side of ``box``."""
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale


def _warp_square(image: np.ndarray, cx: float, cy: float, side: float, out: int) -> tuple[np.ndarray, float]:
    """Crop the square (cx, cy, side) resampled to ``out`` px (black outside the photo).
    Returns the crop and the factor from crop px back to image px."""
    s = out / side
    m = np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], dtype=np.float64)
    crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    return crop, 1 / s


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceAnalyzer:
    """Find faces in photos and track landmarks in driving frames.

    ``analyze`` is for the one photo to animate: it insists on exactly one usable face (or a
    chosen ``face_index``; faces are numbered left to right) and explains what is wrong
    otherwise. ``landmarks`` is the fast path for video frames: a tracking-mode mesh that
    reuses the previous frame's face region; call ``new_video()`` between clips.
    """

    def __init__(self, *, max_faces: int = 4, min_face_px: int = 64, with_embedding: bool = True) -> None:
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        self.max_faces = max_faces
        self.min_face_px = min_face_px
        self.with_embedding = with_embedding
        self._lock = threading.Lock()
        self._graphs: dict[str, Any] = {}

    # -- mediapipe graphs (created lazily, used under the lock) -------------------------
    def _process(self, kind: str, image: np.ndarray) -> Any:
        """Run graph ``kind`` on ``image`` (caller holds the lock). A graph's creation and first
        run are where its C++ chatter comes out, so those run with it filtered."""
        if kind in self._graphs:
            return self._graphs[kind].process(image)
        with _native_chatter_filtered():
            return self._graph(kind).process(image)

    def _graph(self, kind: str) -> Any:
        if kind not in self._graphs:
            from mediapipe.python.solutions import face_detection, face_mesh

            if kind == "detect":
                self._graphs[kind] = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
            elif kind == "mesh":
                self._graphs[kind] = face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                                        max_num_faces=1, min_detection_confidence=0.5)
            else:  # "track"
                self._graphs[kind] = face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True,
                                                        max_num_faces=1, min_detection_confidence=0.5,
                                                        min_tracking_confidence=0.5)
        return self._graphs[kind]

    def close(self) -> None:
        with self._lock:
            for graph in self._graphs.values():
                graph.close()
            self._graphs.clear()

    def new_video(self) -> None:
        """Forget the tracked face so the next ``landmarks`` call detects afresh."""
        with self._lock:
            graph = self._graphs.pop("track", None)
            if graph is not None:
                graph.close()

    @staticmethod
    def _mesh_points(result: Any, width: int, height: int) -> list[np.ndarray]:
        faces = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)  # (478, 3)
            pts *= np.array([width, height, width], dtype=np.float32)
            faces.append(pts)
        return faces

    # -- photos ---------------------------------------------------------------------------
    def find_faces(self, image: np.ndarray) -> list[Face]:
        """All faces the mesh confirms, left to right, without embeddings or size checks."""
        _check_image(image)
        h, w = image.shape[:2]
        proposals = self._detect(image)
        if not proposals and max(h, w) > _TILE:  # a small face in a big photo: look tile by tile
            for y in range(0, max(h - _TILE, 0) + _TILE_STRIDE, _TILE_STRIDE):
                for x in range(0, max(w - _TILE, 0) + _TILE_STRIDE, _TILE_STRIDE):
                    tile = image[y : y + _TILE, x : x + _TILE]
                    proposals += [((b[0] + x, b[1] + y, b[2] + x, b[3] + y), sc) for b, sc in self._detect(tile)]
        if not proposals:  # the detector can miss a face that fills the frame: let the mesh look
            proposals.append(((0.0, 0.0, float(w), float(h)), 0.0))
        faces: list[Face] = []
        for box, score in sorted(proposals, key=lambda p: -p[1])[: self.max_faces * 4]:
            if any(_iou(box, f.box) > 0.3 for f in faces):
                continue
            face = self._mesh_face(image, box, score, whole=score == 0.0)
            if face is not None and all(_iou(face.box, f.box) < 0.3 for f in faces):
                faces.append(face)
        return sorted(faces[: self.max_faces], key=lambda f: f.box[0])

    def _detect(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """(box px, score) of each face the detector proposes, on a copy at most
        ``_DETECT_MAX_SIDE`` px large."""
        h, w = image.shape[:2]
        shrink = min(1.0, _DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(image, (round(w * shrink), round(h * shrink)), interpolation=cv2.INTER_AREA) \
            if shrink < 1 else image
        with self._lock:
            result = self._process("detect", np.ascontiguousarray(small))
        proposals = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = (rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h)
            proposals.append((box, float(det.score[0])))
        return proposals

    def _mesh_face(self, image: np.ndarray, box: tuple[float, float, float, float], score: float,
                   *, whole: bool) -> Face | None:
        cx, cy, side = _square_around(box, 1.0 if whole else 2.2)
        crop, back = _warp_square(image, cx, cy, side, _MESH_CROP_SIDE)
        with self._lock:
            result = self._process("mesh", crop)
        found = self._mesh_points(result, _MESH_CROP_SIDE, _MESH_CROP_SIDE)
        if not found:
            return None
        pts = found[0]
        pts *= back
        pts[:, 0] += cx - side / 2
        pts[:, 1] += cy - side / 2
        mbox = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        if not whole and _iou(mbox, box) < 0.15:  # the mesh found a different face in the crop
            return None
        return Face(box=mbox, landmarks=pts, score=score if not whole else 1.0)

    def analyze(self, image: np.ndarray, *, face_index: int | None = None) -> Face:
        """The one face to animate, with its embedding (``with_embedding``)."""
        faces = self.find_faces(image)
        if not faces:
            raise NoFaceFound("no face was found in the photo; use a clear, front-facing portrait")
        big = [f for f in faces if f.width() >= self.min_face_px]
        if face_index is None:
            candidates = big or faces
            if len(candidates) > 1:
                listing = "; ".join(f"#{i} at {f.describe()}" for i, f in enumerate(faces))
                raise MultipleFaces(f"the photo shows {len(faces)} faces ({listing}); choose one with face_index")
            face = candidates[0]
        else:
            if not 0 <= face_index < len(faces):
                raise NoFaceFound(f"there is no face #{face_index}; the photo shows {len(faces)} face(s)")
            face = faces[face_index]
        if face.width() < self.min_face_px:
            raise FaceTooSmall(f"the face is {face.width():.0f} px wide; at least {self.min_face_px} px is needed")
        h, w = image.shape[:2]
        tol = _CUT_OFF_TOLERANCE * face.width()
        x0, y0, x1, y1 = face.box
        if x0 < -tol or y0 < -tol or x1 > w + tol or y1 > h + tol:
            raise FaceCutOff(f"the face at {face.describe()} runs past the edge of the {w}x{h} photo")
        if self.with_embedding:
            face = Face(box=face.box, landmarks=face.landmarks, score=face.score,
                        embedding=self.embedding(image, face))
        return face

    # -- video frames -----------------------------------------------------------------------
    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 3) px landmarks of the tracked face in a video frame, or None without a face."""
        _check_image(image)
        h, w = image.shape[:2]
        shrink = min(1.0, _DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(image, (round(w * shrink), round(h * shrink)), interpolation=cv2.INTER_AREA) \
            if shrink < 1 else image
        with self._lock:
            result = self._process("track", np.ascontiguousarray(small))
        found = self._mesh_points(result, small.shape[1], small.shape[0])
        if not found:
            return None
        return found[0] / np.float32(shrink)

    # -- likeness -----------------------------------------------------------------------------
    def embedding(self, image: np.ndarray, face: Face | None = None) -> np.ndarray:
        """dlib's 128-d descriptor of ``face`` (analysed first when not given)."""
        if face is None:
            face = self._analyze_without_embedding(image)
        dl = _Dlib.get()
        # dlib's 5-point aligner was trained on its HOG detector's boxes: look for that box
        # on a crop where the face is ~150 px wide, and fall back to one derived from the mesh.
        cx, cy, side = _square_around(face.box, 2.0)
        crop, _ = _warp_square(image, cx, cy, side, 320)
        s = 320 / side
        mx0, my0 = (face.box[0] - cx) * s + 160, (face.box[1] - cy) * s + 160
        mx1, my1 = (face.box[2] - cx) * s + 160, (face.box[3] - cy) * s + 160
        hog = [r for r in dl.detector(crop, 0) if mx0 <= r.center().x <= mx1 and my0 <= r.center().y <= my1]
        if hog:
            rect = max(hog, key=lambda r: r.area())
        else:  # the HOG box spans the cheeks, brows to chin: the mesh's lower ~80 %
            rect = dl.rectangle(round(mx0), round(my0 + 0.2 * (my1 - my0)), round(mx1), round(my1))
        shape = dl.aligner(crop, rect)
        return np.asarray(dl.encoder.compute_face_descriptor(crop, shape, 0), dtype=np.float32)

    def _analyze_without_embedding(self, image: np.ndarray) -> Face:
        keep = self.with_embedding
        self.with_embedding = False
        try:
            return self.analyze(image)
        finally:
            self.with_embedding = keep

    def aligned_crop(self, image: np.ndarray, face: Face, size: int = 256) -> np.ndarray:
        """(size, size, 3) crop rotated so the eyes are level, eyes at 40 % height, mouth at 72 %."""
        lm = face.landmarks[:, :2].astype(np.float64)
        src = np.stack([lm[RIGHT_IRIS], lm[LEFT_IRIS], (lm[MOUTH_CORNERS[0]] + lm[MOUTH_CORNERS[1]]) / 2])
        dst = np.array([[0.35, 0.40], [0.65, 0.40], [0.50, 0.72]]) * size
        m, _ = cv2.estimateAffinePartial2D(src, dst)
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {getattr(image, 'shape', None)}")
