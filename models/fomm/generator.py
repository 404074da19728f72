"""Occlusion-aware generator of the First Order Motion Model (Siarohin et al., NeurIPS 2019).

Ported for inference from ``modules/generator.py`` of
github.com/AliaksandrSiarohin/first-order-model. The source is encoded to a feature map,
warped by the dense motion field, masked by the occlusion map, refined by residual blocks
and decoded back to an image.

The source encoding does not depend on the driving frame, so ``encode_source`` computes it
once (``SourceEncoding``) and ``decode`` reuses it for every batch of driving keypoints;
``forward`` keeps the reference's one-call signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.fomm import fast
from models.fomm.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from models.fomm.config import DenseMotionConfig
from models.fomm.dense_motion import DenseMotionNetwork


@dataclass(frozen=True)
class SourceEncoding:
    """What the generator needs from the source image, independent of the driving frame."""

    image: torch.Tensor  # (1, C, H, W)
    small_image: torch.Tensor  # (1, C, h, w) anti-aliased input of the dense motion network
    features: torch.Tensor  # (1, F, H/2^n, W/2^n) encoder output


class OcclusionAwareGenerator(nn.Module):
    """(source image, driving keypoints, source keypoints) -> {"prediction": (B, C, H, W) in [0, 1], ...}."""

    def __init__(
        self,
        *,
        num_channels: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: DenseMotionConfig | None = None,
        estimate_jacobian: bool = False,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        del estimate_jacobian  # accepted like the reference's common_params; the keypoints decide
        self.dense_motion_network: DenseMotionNetwork | None = None
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp,
                num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map,
                align_corners=align_corners,
                block_expansion=dense_motion_params.block_expansion,
                num_blocks=dense_motion_params.num_blocks,
                max_features=dense_motion_params.max_features,
                scale_factor=dense_motion_params.scale_factor,
                kp_variance=dense_motion_params.kp_variance,
            )
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(max_features, block_expansion * 2**i), min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                min(max_features, block_expansion * 2 ** (num_down_blocks - i)),
                min(max_features, block_expansion * 2 ** (num_down_blocks - i - 1)),
            )
            for i in range(num_down_blocks)
        )
        bottleneck_features = min(max_features, block_expansion * 2**num_down_blocks)
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(bottleneck_features))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.align_corners = align_corners

    def set_align_corners(self, align_corners: bool) -> None:
        """Choose grid_sample semantics for this generator and its dense motion network."""
        self.align_corners = align_corners
        if self.dense_motion_network is not None:
            self.dense_motion_network.align_corners = align_corners

    def encode_source(self, source_image: torch.Tensor) -> SourceEncoding:
        """Encoder features and downscaled copy of one source image (1, C, H, W)."""
        features = self.first(source_image)
        for block in self.down_blocks:
            features = block(features)
        small = self.dense_motion_network.downsample(source_image) if self.dense_motion_network else source_image
        return SourceEncoding(image=source_image, small_image=small, features=features)

    def _warp(self, features: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """grid_sample ``features`` (1 or B, F, h, w) with ``deformation`` (B, h', w', 2), resized to (h, w)."""
        batch = deformation.shape[0]
        height, width = features.shape[2:]
        if deformation.shape[1:3] != (height, width):
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(height, width), mode="bilinear")
            deformation = deformation.permute(0, 2, 3, 1)
        if features.shape[0] == 1 and batch > 1:
            features = features.expand(batch, -1, -1, -1)
        return F.grid_sample(features, deformation, align_corners=self.align_corners)

    def decode(
        self, source: SourceEncoding, kp_driving: dict, kp_source: dict, *, with_deformed: bool = False
    ) -> dict[str, torch.Tensor]:
        """Animate the encoded source to a batch of driving keypoints (B, K, 2) / (B, K, 2, 2)."""
        out = source.features
        result: dict[str, torch.Tensor] = {}
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(
                source.image, kp_driving=kp_driving, kp_source=kp_source, small_source=source.small_image
            )
            result.update(mask=motion["mask"], sparse_deformed=motion["sparse_deformed"])
            out = self._warp(out, motion["deformation"])
            occlusion = motion.get("occlusion_map")
            if occlusion is not None:
                result["occlusion_map"] = occlusion
                if occlusion.shape[2:] != out.shape[2:]:
                    occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
                out = out * occlusion
            if with_deformed:  # visualisation only: the source image warped by the same field
                result["deformed"] = self._warp(source.image, motion["deformation"])
        blocks = list(self.bottleneck)
        if blocks and all(isinstance(b, ResBlock2d) and fast.winograd_applies(b, out) for b in blocks):
            out = fast.run_resblocks_winograd(blocks, out)  # all six blocks per image, in cache
        else:
            out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        result["prediction"] = torch.sigmoid(self._final(out))  # (B, C, H, W)
        return result

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        """The 7x7 64->3 output conv; on the CPU as the equivalent transposed convolution.

        Why: with 3 output channels oneDNN's direct convolution is far from peak; the transposed
        form (kernel flipped, in/out swapped; the same sums) is one 64->147 GEMM plus an
        overlap-add, measured 99 -> 59 ms per 256x256 image on one thread.
        """
        conv = self.final
        k, p = conv.kernel_size[0], conv.padding[0]
        if not (fast.enabled(self) and fast.winograd_eligible(x) and conv.kernel_size == (k, k) and conv.padding == (p, p) == (k // 2, k // 2)
                and k % 2 == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)):
            return conv(x)
        flipped = fast.derived(conv, "transposed", lambda: conv.weight.flip(2, 3).transpose(0, 1).contiguous())
        return F.conv_transpose2d(x, flipped, conv.bias, padding=p)  # flipped (C_in, C_out, k, k)

    def forward(self, source_image: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict[str, torch.Tensor]:
        """Reference signature; a batch-1 source is shared by every driving keypoint set."""
        if source_image.shape[0] != 1:
            raise ValueError("forward() takes one source image (batch 1); call it per source")
        return self.decode(self.encode_source(source_image), kp_driving, kp_source, with_deformed=True)
