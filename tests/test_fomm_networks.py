"""The networks themselves: the official vox-256 key layout, output shapes, and the exact rewrites in blocks.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fomm_support import TINY, one_torch_thread  # noqa: F401 (autouse fixture)
from models.fomm import VOX_256, FommConfig, build_networks, load_checkpoint
from models.fomm.blocks import AntiAliasInterpolation2d, ResBlock2d, UpBlock2d

KEYS_FILE = Path(__file__).resolve().parent / "data" / "fomm" / "keys-vox-256.txt"




def _listed_keys() -> dict[str, tuple[str, str]]:
    rows = [line.split("\t") for line in KEYS_FILE.read_text().splitlines() if line and not line.startswith("#")]
    return {key: (shape, dtype) for key, shape, dtype in rows}


@pytest.mark.slow
def test_vox256_state_dicts_match_the_reference_listing_and_load_strictly(tmp_path):
    listed = _listed_keys()
    kp_detector, generator = build_networks(VOX_256)
    ours = {f"kp_detector.{k}": v for k, v in kp_detector.state_dict().items()}
    ours |= {f"generator.{k}": v for k, v in generator.state_dict().items()}
    assert sorted(ours) == sorted(listed)
    for key, tensor in ours.items():
        shape, dtype = listed[key]
        assert ("x".join(map(str, tensor.shape)) or "scalar") == shape, key
        assert str(tensor.dtype).removeprefix("torch.") == dtype, key
    assert sum(p.numel() for p in generator.parameters()) == 45_575_391
    assert sum(p.numel() for p in kp_detector.parameters()) == 14_215_368

    # A full-size checkpoint in the official layout loads with strict key checking (no inference here).
    torch.manual_seed(1)
    with torch.no_grad():
        generator.final.bias.normal_()
    path = tmp_path / "vox-random.pth.tar"
    torch.save({"generator": generator.state_dict(), "kp_detector": kp_detector.state_dict(), "epoch": 0}, path)
    _, loaded = load_checkpoint(path, device="cpu")
    assert torch.equal(loaded.final.bias, generator.final.bias)


def test_keypoint_detector_outputs(astronaut):
    kp_detector, _ = build_networks(TINY)
    image = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        out = kp_detector(image)
    assert out["value"].shape == (3, 10, 2) and out["jacobian"].shape == (3, 10, 2, 2)
    assert out["value"].abs().max() <= 1
    # Untrained detector: identity jacobians, as in the reference's initialisation.
    assert torch.allclose(out["jacobian"], torch.eye(2).expand(3, 10, 2, 2), atol=1e-6)


def test_config_round_trips_through_its_dict():
    assert FommConfig.from_dict(VOX_256.to_dict()) == VOX_256
    assert FommConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(TypeError):
        FommConfig.from_dict({**TINY.to_dict(), "common_params": {"num_kp": 10, "colour": True}})


def test_antialias_kernel_and_subsampling_phase():
    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    assert torch.allclose(down.weight.sum(dim=(2, 3)), torch.ones(3, 1))
    image = torch.rand(1, 3, 64, 64)
    full = F.conv2d(F.pad(image, (6, 6, 6, 6)), down.weight, groups=3)  # every pixel, then keep 0, 4, 8, ...
    assert torch.allclose(down(image), full[:, :, ::4, ::4], atol=1e-6)


def _randomise_bn(module: torch.nn.Module) -> None:
    for norm in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.normal_(0, 0.2)
        norm.running_mean.normal_(0, 0.2)
        norm.running_var.uniform_(0.5, 2)


def test_phase_split_upsampling_conv_equals_nearest_upsample_then_conv():
    torch.manual_seed(0)
    block = UpBlock2d(6, 5)
    _randomise_bn(block)
    x = torch.randn(2, 6, 7, 9)  # odd sizes exercise the borders
    block.eval()
    with torch.no_grad():
        fast = block(x)
        block.train(False)
        plain = F.relu(block.norm(block.conv(F.interpolate(x, scale_factor=2))))
    assert fast.shape == (2, 5, 14, 18)
    assert torch.allclose(fast, plain, atol=1e-5)


def test_folded_batchnorm_equals_the_plain_residual_block():
    torch.manual_seed(0)
    block = ResBlock2d(4)
    _randomise_bn(block)
    block.eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        plain = block.conv2(F.relu(block.norm2(block.conv1(F.relu(block.norm1(x)))))) + x
        assert torch.allclose(block(x), plain, atol=1e-5)
