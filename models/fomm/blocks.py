"""Building blocks of the First Order Motion Model (Siarohin et al., NeurIPS 2019).

Ported for inference from ``modules/util.py`` of github.com/AliaksandrSiarohin/first-order-model;
attribute names (``conv``, ``norm``, ``conv1``, ``encoder.down_blocks`` ...) are the paper's so the
released checkpoints load with ``strict=True``. BatchNorm is plain ``nn.BatchNorm2d`` (the
reference's SynchronizedBatchNorm2d is ``F.batch_norm`` in eval mode, same state-dict keys).

Each layer's ``forward`` is the reference's computation in training mode or with its fast
paths turned off (``fast.reference_layers``); otherwise it calls the exact rewrite of itself
in ``fast.py`` (BatchNorm folding, phase-split upsampling, Winograd on the CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.fomm import fast


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


class ResBlock2d(nn.Module):
    """Pre-activation residual block: BN, ReLU, conv, BN, ReLU, conv, plus the input."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast.enabled(self):
            return fast.resblock(self, x)
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out))) + x


class UpBlock2d(nn.Module):
    """Nearest x2 upsample, conv, BN, ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast.enabled(self) and self.conv.kernel_size == (3, 3) and self.conv.padding == (1, 1):
            return fast.upblock(self, x)
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


class DownBlock2d(nn.Module):
    """Conv, BN, ReLU, 2x2 average pool."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = fast.conv_norm(self, x) if fast.enabled(self) else self.norm(self.conv(x))
        return self.pool(F.relu(out))


class SameBlock2d(nn.Module):
    """Conv, BN, ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(fast.conv_norm(self, x) if fast.enabled(self) else self.norm(self.conv(x)))


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
        if not fast.enabled(self):  # the reference blurs every pixel, then subsamples
            return F.conv2d(out, self.weight.to(x.dtype), groups=self.groups)[:, :, :: self.step, :: self.step]
        # A strided convolution gives exactly the pixels 0, step, 2*step ... of the full blur.
        return F.conv2d(out, self.weight.to(x.dtype), stride=self.step, groups=self.groups)
