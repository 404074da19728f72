"""Building blocks of the First Order Motion Model (Siarohin et al., NeurIPS 2019).

Ported for inference from ``modules/util.py`` of github.com/AliaksandrSiarohin/first-order-model;
attribute names (``conv``, ``norm``, ``conv1``, ``encoder.down_blocks`` ...) are the paper's so the
released checkpoints load with ``strict=True``. BatchNorm is plain ``nn.BatchNorm2d`` (the
reference's SynchronizedBatchNorm2d is ``F.batch_norm`` in eval mode, same state-dict keys).

Exact rewrites make eval-mode inference cheaper without changing the function computed
(up to float rounding): a BatchNorm that follows a convolution is folded into that
convolution's weights, and "nearest x2 upsample, then 3x3 conv" is computed as four 2x2
convolutions at the low resolution (one per output phase), 16 instead of 36 multiply-adds per
output pixel and channel pair. On the CPU (float32, no grad, no autocast) the residual
blocks' 3x3 convolutions, and the UpBlocks on maps of 64 px and more, run as Winograd
F(4x4, 3x3) convolutions (``winograd.py``), image by image. Derived weights are cached per
weight version (``derived``). Training mode and ``reference_layers()`` run the plain layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from models.fomm import winograd

_rewrites = {"enabled": True}
_T = TypeVar("_T")
_A = TypeVar("_A")


@contextmanager
def reference_layers() -> Iterator[None]:
    """Run the plain layers (no BatchNorm folding, no phase-split upsampling) inside this block.

    For benchmarks and debugging: it reproduces the reference's cost, not a different result.
    """
    before = _rewrites["enabled"]
    _rewrites["enabled"] = False
    try:
        yield
    finally:
        _rewrites["enabled"] = before


def _plain(module: nn.Module) -> bool:
    return module.training or not _rewrites["enabled"]


def make_coordinate_grid(height: int, width: int, *, like: torch.Tensor) -> torch.Tensor:
    """Grid of (x, y) in [-1, 1] with -1/+1 on the first/last pixel centre. # (H, W, 2)"""
    x = 2 * (torch.arange(width, dtype=like.dtype, device=like.device) / (width - 1)) - 1
    y = 2 * (torch.arange(height, dtype=like.dtype, device=like.device) / (height - 1)) - 1
    return torch.stack([x.view(1, width).expand(height, width), y.view(height, 1).expand(height, width)], dim=-1)


