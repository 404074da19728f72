"""Dense backward warp of the source photo from sparse first-order motion.

For every output pixel z we need the source pixel to sample. Two layers, both computed on a
low-resolution grid over a window around the face and upsampled before ``cv2.remap``:

1. Coarse, first-order (FOMM's "sparse motions"): each keypoint k proposes
   ``x_S,k + J_S,k inv(J_new,k) (z - x_new,k)``; proposals are blended with Gaussian weights
   around the new keypoints, and faded into the identity (a still background) outside a
   feathered hull of the new face. Head turns, nods, zoom and translation live here.
2. Fine, per mesh point: what the coarse layer still gets wrong at the 478 moved mesh
   points (lips, eyelids, brows) is spread as a residual displacement by normalised
   convolution (splat, Gaussian blur, divide by the blurred density), fading to zero
   away from the mesh. Mouth opening and blinks live here.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.landmark.keypoints import Keypoints, inv2x2

_FINE_CELLS_PER_FACE = 64  # fine-grid cells across the face width
_SIGMA_KP = 0.16  # keypoint blending width, in face widths
_HULL_GROWTH = 1.25  # the moving region: the mesh hull scaled about its centre (hair, jaw)
_FEATHER = 0.10  # Gaussian feather of that region, in face widths
_MARGIN = 0.45  # window margin around the meshes, in face widths
_COARSE_STRIDE = 4  # coarse-grid cell = this many fine cells
_SIGMA_FINE = 1.6  # residual spreading width, in fine cells
_DENSITY_FLOOR = 0.02  # normalised-convolution prior: residuals fade where points are sparse
_FIT_ROUNDS = 3  # normalised-convolution rounds, each spreading what the last left at the points
_MIN_DET = 0.1  # sharp mode: the backward map's Jacobian determinant is kept above this (no fold)
_UNFOLD_ROUNDS = 20  # ... by at most this many local smoothing rounds (and as many damping rounds)
_UNFOLD_SIGMA = 1.5  # ... each of this width, in fine cells
_STILL_PX = 0.6  # sharp mode: displacements under this many px are dropped, twice it kept whole



class DenseWarp:
    """Warp one source image (H, W, 3) uint8 whose mesh is ``source_points`` (N, 2)."""

    def __init__(self, source: np.ndarray, source_points: np.ndarray, source_kp: Keypoints, *, sharp: bool = False):
        # sharp: bicubic resampling, and sub-pixel displacements (detector jitter) are
        # faded to zero so a still face is not resampled at all
        self.sharp = sharp
        self.source = np.ascontiguousarray(source)
        self.source_points = np.asarray(source_points, dtype=np.float64)[:, :2]
        self.source_kp = source_kp
        self.face_width = float(np.ptp(self.source_points[:, 0]))
        self.cell = max(1, int(round(self.face_width / _FINE_CELLS_PER_FACE)))  # px per fine cell

    def _window(self, new_points: np.ndarray) -> tuple[int, int, int, int]:
        """(x0, y0, gw, gh): top-left px and fine-grid size (even) of the area that can move."""
        both = np.concatenate([self.source_points, new_points])
        lo = both.min(axis=0) - _MARGIN * self.face_width
        hi = both.max(axis=0) + _MARGIN * self.face_width
        h, w = self.source.shape[:2]
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(np.ceil(hi[0])), w), min(int(np.ceil(hi[1])), h)
        step = _COARSE_STRIDE * self.cell
        gw = max(1, -(-(x1 - x0) // step)) * _COARSE_STRIDE
        gh = max(1, -(-(y1 - y0) // step)) * _COARSE_STRIDE
        return x0, y0, gw, gh

    def _grid(self, x0: int, y0: int, gw: int, gh: int, cell: int) -> np.ndarray:
        """(gh, gw, 2) image coordinates of the centres of ``cell``-px cells from (x0, y0)."""
        xs = x0 + cell * (np.arange(gw) + 0.5) - 0.5
        ys = y0 + cell * (np.arange(gh) + 0.5) - 0.5
        return np.stack(np.meshgrid(xs, ys), axis=-1)

    def _coarse(self, kp_new: Keypoints, new_points: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
        """(gh, gw, 2) float32 first-order backward displacement on the fine grid.

        Sum_k w_k(z) (x_S,k + B_k (z - x_new,k)) / Sum_k w_k(z) with B_k = J_S,k inv(J_new,k)
        is evaluated as (W c + (W B) z) with c_k = x_S,k - B_k x_new,k, i.e. two matrix
        products over the (M, K) normalised weights W, on a grid ``_COARSE_STRIDE`` times
        coarser than the fine one (the field is smooth at this scale)."""
        x0, y0, gw, gh = win
        cw, ch = gw // _COARSE_STRIDE, gh // _COARSE_STRIDE
        z = self._grid(x0, y0, cw, ch, _COARSE_STRIDE * self.cell).reshape(-1, 2)  # (M, 2)
        back = self.source_kp.jacobian @ inv2x2(kp_new.jacobian)  # (K, 2, 2): new offsets -> source
        c = self.source_kp.value - np.einsum("kij,kj->ki", back, kp_new.value)  # (K, 2)
        d2 = (z**2).sum(1)[:, None] - 2 * z @ kp_new.value.T + (kp_new.value**2).sum(1)[None]  # (M, K)
        logw = -d2 / (2 * (_SIGMA_KP * self.face_width) ** 2)
        weight = np.exp(logw - logw.max(axis=1, keepdims=True))
        weight /= weight.sum(1, keepdims=True)
        mix = weight @ back.reshape(-1, 4)  # (M, 4) blended B
        face = weight @ c + np.stack([mix[:, 0] * z[:, 0] + mix[:, 1] * z[:, 1],
                                      mix[:, 2] * z[:, 0] + mix[:, 3] * z[:, 1]], axis=1)  # (M, 2)
        mask = self._face_mask(new_points, x0, y0, cw, ch).reshape(-1, 1)  # (M, 1)
        disp = (mask * (face - z)).reshape(ch, cw, 2).astype(np.float32)
        return cv2.resize(disp, (gw, gh), interpolation=cv2.INTER_LINEAR)

    def _face_mask(self, new_points: np.ndarray, x0: int, y0: int, gw: int, gh: int) -> np.ndarray:
        """(gh, gw) float32 in [0, 1]: 1 over the grown hull of the new mesh, feathered out."""
        cell = _COARSE_STRIDE * self.cell
        centre = new_points.mean(axis=0)
        grown = centre + _HULL_GROWTH * (new_points - centre)
        hull = cv2.convexHull(((grown - [x0, y0]) / cell * 4).astype(np.int32))  # 1/4-cell precision
        mask = np.zeros((gh, gw), np.uint8)
        cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=2)
        sigma = _FEATHER * self.face_width / cell
        return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)

    def _residual(self, coarse: np.ndarray, new_points: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
        """(gh, gw, 2) float32 correction so each moved mesh point samples its own source point.

        Normalised convolution (splat the residuals and a unit density, blur both, divide)
        is smooth but shrinks sharp differences, e.g. an upper eyelid that moves while the
        lower one 8 px away does not; a few rounds, each spreading what is still missing at
        the points, converge to the points' own values."""
        x0, y0, gw, gh = win
        gx = ((new_points[:, 0] - x0 + 0.5) / self.cell - 0.5).astype(np.float32)  # (N,) fine-grid coords
        gy = ((new_points[:, 1] - y0 + 0.5) / self.cell - 0.5).astype(np.float32)
        splat = _Splat(gx, gy, gw, gh)
        target = (self.source_points - new_points).astype(np.float32)  # (N, 2) wanted displacement
        density = splat(np.ones((len(gx), 1), np.float32))  # (gh, gw, 1)
        norm = 1.0 / (density + _DENSITY_FLOOR * float(density.max()) + 1e-6)
        field = np.zeros((gh, gw, 2), np.float32)
        for _ in range(_FIT_ROUNDS):
            have = _sample(coarse + field, gx, gy)  # (N, 2)
            field += splat(target - have) * norm
        return field

    def backward_map(self, kp_new: Keypoints, new_points: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(x0, y0, map_x, map_y): for each output pixel of the window whose top-left pixel is
        (x0, y0), the source pixel it samples (two (h, w) float32 arrays); outside the window
        the output is the source itself."""
        new_points = np.asarray(new_points, dtype=np.float64)[:, :2]
        win = self._window(new_points)
        x0, y0, gw, gh = win
        coarse = self._coarse(kp_new, new_points, win)  # (gh, gw, 2)
        disp = coarse + self._residual(coarse, new_points, win)
        if self.sharp:
            size = np.sqrt((disp**2).sum(axis=2, keepdims=True))
            t = np.clip((size - _STILL_PX) / _STILL_PX, 0, 1)
            disp = _unfold(disp * (t * t * (3 - 2 * t)), self.cell)
        h, w = self.source.shape[:2]
        pw, ph = min(gw * self.cell, w - x0), min(gh * self.cell, h - y0)
        full = cv2.resize(disp, (gw * self.cell, gh * self.cell), interpolation=cv2.INTER_LINEAR)[:ph, :pw]
        xs = np.arange(x0, x0 + pw, dtype=np.float32)
        ys = np.arange(y0, y0 + ph, dtype=np.float32)
        return x0, y0, full[..., 0] + xs[None, :], full[..., 1] + ys[:, None]

    def __call__(self, kp_new: Keypoints, new_points: np.ndarray) -> np.ndarray:
        """The source re-posed to ``kp_new`` / ``new_points`` (N, 2): (H, W, 3) uint8."""
        x0, y0, map_x, map_y = self.backward_map(kp_new, new_points)
        ph, pw = map_x.shape
        out = self.source.copy()
        interp = cv2.INTER_CUBIC if self.sharp else cv2.INTER_LINEAR
        out[y0:y0 + ph, x0:x0 + pw] = cv2.remap(self.source, map_x, map_y, interp,
                                                borderMode=cv2.BORDER_REFLECT_101)
        return out


def _fold_nodes(disp: np.ndarray, cell: int) -> np.ndarray:
    """(gh, gw) bool: grid nodes next to a cell where the backward map z -> z + disp(z),
    interpolated bilinearly from ``disp`` on ``cell``-px cells, has a Jacobian determinant
    under ``_MIN_DET`` (below zero the warp folds). A bilinear cell's determinant is smallest
    at one of its corners, so the four corner values (from the cell's edges) decide."""
    gh, gw = disp.shape[:2]
    pos = disp.astype(np.float64) + cell * np.stack(np.meshgrid(np.arange(gw), np.arange(gh)), axis=-1)
    ex = pos[:, 1:] - pos[:, :-1]  # (gh, gw-1, 2) horizontal edges
    ey = pos[1:, :] - pos[:-1, :]  # (gh-1, gw, 2) vertical edges

    def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]) / cell**2

    det = np.minimum.reduce([cross(ex[:-1], ey[:, :-1]), cross(ex[:-1], ey[:, 1:]),
                             cross(ex[1:], ey[:, :-1]), cross(ex[1:], ey[:, 1:])])  # (gh-1, gw-1)
    bad = det < _MIN_DET
    nodes = np.zeros((gh, gw), bool)
    for dy in (0, 1):
        for dx in (0, 1):
            nodes[dy:gh - 1 + dy, dx:gw - 1 + dx] |= bad
    return nodes


