"""Dense motion network of the First Order Motion Model (Siarohin et al., NeurIPS 2019).

Ported for inference from ``modules/dense_motion.py`` of
github.com/AliaksandrSiarohin/first-order-model. From the source and driving keypoints it
builds K local first-order motions plus the identity (background), warps the downscaled
source with each, and lets an hourglass choose per pixel how to blend them (``mask``) and
where the source is occluded (``occlusion``).

One source serves a whole batch of driving frames: the source tensors may have batch 1 and
are broadcast (``expand``, no copy) against the driving batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.fomm.blocks import AntiAliasInterpolation2d, Hourglass, kp2gaussian, make_coordinate_grid


class DenseMotionNetwork(nn.Module):
    """Keypoints + source image -> deformation (B, h, w, 2) in grid_sample coordinates, occlusion (B, 1, h, w)."""

    def __init__(
        self,
        *,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        kp_variance: float = 0.01,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (num_channels + 1), num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion: nn.Conv2d | None = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        # grid_sample semantics: True as in torch < 1.3 (training time), False as the reference gives today.
        self.align_corners = align_corners
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downsample(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source at the motion network's resolution; computed once per source."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def sparse_motions(self, small_source: torch.Tensor, kp_driving: dict, kp_source: dict) -> torch.Tensor:
        """Identity plus T_k(z) = J_src,k J_drv,k^-1 (z - kp_drv,k) + kp_src,k. -> (B, K+1, h, w, 2)."""
        _, _, height, width = small_source.shape
        grid = make_coordinate_grid(height, width, like=kp_driving["value"])  # (h, w, 2)
        batch = kp_driving["value"].shape[0]
        shifted = grid.view(1, 1, height, width, 2) - kp_driving["value"].view(batch, self.num_kp, 1, 1, 2)
        if "jacobian" in kp_driving:
            affine = kp_source["jacobian"] @ torch.inverse(kp_driving["jacobian"])  # (B, K, 2, 2)
            shifted = torch.einsum("bkij,bkhwj->bkhwi", affine, shifted)
        motions = shifted + kp_source["value"].view(-1, self.num_kp, 1, 1, 2)
        identity = grid.view(1, 1, height, width, 2).expand(batch, 1, height, width, 2)
        return torch.cat([identity, motions], dim=1)

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: dict,
        kp_source: dict,
        *,
        small_source: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``small_source`` skips the source's downsampling when the caller already has it."""
        if small_source is None:
            small_source = self.downsample(source_image)
        batch = kp_driving["value"].shape[0]
        _, channels, height, width = small_source.shape
        if small_source.shape[0] == 1:
            small_source = small_source.expand(batch, -1, -1, -1)
        dtype = small_source.dtype

        # Heatmap differences with a zero background channel first. (B, K+1, 1, h, w)
        heatmap = kp2gaussian(kp_driving["value"], height, width, self.kp_variance) - kp2gaussian(
            kp_source["value"], height, width, self.kp_variance
        )
        heatmap = F.pad(heatmap, (0, 0, 0, 0, 1, 0)).unsqueeze(2).to(dtype)

        motions = self.sparse_motions(small_source, kp_driving, kp_source)  # (B, K+1, h, w, 2)
        repeated = small_source.unsqueeze(1).expand(batch, self.num_kp + 1, channels, height, width)
        deformed = F.grid_sample(
            repeated.reshape(-1, channels, height, width),
            motions.reshape(-1, height, width, 2).to(dtype),
            align_corners=self.align_corners,
        ).view(batch, self.num_kp + 1, channels, height, width)

        features = torch.cat([heatmap, deformed], dim=2).view(batch, -1, height, width)  # (B, (K+1)(C+1), h, w)
        prediction = self.hourglass(features)
        mask = F.softmax(self.mask(prediction), dim=1)  # (B, K+1, h, w)
        deformation = torch.einsum("bkhw,bkhwi->bhwi", mask, motions.to(dtype))  # (B, h, w, 2)
        out = {"mask": mask, "deformation": deformation, "sparse_deformed": deformed}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))  # (B, 1, h, w)
        return out