def kp2gaussian(value: torch.Tensor, height: int, width: int, kp_variance: float) -> torch.Tensor:
    """Unnormalised Gaussian around each keypoint. value (B, K, 2) -> (B, K, H, W)."""
    grid = make_coordinate_grid(height, width, like=value)  # (H, W, 2)
    diff = grid.view(1, 1, height, width, 2) - value.view(*value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``norm(conv(x))`` as one convolution (eval-mode BatchNorm is affine)."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)  # (O,)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    return weight, (bias - norm.running_mean) * scale + norm.bias


def _phase_kernels(weight: torch.Tensor) -> list[torch.Tensor]:
    """The four 2x2 kernels (O, C, 2, 2) of ``_upsample_conv``, phases (0,0), (0,1), (1,0), (1,1).

    Output row 2i sees upsampled rows 2i-1, 2i, 2i+1 = low rows i-1, i, i, so its row taps
    collapse to (w0, w1 + w2) on rows (i-1, i); row 2i+1 gets (w0 + w1, w2) on rows (i, i+1).
    The same holds for columns.
    """
    w0, w1, w2 = weight[:, :, 0:1], weight[:, :, 1:2], weight[:, :, 2:3]
    rows = (torch.cat([w0, w1 + w2], 2), torch.cat([w0 + w1, w2], 2))  # each (O, C, 2, 3)
    kernels = []
    for row_kernel in rows:
        c0, c1, c2 = row_kernel[..., 0:1], row_kernel[..., 1:2], row_kernel[..., 2:3]
        kernels += [torch.cat([c0, c1 + c2], 3), torch.cat([c0 + c1, c2], 3)]
    return kernels


def _upsample_conv(x: torch.Tensor, kernels: list[torch.Tensor], bias: torch.Tensor) -> torch.Tensor:
    """``conv3x3(pad 1)(nearest_upsample_x2(x))`` computed at the low resolution.

    ``kernels`` from ``_phase_kernels``. Zero padding matches: upsampled row -1 is padding, and
    so is low row -1. x (B, C, H, W) -> (B, O, 2H, 2W).
    """
    padded = F.pad(x, (1, 1, 1, 1))
    batch, _, height, width = x.shape
    out = x.new_empty(batch, kernels[0].shape[0], 2 * height, 2 * width)
    for index, kernel in enumerate(kernels):
        py, px = divmod(index, 2)
        window = padded[:, :, py : py + height + 1, px : px + width + 1]
        out[:, :, py::2, px::2] = F.conv2d(window, kernel, bias)  # (B, O, H, W) phase
    return out


def derived(module: nn.Module, name: str, compute: Callable[[], _T]) -> _T:
    """``compute()`` (weights derived from ``module``'s parameters), cached on the module when no grad is needed.

    Why: folding a BatchNorm into a 1024-channel conv, or building phase and Winograd kernels,
    costs a pass over the weights on every call, which on small feature maps is as much as the
    convolution itself; the weights do not change between frames. The cache key holds each
    parameter's and buffer's storage pointer and version counter, so ``load_state_dict`` (an
    in-place copy, which bumps the version), ``.to()`` or editing a weight invalidates it. With
    grad enabled nothing is cached, so gradients still reach the parameters. The values are
    made outside inference mode, so they stay usable in any mode.
    """
    if torch.is_grad_enabled():
        return compute()
    tensors = (*module.parameters(), *module.buffers())
    key = tuple((t.device, t.dtype, t.data_ptr(), t._version) for t in tensors)
    cache: dict[str, tuple[tuple, object]] = module.__dict__.setdefault("_derived_cache", {})
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            hit = (key, compute())
        cache[name] = hit  # a benign race: two threads would store equal values
    return hit[1]  # type: ignore[return-value]


@dataclass(frozen=True)
class _WinogradResBlock:
    """Everything one eval-mode ResBlock2d needs on the Winograd path, derived from its parameters."""

    scale: torch.Tensor  # (C, 1, 1) norm1 as an affine map: relu(x * scale + shift)
    shift: torch.Tensor  # (C, 1, 1)
    weight1: torch.Tensor  # (n^2, C, C) conv1 with norm2 folded in, Winograd domain
    bias1: torch.Tensor  # (C,)
    weight2: torch.Tensor  # (n^2, C, C) conv2, Winograd domain
    bias2: torch.Tensor  # (C,)


class ResBlock2d(nn.Module):
    """Pre-activation residual block: BN, ReLU, conv, BN, ReLU, conv, plus the input."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self):
            out = self.conv1(F.relu(self.norm1(x)))
            return self.conv2(F.relu(self.norm2(out))) + x
        if winograd_applies(self, x):
            return run_resblocks_winograd([self], x)
        weight, bias = derived(self, "folded", lambda: _folded(self.conv1, self.norm2))
        out = F.relu(F.conv2d(F.relu(self.norm1(x)), weight, bias, padding=self.conv1.padding))
        return torch.add(x, F.conv2d(out, self.conv2.weight, self.conv2.bias, padding=self.conv2.padding))

    def winograd_params(self) -> _WinogradResBlock:
        """Norm1 as an affine map and both convs' Winograd kernels (norm2 folded into conv1), cached.

        Computed once per weight version (``derived``): the kernel transforms cost about as much
        as a frame's worth of this block.
        """

        def compute() -> _WinogradResBlock:
            scale = self.norm1.weight * torch.rsqrt(self.norm1.running_var + self.norm1.eps)  # (C,)
            shift = self.norm1.bias - self.norm1.running_mean * scale
            weight1, bias1 = _folded(self.conv1, self.norm2)
            return _WinogradResBlock(
                scale=scale.view(-1, 1, 1).clone(),
                shift=shift.view(-1, 1, 1).clone(),
                weight1=winograd.transform_weight(weight1, WINOGRAD_TILE),
                bias1=bias1.clone(),
                weight2=winograd.transform_weight(self.conv2.weight, WINOGRAD_TILE),
                bias2=self.conv2.bias.clone(),
            )

        return derived(self, "winograd", compute)


WINOGRAD_TILE = 4
"""Output tile size m of the Winograd convolutions: F(4x4, 3x3), 4x fewer multiplications."""


WINOGRAD_MIN_UPSAMPLE_SIDE = 64
"""Smaller maps stay on the direct phase convs. Measured per image, one thread: the union conv
won 1.35x at 64x64 (256->128) and 1.3x at 128x128 (128->64), the generator's two UpBlocks, but
lost at 32x32 and below (hourglass sizes), where the tile transforms outweigh the products."""


def winograd_eligible(x: torch.Tensor) -> bool:
    """Whether the CPU fast paths apply: float32 on the CPU, rewrites on, no autocast, no grad.

    Why each: cuDNN has its own fast algorithms; reduced precision would lose accuracy in the
    Winograd transforms; the fast paths use cached weights that carry no gradient.
    """
    return (
        _rewrites["enabled"]
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.is_grad_enabled()
    )


def _upsample_conv_winograd(x: torch.Tensor, union: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """ReLU(BN(conv3x3(nearest_x2(x)))) by one Winograd union conv per image. x (B, C, H, W) -> (B, O, 2H, 2W).

    Image by image for the same reason as the bottleneck: each image's Winograd operands stay in cache.
    """
    batch, channels, height, width = x.shape
    out = x.new_empty(batch, union.shape[1] // 4, 2 * height, 2 * width)
    padded, interior = winograd.padded_buffer(x[:1], channels, height, width, WINOGRAD_TILE)
    for index in range(batch):
        interior.copy_(x[index : index + 1])
        tiles = winograd.conv3x3_tiles(padded, union, bias, height, width, WINOGRAD_TILE)  # (1, 4*O, th, m, tw, m)
        winograd.scatter_phases(tiles, out[index : index + 1])
    return out


def winograd_applies(block: ResBlock2d, x: torch.Tensor) -> bool:
    """Whether ``block`` runs on the Winograd path for input ``x``: eval mode, 3x3 convs with
    padding 1, and ``winograd_eligible(x)`` (float32 on the CPU, no autocast, no grad, rewrites on).
    """
    return (
        not _plain(block)
        and winograd_eligible(x)  # the cached kernels carry no gradient
        and block.conv1.kernel_size == block.conv2.kernel_size == (3, 3)
        and block.conv1.padding == block.conv2.padding == (1, 1)
    )


def _resblocks_one_chunk(params: list[_WinogradResBlock], x: torch.Tensor) -> torch.Tensor:
    """ResBlocks on x (b, C, H, W) by Winograd; two padded buffers are reused by every conv.

    The buffers' zero borders are never written, only their interiors, so each conv's input
    padding comes for free. The first ReLU(BN(x)) is two elementwise passes into the buffer;
    the ReLU after conv1 and the residual add after conv2 ride along with the tile scatter.
    """
    batch, channels, height, width = x.shape
    m = WINOGRAD_TILE
    first, first_in = winograd.padded_buffer(x, channels, height, width, m)  # (b, C, Hp, Wp)
    second, second_in = winograd.padded_buffer(x, channels, height, width, m)
    for p in params:
        torch.addcmul(p.shift, x, p.scale, out=first_in)  # BN1 as x * scale + shift
        first_in.clamp_min_(0)
        tiles = winograd.conv3x3_tiles(first, p.weight1, p.bias1, height, width, m)  # (b, C, th, m, tw, m)
        winograd.scatter_tiles(tiles, second_in, relu=True)
        tiles = winograd.conv3x3_tiles(second, p.weight2, p.bias2, height, width, m)
        x = winograd.scatter_tiles(tiles, x.new_empty(batch, channels, height, width), residual=x)
    return x


def run_resblocks_winograd(blocks: list[ResBlock2d], x: torch.Tensor) -> torch.Tensor:
    """A chain of ResBlock2d on x (B, C, H, W), image by image, images spread over the threads.

    Why image by image: the Winograd stages are large but simple matrix products whose speed
    depends on the data staying in cache; one 256-channel 64x64 image keeps each stage's
    operands (about 10 MB) in the last-level cache, a batch of 8 does not (measured: the tile
    gather and transforms ran 3-7x slower per image at batch 8).

    Why threads per image instead of OpenMP inside each product: on a 2-core machine shared
    with other work, the many short parallel regions of this pipeline stall at their barriers
    whenever one core is taken, while one single-threaded image per worker runs on regardless
    (``map_in_workers``; torch ops release the GIL).
    """
    params = [block.winograd_params() for block in blocks]
    images = list(x.split(1))  # each (1, C, H, W)
    workers = min(torch.get_num_threads(), len(images))
    if workers <= 1:
        outputs = [_resblocks_one_chunk(params, image) for image in images]
    else:
        outputs = map_in_workers(lambda image: _resblocks_one_chunk(params, image), images, workers)
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)  # (B, C, H, W)


def map_in_workers(fn: Callable[[_A], _T], items: list[_A], workers: int) -> list[_T]:
    """``[fn(item) for item in items]`` on ``workers`` threads, each with single-threaded torch ops.

    Each worker sets its own intra-op thread count to 1 (OpenMP's and MKL's counts are
    per thread) and enters inference mode (thread-local too). The caller's own count is never
    changed; afterwards it is written back as the process default, which a worker's call also
    set and which threads started later take on. Overlapping calls from several threads each
    restore their own count, so none can leave the default stuck at 1.
    """
    saved = torch.get_num_threads()

    def work(item: _A) -> _T:
        torch.set_num_threads(1)
        with torch.inference_mode():
            return fn(item)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(work, items))
    finally:
        torch.set_num_threads(saved)


class UpBlock2d(nn.Module):
    """Nearest x2 upsample, conv, BN, ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self) or self.conv.kernel_size != (3, 3) or self.conv.padding != (1, 1):
            return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))
        if winograd_eligible(x) and min(x.shape[2:]) >= WINOGRAD_MIN_UPSAMPLE_SIDE:
            union, bias = derived(self, "winograd", self._winograd_weights)
            return _upsample_conv_winograd(x, union, bias)
        kernels, bias = derived(self, "phases", self._phase_weights)
        return F.relu(_upsample_conv(x, kernels, bias))

    def _phase_weights(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        weight, bias = _folded(self.conv, self.norm)
        return _phase_kernels(weight), bias

    def _winograd_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Union phase kernel in the Winograd domain (n^2, 4*O, C) and its bias (4*O,)."""
        kernels, bias = self._phase_weights()
        union = winograd.union_phase_kernel(kernels)
        return winograd.transform_weight(union, WINOGRAD_TILE), bias.repeat(4)


class DownBlock2d(nn.Module):
    """Conv, BN, ReLU, 2x2 average pool."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self):
            return self.pool(F.relu(self.norm(self.conv(x))))
        weight, bias = derived(self, "folded", lambda: _folded(self.conv, self.norm))
        return self.pool(F.relu(F.conv2d(x, weight, bias, padding=self.conv.padding)))


class SameBlock2d(nn.Module):
    """Conv, BN, ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self):
            return F.relu(self.norm(self.conv(x)))
        weight, bias = derived(self, "folded", lambda: _folded(self.conv, self.norm))
        return F.relu(F.conv2d(x, weight, bias, padding=self.conv.padding))


class Encoder(nn.Module):
    """Hourglass encoder; returns the input and every DownBlock's output, shallow to deep."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            in_channels = in_features if i == 0 else min(max_features, block_expansion * (2**i))
            out_channels = min(max_features, block_expansion * (2 ** (i + 1)))
            blocks.append(DownBlock2d(in_channels, out_channels))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: UpBlocks from the deepest level, each output concatenated with its skip."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            in_channels = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * (2 ** (i + 1)))
            out_channels = min(max_features, block_expansion * (2**i))
            blocks.append(UpBlock2d(in_channels, out_channels))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style encoder/decoder; ``out_filters`` = block_expansion + in_features channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (depthwise, zero padding) then keep every (1/scale)-th pixel from index 0.

    The kernel is a buffer named ``weight`` because the checkpoints store it
    (``kp_detector.down.weight``); sigma = (1/scale - 1)/2, size 2*round(4 sigma)+1.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        profile = torch.exp(-(coords**2) / (2 * sigma**2))
        kernel = profile.view(-1, 1) * profile.view(1, -1)
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        if not _rewrites["enabled"]:  # the reference blurs every pixel, then subsamples
            return F.conv2d(out, self.weight.to(x.dtype), groups=self.groups)[:, :, :: self.step, :: self.step]
        # A strided convolution gives exactly the pixels 0, step, 2*step ... of the full blur.
        return F.conv2d(out, self.weight.to(x.dtype), stride=self.step, groups=self.groups)