def _unfold(disp: np.ndarray, cell: int) -> np.ndarray:
    """``disp`` with every fold smoothed out: where the map's Jacobian determinant nears
    zero (``_fold_nodes``; mesh points that cross in 2-D on a turned head: the far cheek, the
    jaw line), the field is blended towards its own local average, round by round, until
    the map keeps orientation everywhere; folds-free fields are returned unchanged."""
    for i in range(2 * _UNFOLD_ROUNDS):
        bad = _fold_nodes(disp, cell).astype(np.float32)
        if not bad.any():
            break
        if i < _UNFOLD_ROUNDS:  # first smooth the field locally ...
            weight = np.clip(3.0 * cv2.GaussianBlur(bad, (0, 0), _UNFOLD_SIGMA), 0, 1)[..., None]
            disp = disp * (1 - weight) + cv2.GaussianBlur(disp, (0, 0), _UNFOLD_SIGMA) * weight
        else:  # ... then, where that is not enough, damp the motion towards the still photo
            weight = np.clip(3.0 * cv2.GaussianBlur(bad, (0, 0), 3 * _UNFOLD_SIGMA), 0, 1)[..., None]
            disp = disp * (1 - 0.3 * weight)
    return disp


def _sample(field: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) of an (h, w, C) field at fractional grid coordinates."""
    return cv2.remap(field, gx[:, None], gy[:, None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]


class _Splat:
    """Bilinear splatting of point values onto a (gh, gw) grid followed by a Gaussian blur."""

    def __init__(self, gx: np.ndarray, gy: np.ndarray, gw: int, gh: int):
        ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        fx, fy = gx - ix, gy - iy
        n = len(gx)
        cx = np.concatenate([ix, ix + 1, ix, ix + 1])  # (4N,) the four neighbours of each point
        cy = np.concatenate([iy, iy, iy + 1, iy + 1])
        wt = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
        ok = (cx >= 0) & (cx < gw) & (cy >= 0) & (cy < gh)
        self.point = np.tile(np.arange(n), 4)[ok]
        self.flat = (cy * gw + cx)[ok]
        self.weight = wt[ok].astype(np.float64)
        self.shape = (gh, gw)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        gh, gw = self.shape
        channels = values.shape[1]
        spread = values[self.point].astype(np.float64) * self.weight[:, None]  # (4N, C)
        planes = np.stack([np.bincount(self.flat, weights=spread[:, c], minlength=gh * gw)
                           for c in range(channels)], axis=-1).reshape(gh, gw, channels).astype(np.float32)
        return cv2.GaussianBlur(planes, (0, 0), _SIGMA_FINE).reshape(gh, gw, channels)
