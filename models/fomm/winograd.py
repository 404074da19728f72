"""Winograd F(m x m, 3 x 3) convolution for the CPU, written with a few large matrix products.

Why: on a CPU, the generator spends most of its time in the bottleneck's 256->256 3x3
convolutions at 64x64. oneDNN already runs these direct convolutions close to what the
machine's BLAS reaches (about the same flops/s as a large ``torch.mm``), so only an algorithm
with fewer multiplications can make them cheaper. Winograd's minimal filtering algorithm
F(m, 3) computes m outputs of a 3-tap correlation from n = m + 2 inputs with n multiplications
instead of 3m. In 2-D an m x m output tile costs n^2 instead of 9 m^2 multiplications per
channel pair: for m = 4, 36 instead of 144 (4x fewer); F(2, 3) saves only 2.25x.

The computation, for an input padded by 1 and cut into overlapping n x n tiles with stride m::

    V[p]  = sum_q BB[p, q] * tile[q]              input transform (BB = B^T kron B^T), n^2 x n^2
    M[p]  = Wt[p] @ V[p]                            n^2 independent (O, C) x (C, tiles) GEMMs
    Y[s]  = sum_p AA[s, p] * M[p]                   output transform (AA = A^T kron A^T), m^2 x n^2

The layout is chosen so each stage is *one* large BLAS call and no big tensor is permuted
between them: tiles are gathered into a (n^2, C * tiles) matrix, so the input transform is a
single (n^2 x n^2) @ (n^2 x C*tiles) product, the multiply stage a batched GEMM over the n^2
points, and the output transform again a single product. The only other passes over memory
are the tile gather and the scatter of output tiles back to (B, O, H, W); the scatter is fused
with the caller's epilogue (ReLU, residual add) and can write straight into the interior of the
next convolution's zero-padded input buffer.

The transform matrices come from the Cook-Toom construction over chosen interpolation points
(plus the point at infinity), computed exactly in rationals. With points 0, +-1, +-2 (F(4, 3))
the float32 error stays at the level of a direct convolution's rounding times a small factor
(the tests check against ``F.conv2d``). A bias is added to the multiply stage's output for the
point 1 only: ``A^T`` maps a unit vector at point 1 to all ones, so this adds the bias to every
output for 1/n^2 of the cost of a full pass.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import torch

DEFAULT_POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2)),
}
"""Finite interpolation points per output tile size m (m + 1 of them; infinity is the last)."""


def _poly_mul(a: list[Fraction], b: list[Fraction]) -> list[Fraction]:
    """Product of two polynomials given as ascending coefficient lists."""
    out = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


@cache
def winograd_matrices(m: int, r: int = 3, points: tuple[Fraction, ...] | None = None) -> tuple[
    list[list[Fraction]], list[list[Fraction]], list[list[Fraction]]
]:
    """Exact (A^T (m x n), G (n x r), B^T (n x n)) of F(m, r), n = m + r - 1, by Cook-Toom.

    Why this form: the linear convolution s = g * h (degree n - 1) is evaluated at n - 1 points
    and at infinity (its leading coefficient), multiplied pointwise and interpolated back
    (Lagrange, with the denominators moved into G). A correlation y_i = sum_k d_(i+k) g_k,
    which is what ``conv2d`` computes, is the transpose of that map with respect to (h, s), so
    y = A^T [(G g) * (B^T d)] with A the evaluation matrix of h and B the interpolation matrix.
    """
    n = m + r - 1
    pts = points if points is not None else DEFAULT_POINTS[m]
    if len(pts) != n - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct finite points, got {pts}")
    # A (n x m): evaluate h (degree m - 1) at each point; the infinity row picks the top coefficient.
    a_t = [[p**i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]  # (m, n)
    g_mat = []
    for j, p in enumerate(pts):
        denominator = Fraction(1)
        for k, q in enumerate(pts):
            if k != j:
                denominator *= p - q
        g_mat.append([p**k / denominator for k in range(r)])
    g_mat.append([Fraction(int(k == r - 1)) for k in range(r)])  # (n, r)
    # Interpolation matrix Bmat (n x n): column j = coefficients of prod_{l != j}(x - a_l), the
    # last column = coefficients of prod_l (x - a_l) (the infinity term). B^T is its transpose.
    b_t = []
    for j in range(n - 1):
        poly = [Fraction(1)]
        for k, q in enumerate(pts):
            if k != j:
                poly = _poly_mul(poly, [-q, Fraction(1)])
        b_t.append(poly + [Fraction(0)] * (n - len(poly)))
    full = [Fraction(1)]
    for q in pts:
        full = _poly_mul(full, [-q, Fraction(1)])
    b_t.append(full)  # (n, n), row j = column j of Bmat
    return a_t, g_mat, b_t


_TRANSFORM_BY_CONV = True
"""Batch-1 input transform as a strided conv (measured ~5-10% faster per bottleneck than gather + mm
with two busy workers: one pass less over the tiles, compute-bound rather than memory-bound)."""


def _kron_square(mat: list[list[Fraction]], like: torch.Tensor) -> torch.Tensor:
    """kron(mat, mat) as a float64-computed tensor in ``like``'s dtype and device."""
    small = torch.tensor([[float(v) for v in row] for row in mat], dtype=torch.float64)
    return torch.kron(small, small).to(dtype=like.dtype, device=like.device)


