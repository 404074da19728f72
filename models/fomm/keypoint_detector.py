"""Keypoint detector of the First Order Motion Model (Siarohin et al., NeurIPS 2019).

Ported for inference from ``modules/keypoint_detector.py`` of
github.com/AliaksandrSiarohin/first-order-model. An hourglass predicts one heatmap per
keypoint; the keypoint is the heatmap's expected (x, y) and its jacobian the heatmap-weighted
sum of four predicted maps. The heads use padding 0 (64x64 features -> 58x58 heatmaps), so
keypoint coordinates are normalised over the 58x58 grid, a convention baked into the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.fomm.blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid


class KPDetector(nn.Module):
    """Image (B, C, H, W) in [0, 1] -> {"value": (B, K, 2) (x, y) in [-1, 1], "jacobian": (B, K, 2, 2)}."""

    def __init__(
        self,
        *,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
        self.jacobian: nn.Conv2d | None = None
        if estimate_jacobian:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7, padding=pad)
            # The reference starts from identity jacobians (zero weights, bias [1, 0, 0, 1]).
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.scale_factor != 1:
            x = self.down(x)
        features = self.predictor(x)  # (B, F, h, w)
        logits = self.kp(features)  # (B, K, h', w')
        batch, num_kp, height, width = logits.shape
        heatmap = F.softmax(logits.view(batch, num_kp, -1) / self.temperature, dim=2)  # (B, K, h'w')
        grid = make_coordinate_grid(height, width, like=heatmap).view(-1, 2)  # (h'w', 2)
        out = {"value": heatmap @ grid}  # (B, K, 2)
        if self.jacobian is not None:
            maps = self.jacobian(features).view(batch, self.num_jacobian_maps, 4, height * width)
            jacobian = (heatmap.unsqueeze(2) * maps).sum(-1)  # (B, K, 4)
            out["jacobian"] = jacobian.view(batch, num_kp, 2, 2)
        return out
