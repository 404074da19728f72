"""Hyper-parameters of the First Order Motion Model, one frozen dataclass passed whole.

``VOX_256`` mirrors ``model_params`` of ``config/vox-256.yaml`` in
github.com/AliaksandrSiarohin/first-order-model (taichi-256 and the other 256-px configs are
identical), plus ``kp_variance`` (0.01), a code default that the yaml does not spell out.
``to_dict`` / ``from_dict`` use the yaml's nesting so a saved ``config.json`` reads like it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class KPDetectorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.25
    pad: int = 0
    single_jacobian_map: bool = False


@dataclass(frozen=True, kw_only=True)
class DenseMotionConfig:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion_params: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True, kw_only=True)
class FommConfig:
    """``common_params`` of the yaml flattened in, the two network configs nested."""

    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    kp_detector_params: KPDetectorConfig = field(default_factory=KPDetectorConfig)
    generator_params: GeneratorConfig = field(default_factory=GeneratorConfig)

    def to_dict(self) -> dict[str, Any]:
        """``{"common_params": ..., "kp_detector_params": ..., "generator_params": ...}``."""
        raw = asdict(self)
        common = {key: raw[key] for key in ("num_kp", "num_channels", "estimate_jacobian")}
        return {
            "common_params": common,
            "kp_detector_params": raw["kp_detector_params"],
            "generator_params": raw["generator_params"],
        }

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> FommConfig:
        """Inverse of ``to_dict``; unknown keys raise ``TypeError`` (a config we cannot honour)."""
        generator = dict(params["generator_params"])
        dense = DenseMotionConfig(**generator.pop("dense_motion_params"))
        return cls(
            **params["common_params"],
            kp_detector_params=KPDetectorConfig(**params["kp_detector_params"]),
            generator_params=GeneratorConfig(**generator, dense_motion_params=dense),
        )


VOX_256 = FommConfig()