def transform_weight(weight: torch.Tensor, m: int = 4) -> torch.Tensor:
    """Kernel transform G w G^T of a (O, C, 3, 3) weight -> (n^2, O, C), computed in float64.

    Done once per weight (callers cache it); float64 so the only rounding is the final cast.
    """
    _, g_mat, _ = winograd_matrices(m)
    g = torch.tensor([[float(v) for v in row] for row in g_mat], dtype=torch.float64, device=weight.device)  # (n, 3)
    out_channels, in_channels = weight.shape[:2]
    n = g.shape[0]
    transformed = torch.einsum("pi,ocij,qj->pqoc", g, weight.detach().to(torch.float64), g)  # (n, n, O, C)
    return transformed.reshape(n * n, out_channels, in_channels).to(weight.dtype).contiguous()


def tile_grid(height: int, width: int, m: int = 4) -> tuple[int, int, int, int]:
    """(tile rows, tile cols, padded height, padded width) for a 3x3 'same' conv of an H x W map.

    The padded buffer holds a 1-pixel zero border on the top/left and enough zeros at the
    bottom/right that every n x n tile (stride m) lies inside it.
    """
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    return tiles_h, tiles_w, tiles_h * m + 2, tiles_w * m + 2


def padded_buffer(like: torch.Tensor, channels: int, height: int, width: int, m: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A zeroed (B, C, Hp, Wp) input buffer for ``conv3x3_tiles`` and its (B, C, H, W) interior view.

    Producers write their output into the interior (``out=``), so no separate padding copy happens.
    """
    _, _, padded_h, padded_w = tile_grid(height, width, m)
    buffer = like.new_zeros(like.shape[0], channels, padded_h, padded_w)  # (B, C, Hp, Wp)
    return buffer, buffer[:, :, 1 : height + 1, 1 : width + 1]


def conv3x3_tiles(
    padded: torch.Tensor, transformed_weight: torch.Tensor, bias: torch.Tensor | None, height: int, width: int, m: int = 4
) -> torch.Tensor:
    """Winograd 3x3 convolution of a padded buffer; returns output *tiles* as a (B, O, th, m, tw, m) view.

    ``padded`` (B, C, Hp, Wp) is contiguous with the layout of ``padded_buffer``. Row ``y`` of the
    result's tile grid, ``[:, :, ty, i, tx, j]``, is output pixel (m*ty + i, m*tx + j); pixels
    past (height, width) are garbage the caller drops. The view is not contiguous: callers copy
    it out with their epilogue (``scatter_tiles``), which is the one unavoidable output pass.
    """
    batch, channels, padded_h, padded_w = padded.shape
    n = m + 2
    tiles_h, tiles_w, need_h, need_w = tile_grid(height, width, m)
    if (padded_h, padded_w) != (need_h, need_w) or not padded.is_contiguous():
        raise ValueError(f"padded input must be contiguous (B, C, {need_h}, {need_w}), got {tuple(padded.shape)}")
    out_channels = transformed_weight.shape[1]
    tiles = batch * tiles_h * tiles_w
    a_t, _, b_t = winograd_matrices(m)
    bb = _kron_square(b_t, padded)  # (n^2, n^2)
    aa = _kron_square(a_t, padded)  # (m^2, n^2)
    if batch == 1 and _TRANSFORM_BY_CONV:
        # Gather and input transform in one: a stride-m convolution of every channel with the
        # n^2 kernels BB[p] (n x n). (C, n^2, th, tw) is read as (n^2, C, N) with strides
        # (N, n^2 N, 1), which BLAS takes as is (no copy).
        v = torch.nn.functional.conv2d(padded.view(channels, 1, padded_h, padded_w), bb.view(n * n, 1, n, n), stride=m)
        v = v.view(channels, n * n, tiles).transpose(0, 1)  # (n^2, C, N) view
    else:
        # Gather: U[i, j, c, b, ty, tx] = padded[b, c, m*ty + i, m*tx + j], copied to (n^2, C * tiles).
        s_b, s_c, s_h, _ = padded.stride()
        gathered = padded.as_strided(
            (n, n, channels, batch, tiles_h, tiles_w), (s_h, 1, s_c, s_b, m * s_h, m), padded.storage_offset()
        ).reshape(n * n, channels * tiles)
        v = torch.mm(bb, gathered).view(n * n, channels, tiles)  # (n^2, C, N) input transform
    products = torch.bmm(transformed_weight, v)  # (n^2, O, N)
    if bias is not None:
        products[_point_one(m) * (n + 1)].add_(bias.view(-1, 1))  # A^T e_1 = ones: bias on every output
    y = torch.mm(aa, products.view(n * n, out_channels * tiles))  # (m^2, O * N) output transform
    return y.view(m, m, out_channels, batch, tiles_h, tiles_w).permute(3, 2, 4, 0, 5, 1)  # (B, O, th, m, tw, m)


@cache
def _point_one(m: int) -> int:
    """Index of the interpolation point 1 (A^T maps the unit vector there to all ones)."""
    return DEFAULT_POINTS[m].index(Fraction(1))


def tile_view(image: torch.Tensor, m: int = 4) -> torch.Tensor:
    """(B, C, th*m, tw*m) -> (B, C, th, m, tw, m) view (rows/cols split into tiles), any strides."""
    batch, channels, height, width = image.shape
    return image.unflatten(3, (width // m, m)).unflatten(2, (height // m, m))


def scatter_tiles(
    tiles: torch.Tensor,
    out: torch.Tensor,
    *,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """Write output tiles (B, O, th, m, tw, m) into ``out`` (B, O, H, W), with ReLU or a residual add.

    Why: copying the permuted tiles out is one pass over the output anyway, so the epilogue
    rides along. ``out`` may be a strided view (the interior of the next conv's padded buffer).
    When H or W is not a multiple of m the tiles are first cropped (an extra copy).
    """
    m = tiles.shape[3]
    height, width = out.shape[2:]
    if height % m or width % m:
        full = tiles.reshape(tiles.shape[0], tiles.shape[1], tiles.shape[2] * m, tiles.shape[4] * m)
        source = full[:, :, :height, :width]
        target = out
    else:
        source, target = tiles, tile_view(out, m)
        residual = tile_view(residual, m) if residual is not None else None
    if residual is not None:
        torch.add(residual, source, out=target)
    elif relu:
        torch.clamp_min(source, 0, out=target)
    else:
        target.copy_(source)
    return out


def conv3x3(
    x: torch.Tensor, transformed_weight: torch.Tensor, bias: torch.Tensor | None, m: int = 4
) -> torch.Tensor:
    """Plain-interface Winograd 3x3 'same' convolution: equals ``F.conv2d(x, w, bias, padding=1)``.

    x (B, C, H, W) -> (B, O, H, W); ``transformed_weight`` from ``transform_weight(w, m)``.
    """
    batch, channels, height, width = x.shape
    padded, interior = padded_buffer(x, channels, height, width, m)
    interior.copy_(x)
    tiles = conv3x3_tiles(padded, transformed_weight, bias, height, width, m)
    out = x.new_empty(batch, transformed_weight.shape[1], height, width)
    return scatter_tiles(tiles, out)


def union_phase_kernel(phase_kernels: list[torch.Tensor]) -> torch.Tensor:
    """The four 2x2 phase kernels (O, C, 2, 2) of a nearest-x2 upsample + 3x3 conv as one (4*O, C, 3, 3) kernel.

    Why: phase (py, px) reads padded low-resolution rows i+py, i+py+1 and columns j+px, j+px+1,
    which is a 3x3 'same' window with the kernel placed at offset (py, px) and zeros elsewhere.
    One 3x3 convolution with 4*O output channels therefore yields every phase, and under
    F(4x4, 3x3) it costs 36/16 multiplications per output pixel instead of the direct 2x2
    phases' 4 (the zeros cost nothing extra in the Winograd domain). Output channel
    (2 * py + px) * O + o is phase (py, px) of channel o.
    """
    out_channels, in_channels = phase_kernels[0].shape[:2]
    union = phase_kernels[0].new_zeros(4, out_channels, in_channels, 3, 3)
    for index, kernel in enumerate(phase_kernels):
        py, px = divmod(index, 2)
        union[index, :, :, py : py + 2, px : px + 2] = kernel
    return union.view(4 * out_channels, in_channels, 3, 3)


def scatter_phases(tiles: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """ReLU of the union conv's tiles (B, 4*O, th, m, tw, m), interleaved into ``out`` (B, O, 2H, 2W).

    Output pixel (2y + py, 2x + px) of channel o is low pixel (y, x) of union channel
    (2 py + px) O + o; the interleave, the ReLU and (for sizes that are not whole tiles) the crop
    are one strided copy.
    """
    batch, channels4, tiles_h, m, tiles_w, _ = tiles.shape
    out_channels = channels4 // 4
    height, width = out.shape[2] // 2, out.shape[3] // 2
    phases = tiles.unflatten(1, (2, 2, out_channels))  # (B, py, px, O, th, i, tw, j)
    source = phases.permute(0, 3, 4, 5, 1, 6, 7, 2)  # (B, O, th, i, py, tw, j, px)
    if height % m or width % m:
        full = source.reshape(batch, out_channels, 2 * tiles_h * m, 2 * tiles_w * m)
        torch.clamp_min(full[:, :, : 2 * height, : 2 * width], 0, out=out)
        return out
    target = out.view(batch, out_channels, tiles_h, m, 2, tiles_w, m, 2)
    torch.clamp_min(source, 0, out=target)
    return out
