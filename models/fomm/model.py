"""The two FOMM networks in one diffusers ``ModelMixin`` so they save as safetensors.

``save_pretrained(dir)`` writes ``config.json`` (the yaml's ``model_params`` layout, see
``FommConfig.to_dict``) and ``diffusion_pytorch_model.safetensors`` whose keys are the
official checkpoint's, prefixed ``kp_detector.`` / ``generator.``. Safetensors holds only
tensors, so loading a converted folder can never run code, unlike a pickled ``.pth.tar``.
"""

from __future__ import annotations

from typing import Any

from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from models.fomm.config import FommConfig
from models.fomm.generator import OcclusionAwareGenerator
from models.fomm.keypoint_detector import KPDetector


def build_networks(config: FommConfig, *, align_corners: bool = True) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Fresh (randomly initialised) networks for ``config``, in eval mode."""
    kp = config.kp_detector_params
    kp_detector = KPDetector(
        block_expansion=kp.block_expansion,
        num_kp=config.num_kp,
        num_channels=config.num_channels,
        max_features=kp.max_features,
        num_blocks=kp.num_blocks,
        temperature=kp.temperature,
        estimate_jacobian=config.estimate_jacobian,
        scale_factor=kp.scale_factor,
        single_jacobian_map=kp.single_jacobian_map,
        pad=kp.pad,
    )
    gen = config.generator_params
    generator = OcclusionAwareGenerator(
        num_channels=config.num_channels,
        num_kp=config.num_kp,
        block_expansion=gen.block_expansion,
        max_features=gen.max_features,
        num_down_blocks=gen.num_down_blocks,
        num_bottleneck_blocks=gen.num_bottleneck_blocks,
        estimate_occlusion_map=gen.estimate_occlusion_map,
        dense_motion_params=gen.dense_motion_params,
        estimate_jacobian=config.estimate_jacobian,
        align_corners=align_corners,
    )
    return kp_detector.eval(), generator.eval()


class FommModel(ModelMixin, ConfigMixin):
    """Holder of ``kp_detector`` and ``generator``; its state dict is the checkpoint's two dicts, prefixed."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        common_params: dict[str, Any] | None = None,
        kp_detector_params: dict[str, Any] | None = None,
        generator_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        defaults = FommConfig().to_dict()
        params = {
            "common_params": common_params or defaults["common_params"],
            "kp_detector_params": kp_detector_params or defaults["kp_detector_params"],
            "generator_params": generator_params or defaults["generator_params"],
        }
        self.fomm_config = FommConfig.from_dict(params)
        self.kp_detector, self.generator = build_networks(self.fomm_config)

    @classmethod
    def from_fomm_config(cls, config: FommConfig) -> FommModel:
        return cls(**config.to_dict())
