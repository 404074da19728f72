"""First-order keypoints from the face mesh, and FOMM's relative motion transfer.

Siarohin et al., "First Order Motion Model for Image Animation" (NeurIPS 2019) describe
motion near each of K keypoints by the keypoint's position and a 2x2 jacobian (a local
affine map). FOMM learns both; here each keypoint is the centroid of a region of
MediaPipe mesh points and its jacobian is the least-squares linear map from the region's
shape in the *source* (the template, so ``J_S = I``) to its shape in the frame at hand.
The transfer rules are those of first-order-model ``animate.py`` ``normalize_kp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull


@dataclass(frozen=True)
class Keypoints:
    value: np.ndarray  # (K, 2) px
    jacobian: np.ndarray  # (K, 2, 2)


def inv2x2(m: np.ndarray) -> np.ndarray:
    """Inverse of a (K, 2, 2) stack (closed form; np.linalg.inv is slow for tiny matrices)."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    return np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], 1) / det[:, None, None]


def keypoint_regions(points: np.ndarray, num_regions: int, region_size: int) -> list[np.ndarray]:
    """Index arrays of ``num_regions`` neighbourhoods of (N, 2) points: centres spread by
    farthest-point sampling (deterministic), each region the ``region_size`` points nearest
    its centre. Neighbourhoods of a dense mesh are always 2-D, so every affine fit is
    well posed (disjoint nearest-centre cells can be a pair of outlying points)."""
    centre = points.mean(axis=0)
    chosen = [int(np.argmin(np.linalg.norm(points - centre, axis=1)))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(num_regions - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return [np.argsort(np.linalg.norm(points - points[c], axis=1), kind="stable")[:region_size] for c in chosen]


class MeshKeypoints:
    """Keypoints + jacobians of any landmark set of the same face, relative to the source.

    Both are linear in the landmarks, so they are precomputed as matrices: the centroid
    weights ``A`` (K, N) and the per-region pseudo-inverses ``P`` (K, 2, N) of the source's
    centred region points, giving ``J^T = P @ Y`` for landmarks ``Y`` (N, 2).
    """

    def __init__(self, source_points: np.ndarray, *, num_keypoints: int = 30, region_size: int = 32,
                 ridge: float = 1e-4):
        pts = np.asarray(source_points, dtype=np.float64)[:, :2]  # (N, 2)
        n = len(pts)
        self.regions = keypoint_regions(pts, num_keypoints, min(region_size, n))
        self.num_keypoints = num_keypoints
        self.centroid = np.zeros((num_keypoints, n))  # (K, N)
        self.pinv = np.zeros((num_keypoints, 2, n))  # (K, 2, N)
        scale2 = float(np.var(pts, axis=0).sum())
        for k, idx in enumerate(self.regions):
            self.centroid[k, idx] = 1.0 / len(idx)
            x = pts[idx] - pts[idx].mean(axis=0)  # (n_k, 2)
            gram = x.T @ x + ridge * scale2 * np.eye(2)
            self.pinv[k][:, idx] = np.linalg.solve(gram, x.T)
        self.source = self(pts)

    def __call__(self, points: np.ndarray) -> Keypoints:
        y = np.asarray(points, dtype=np.float64)[:, :2]  # (N, 2)
        value = self.centroid @ y  # (K, 2)
        jt = np.einsum("kin,nj->kij", self.pinv, y)  # (K, 2, 2) = J^T
        return Keypoints(value=value, jacobian=np.transpose(jt, (0, 2, 1)))


def hull_area(points: np.ndarray) -> float:
    return float(ConvexHull(np.asarray(points, dtype=np.float64)[:, :2]).volume)


def movement_scale(source_points: np.ndarray, reference_points: np.ndarray) -> float:
    """FOMM ``adapt_movement_scale``: sqrt(hull area of the source face) / sqrt(that of the
    driving reference frame's face); turns driving displacements into source displacements."""
    return float(np.sqrt(hull_area(source_points)) / np.sqrt(hull_area(reference_points)))


def normalised_shape(points: np.ndarray) -> np.ndarray:
    """(N, 2) landmarks centred and divided by sqrt(hull area): pose/expression, not size."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return (p - p.mean(axis=0)) / np.sqrt(hull_area(p))


def best_frame(source_points: np.ndarray, driving_points: list[np.ndarray]) -> int:
    """Index of the driving frame whose normalised landmarks are closest to the source's
    (first minimum), as first-order-model ``demo.py`` ``find_best_frame``."""
    ref = normalised_shape(source_points)
    errors = [float(((normalised_shape(p) - ref) ** 2).sum()) for p in driving_points]
    return int(np.argmin(errors))


_CHEEKS = (234, 454)  # mesh points at the face's left and right extremes
_MIDLINE = (10, 152)  # forehead top and chin


def face_axis_scale(source_points: np.ndarray, reference_points: np.ndarray) -> np.ndarray:
    """(2,) movement scale per axis: source face width / reference face width (x) and
    source face height / reference face height (y), from the mesh's cheek and midline points."""
    def axes(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)[:, :2]
        return np.array([np.linalg.norm(p[_CHEEKS[0]] - p[_CHEEKS[1]]),
                         np.linalg.norm(p[_MIDLINE[0]] - p[_MIDLINE[1]])])
    return axes(source_points) / np.maximum(axes(reference_points), 1e-6)


def resting_frame(driving_points: list[np.ndarray], *, max_frames: int = 1500) -> int:
    """Index of the driving frame with the smallest summed distance to all others in
    normalised shape (the medoid): the pose and expression the driver holds most of the
    time. Long clips are compared on an even subsample of at most ``max_frames`` frames."""
    step = max(1, -(-len(driving_points) // max_frames))
    picks = list(range(0, len(driving_points), step))
    x = np.stack([normalised_shape(driving_points[i]).ravel() for i in picks])  # (T', 2N)
    sq = (x**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    return picks[int(np.argmin(np.sqrt(d2).sum(axis=1)))]


def transfer(
    source: Keypoints,
    driving: Keypoints,
    reference: Keypoints,
    *,
    relative: bool,
    alpha: np.ndarray,
    absolute_scale: np.ndarray,
) -> Keypoints:
    """FOMM ``normalize_kp``. Relative: ``x_S + alpha (x_Dt - x_Dref)`` and
    ``J_Dt inv(J_Dref) J_S``. Absolute: the driving keypoints mapped into source pixels
    (``absolute_scale`` = source size / driving size per axis, FOMM's normalised frame)."""
    if relative:
        value = source.value + alpha * (driving.value - reference.value)
        jacobian = driving.jacobian @ inv2x2(reference.jacobian) @ source.jacobian
    else:
        value = driving.value * absolute_scale
        jacobian = absolute_scale[:, None] * driving.jacobian  # rows: driving px -> source px
    return Keypoints(value=value, jacobian=jacobian)


def transfer_points(
    source: np.ndarray, driving: np.ndarray, reference: np.ndarray, *, relative: bool, alpha: np.ndarray,
    absolute_scale: np.ndarray,
) -> np.ndarray:
    """The same rule for the dense mesh points (N, 2) (the fine, expression-level motion)."""
    if relative:
        return source[:, :2] + alpha * (driving[:, :2] - reference[:, :2])
    return driving[:, :2] * absolute_scale


def similarity(reference: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, float]:
    """(R (2, 2), k): the rotation and scale of the least-squares 2-D similarity taking the
    reference's centred points (N, 2) to the pose's (Umeyama)."""
    a = reference - reference.mean(axis=0)
    b = pose - pose.mean(axis=0)
    u, sv, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1.0, d]) @ vt
    k = float((sv * [1.0, d]).sum() / max((a**2).sum(), 1e-12))
    return r, k


def transfer_points_rigid(source: np.ndarray, driving: np.ndarray, reference: np.ndarray, *,
                          alpha: np.ndarray, fit: int = 468) -> np.ndarray:
    """Relative transfer with the head's in-plane rotation kept rigid: the driver's rotation
    (of a similarity fitted on the first ``fit`` points, reference -> frame) turns the
    *subject's* face about its own centre; the rest, the driver's change measured in the
    reference's upright frame (expression, zoom, out-of-plane turns), is scaled per axis by
    ``alpha`` (2,), as is the centre's shift. The plain rule moves the subject by the driver's
    displacements, so a tilting driver whose face differs from the subject's (an open mouth
    against a closed one) shears the subject's face."""
    src, drv, ref = (np.asarray(p, dtype=np.float64)[:, :2] for p in (source, driving, reference))
    r, _ = similarity(ref[:fit], drv[:fit])
    c_s, c_d, c_r = src[:fit].mean(axis=0), drv[:fit].mean(axis=0), ref[:fit].mean(axis=0)
    expression = (drv - c_d) @ r - (ref - c_r)  # (N, 2) in the reference's frame
    return c_s + alpha * (c_d - c_r) + (src - c_s + alpha * expression) @ r.T
