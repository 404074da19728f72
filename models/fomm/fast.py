"""The exact rewrites that make eval-mode FOMM inference cheaper, in one place.

None changes the function computed (up to float rounding): a BatchNorm that follows a
convolution is folded into that convolution's weights; "nearest x2 upsample, then 3x3 conv" is
computed as four 2x2 convolutions at the low resolution (one per output phase), 16 instead of
36 multiply-adds per output pixel and channel pair; on the CPU (float32, no grad, no autocast)
the residual blocks' 3x3 convolutions, and the UpBlocks on maps of 64 px and more, run as
Winograd F(4x4, 3x3) convolutions (``winograd.py``), image by image. Derived weights are cached
per weight version (``derived``).

Which layers take them is chosen per network, not by a module switch: every layer of
``models.fomm.blocks`` asks ``enabled(self)`` (eval mode, and not turned off on that layer with
``set_fast_paths`` / ``reference_layers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from models.fomm import winograd

if TYPE_CHECKING:  # pragma: no cover
    from models.fomm.blocks import ResBlock2d, UpBlock2d

_T = TypeVar("_T")
_A = TypeVar("_A")


def enabled(module: nn.Module) -> bool:
    """Whether ``module`` takes its fast path: in eval mode, unless turned off on it."""
    return not module.training and module.__dict__.get("fast_paths", True)


def set_fast_paths(*models: nn.Module, on: bool) -> None:
    """Turn the fast paths of every layer in ``models`` on or off (off: the reference's plain layers)."""
    for model in models:
        for module in model.modules():
            module.__dict__["fast_paths"] = on


@contextmanager
def reference_layers(*models: nn.Module) -> Iterator[None]:
    """Run ``models`` on the plain layers (no folding, no phase split, no Winograd) inside this block.

    For benchmarks, tests and debugging: it reproduces the reference's cost, not a different result.
    """
    modules = [module for model in models for module in model.modules()]
    before = [module.__dict__.get("fast_paths") for module in modules]
    set_fast_paths(*models, on=False)
    try:
        yield
    finally:
        for module, value in zip(modules, before):
            if value is None:
                module.__dict__.pop("fast_paths", None)
            else:
                module.__dict__["fast_paths"] = value


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


WINOGRAD_TILE = 4
"""Output tile size m of the Winograd convolutions: F(4x4, 3x3), 4x fewer multiplications."""


WINOGRAD_MIN_UPSAMPLE_SIDE = 64
"""Smaller maps stay on the direct phase convs. Measured per image, one thread: the union conv
won 1.35x at 64x64 (256->128) and 1.3x at 128x128 (128->64), the generator's two UpBlocks, but
lost at 32x32 and below (hourglass sizes), where the tile transforms outweigh the products."""


def winograd_eligible(x: torch.Tensor) -> bool:
    """Whether the CPU fast paths apply to ``x``: float32 on the CPU, no autocast, no grad.

    Why each: cuDNN has its own fast algorithms; reduced precision would lose accuracy in the
    Winograd transforms; the fast paths use cached weights that carry no gradient.
    """
    return (
        x.device.type == "cpu"
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




def conv_norm(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block.norm(block.conv(x))`` in eval mode, as one convolution with the BatchNorm folded in."""
    conv, norm = block.conv, block.norm
    weight, bias = derived(block, "folded", lambda: _folded(conv, norm))  # type: ignore[arg-type]
    return F.conv2d(x, weight, bias, padding=conv.padding)  # type: ignore[arg-type]


def resblock(block: ResBlock2d, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` on the fast path: Winograd where it applies, else norm2 folded into conv1."""
    if winograd_applies(block, x):
        return run_resblocks_winograd([block], x)
    weight, bias = derived(block, "folded", lambda: _folded(block.conv1, block.norm2))
    out = F.relu(F.conv2d(F.relu(block.norm1(x)), weight, bias, padding=block.conv1.padding))
    return torch.add(x, F.conv2d(out, block.conv2.weight, block.conv2.bias, padding=block.conv2.padding))


def upblock(block: UpBlock2d, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` (3x3 conv, padding 1) on the fast path: one Winograd union conv at 64 px and
    up on the CPU, else the four phase convolutions at the low resolution."""
    if winograd_eligible(x) and min(x.shape[2:]) >= WINOGRAD_MIN_UPSAMPLE_SIDE:
        union, bias = derived(block, "winograd", lambda: _upblock_winograd_weights(block))
        return _upsample_conv_winograd(x, union, bias)
    kernels, bias = derived(block, "phases", lambda: _upblock_phase_weights(block))
    return F.relu(_upsample_conv(x, kernels, bias))


def winograd_applies(block: ResBlock2d, x: torch.Tensor) -> bool:
    """Whether ``block`` runs on the Winograd path for input ``x``: fast paths on in eval mode,
    3x3 convs with padding 1, and ``winograd_eligible(x)`` (float32 on the CPU, no autocast, no grad).
    """
    return (
        enabled(block)
        and winograd_eligible(x)  # the cached kernels carry no gradient
        and block.conv1.kernel_size == block.conv2.kernel_size == (3, 3)
        and block.conv1.padding == block.conv2.padding == (1, 1)
    )


def _resblock_winograd_params(block: ResBlock2d) -> _WinogradResBlock:
    """Norm1 as an affine map and both convs' Winograd kernels (norm2 folded into conv1), cached.

    Computed once per weight version (``derived``): the kernel transforms cost about as much
    as a frame's worth of this block.
    """

    def compute() -> _WinogradResBlock:
        scale = block.norm1.weight * torch.rsqrt(block.norm1.running_var + block.norm1.eps)  # (C,)
        shift = block.norm1.bias - block.norm1.running_mean * scale
        weight1, bias1 = _folded(block.conv1, block.norm2)
        return _WinogradResBlock(
            scale=scale.view(-1, 1, 1).clone(),
            shift=shift.view(-1, 1, 1).clone(),
            weight1=winograd.transform_weight(weight1, WINOGRAD_TILE),
            bias1=bias1.clone(),
            weight2=winograd.transform_weight(block.conv2.weight, WINOGRAD_TILE),
            bias2=block.conv2.bias.clone(),
        )

    return derived(block, "winograd", compute)


def _upblock_phase_weights(block: UpBlock2d) -> tuple[list[torch.Tensor], torch.Tensor]:
    weight, bias = _folded(block.conv, block.norm)
    return _phase_kernels(weight), bias


def _upblock_winograd_weights(block: UpBlock2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Union phase kernel in the Winograd domain (n^2, 4*O, C) and its bias (4*O,)."""
    kernels, bias = _upblock_phase_weights(block)
    union = winograd.union_phase_kernel(kernels)
    return winograd.transform_weight(union, WINOGRAD_TILE), bias.repeat(4)


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
    params = [_resblock_winograd_params(block) for block in blocks]
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
