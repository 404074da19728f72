"""Test support for the FOMM port: a tiny config, seeded random checkpoints, test clips, and an
INDEPENDENT plain re-implementation of FOMM inference used as the reference.

The reference below reads the raw state dict and follows the written FOMM facts literally,
one frame at a time, with loops over keypoints and explicit ``F.conv2d`` / ``F.batch_norm`` /
nearest upsampling; it shares no code with ``models.fomm`` (which folds BatchNorm into convs,
computes upsampling convs per phase, batches frames and encodes the source once). Agreement
of the two is the equivalence test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial import ConvexHull

from models.fomm.config import DenseMotionConfig, FommConfig, GeneratorConfig, KPDetectorConfig
from models.fomm.model import build_networks


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():  # noqa: ANN201 - a pytest fixture
    """Imported by each FOMM test module: torch on one thread there (the machine is shared and
    small), and the caller's thread count restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

TINY = FommConfig(
    num_kp=10,
    kp_detector_params=KPDetectorConfig(block_expansion=8, max_features=64, num_blocks=3),
    generator_params=GeneratorConfig(
        block_expansion=8,
        max_features=32,
        num_down_blocks=2,
        num_bottleneck_blocks=2,
        dense_motion_params=DenseMotionConfig(block_expansion=8, max_features=64, num_blocks=3),
    ),
)
TINY_SIZE = 64


def random_checkpoint(config: FommConfig, *, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Official-layout dict with every weight random: BN statistics too, and a non-identity jacobian head."""
    torch.manual_seed(seed)
    kp_detector, generator = build_networks(config)
    generator_state = torch.Generator().manual_seed(seed + 1)
    for module in (kp_detector, generator):
        for name, tensor in module.state_dict().items():
            if name.endswith("down.weight"):
                continue  # the fixed anti-aliasing kernel
            shape = tensor.shape
            if name.endswith("running_var") or (".norm" in name and name.endswith("weight")):
                tensor.copy_(0.5 + torch.rand(shape, generator=generator_state))
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(0.1 * torch.randn(shape, generator=generator_state))
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif tensor.ndim == 4:  # conv weights: He-normal, so signals neither vanish nor explode
                fan_in = shape[1] * shape[2] * shape[3]
                tensor.copy_(torch.randn(shape, generator=generator_state) * np.sqrt(2.0 / fan_in))
    with torch.no_grad():
        head = kp_detector.jacobian
        head.weight.copy_(0.02 * torch.randn(head.weight.shape, generator=generator_state))
        head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * config.num_kp) + 0.2 * torch.randn(4 * config.num_kp, generator=generator_state))
    return {
        "kp_detector": {k: v.clone() for k, v in kp_detector.state_dict().items()},
        "generator": {k: v.clone() for k, v in generator.state_dict().items()},
    }


def face_clip(
    source_image: np.ndarray, driving_image: np.ndarray, *, size: int = TINY_SIZE, frames: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """(source (1, 3, s, s), driving (T, 3, s, s)) in [0, 1]: one photo, and another one rotated, shifted and zoomed."""
    from skimage.transform import AffineTransform, resize, warp

    def _square(image: np.ndarray) -> np.ndarray:
        return resize(image[: min(image.shape[:2]), : min(image.shape[:2])], (size, size), anti_aliasing=True)

    base = _square(driving_image)  # (s, s, 3) float in [0, 1]
    centre = np.array([size / 2, size / 2])
    clip = []
    for t in range(frames):
        angle = 0.05 + 0.15 * np.sin(t)
        zoom = 0.95 + 0.1 * t / max(frames - 1, 1)
        shift = np.array([2.0 * t - 1, 1.0 - 1.5 * t])
        move = AffineTransform(translation=-centre) + AffineTransform(rotation=angle, scale=zoom) + AffineTransform(translation=centre + shift)
        clip.append(warp(base, move.inverse, mode="edge"))
    source = torch.from_numpy(_square(source_image)).permute(2, 0, 1)[None].float()
    driving = torch.from_numpy(np.stack(clip)).permute(0, 3, 1, 2).float()
    return source, driving


# ----------------------------------------------------------------------------------------
# The independent reference (plain, unbatched; follows the facts, not models.fomm).


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5)


def _conv(x, sd, p, padding):
    return F.conv2d(x, sd[p + ".weight"], sd[p + ".bias"], padding=padding)


def _down_block(x, sd, p):
    return F.avg_pool2d(F.relu(_bn(_conv(x, sd, p + ".conv", 1), sd, p + ".norm")), 2)


def _up_block(x, sd, p):
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    return F.relu(_bn(_conv(x, sd, p + ".conv", 1), sd, p + ".norm"))


def _hourglass(x, sd, p, num_blocks):
    skips = [x]
    for i in range(num_blocks):
        skips.append(_down_block(skips[-1], sd, f"{p}.encoder.down_blocks.{i}"))
    out = skips.pop()
    for i in range(num_blocks):
        out = _up_block(out, sd, f"{p}.decoder.up_blocks.{i}")
        out = torch.cat([out, skips.pop()], dim=1)
    return out


def _anti_alias(x, scale):
    sigma = (1 / scale - 1) / 2
    size = 2 * round(4 * sigma) + 1
    half = size // 2
    kernel = torch.zeros(size, size)
    for i in range(size):
        for j in range(size):
            kernel[i, j] = np.exp(-((i - half) ** 2 + (j - half) ** 2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).expand(x.shape[1], 1, size, size)
    blurred = F.conv2d(F.pad(x, (half, half, half, half)), kernel, groups=x.shape[1])
    step = int(1 / scale)
    return blurred[:, :, ::step, ::step]


def _grid(h, w):
    """(h, w, 2) of (x, y), -1 .. 1 over pixel centres."""
    out = torch.zeros(h, w, 2)
    for i in range(h):
        for j in range(w):
            out[i, j, 0] = 2 * j / (w - 1) - 1
            out[i, j, 1] = 2 * i / (h - 1) - 1
    return out


def reference_keypoints(image, sd, config: FommConfig):
    """image (1, 3, H, W) -> (value (K, 2), jacobian (K, 2, 2))."""
    kpc = config.kp_detector_params
    x = _anti_alias(image, kpc.scale_factor)
    features = _hourglass(x, sd, "predictor", kpc.num_blocks)
    logits = _conv(features, sd, "kp", 0)[0]  # (K, h, w)
    jac_maps = _conv(features, sd, "jacobian", 0)[0]  # (4K, h, w)
    K, h, w = logits.shape
    grid = _grid(h, w)
    values, jacobians = [], []
    for k in range(K):
        heat = torch.softmax((logits[k] / kpc.temperature).flatten(), 0).view(h, w)
        values.append(torch.stack([(heat * grid[..., 0]).sum(), (heat * grid[..., 1]).sum()]))
        entries = [(heat * jac_maps[4 * k + i]).sum() for i in range(4)]
        jacobians.append(torch.stack(entries).view(2, 2))
    return torch.stack(values), torch.stack(jacobians)


def reference_generate(source, kp_src, kp_drv, sd, config: FommConfig, *, align_corners: bool):
    """One frame: source (1, 3, H, W), keypoints (value (K,2), jacobian (K,2,2)) -> (1, 3, H, W)."""
    gen, dm = config.generator_params, config.generator_params.dense_motion_params
    out = F.relu(_bn(_conv(source, sd, "first.conv", 3), sd, "first.norm"))
    for i in range(gen.num_down_blocks):
        out = _down_block(out, sd, f"down_blocks.{i}")

    small = _anti_alias(source, dm.scale_factor)  # (1, 3, h, w)
    _, C, h, w = small.shape
    grid = _grid(h, w)
    (v_src, j_src), (v_drv, j_drv) = kp_src, kp_drv
    background = F.grid_sample(small, grid[None], mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    channels = [torch.zeros(1, h, w), background[0]]  # the identity grid is sampled too
    motions = [grid]
    for k in range(config.num_kp):
        g_drv = torch.exp(-((grid - v_drv[k]) ** 2).sum(-1) / (2 * dm.kp_variance))
        g_src = torch.exp(-((grid - v_src[k]) ** 2).sum(-1) / (2 * dm.kp_variance))
        A = j_src[k] @ torch.linalg.inv(j_drv[k])
        motion = ((grid - v_drv[k]) @ A.T) + v_src[k]  # (h, w, 2)
        motions.append(motion)
        warped = F.grid_sample(small, motion[None], mode="bilinear", padding_mode="zeros", align_corners=align_corners)
        channels += [(g_drv - g_src)[None], warped[0]]
    inp = torch.cat(channels, 0)[None]  # (1, (K+1)(C+1), h, w)
    pred = _hourglass(inp, sd, "dense_motion_network.hourglass", dm.num_blocks)
    mask = torch.softmax(_conv(pred, sd, "dense_motion_network.mask", 3), dim=1)[0]  # (K+1, h, w)
    occlusion = torch.sigmoid(_conv(pred, sd, "dense_motion_network.occlusion", 3))  # (1, 1, h, w)
    deformation = sum(mask[k][..., None] * motions[k] for k in range(config.num_kp + 1))  # (h, w, 2)

    out = F.grid_sample(out, deformation[None], mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    out = out * occlusion
    for i in range(gen.num_bottleneck_blocks):
        p = f"bottleneck.r{i}"
        y = _conv(F.relu(_bn(out, sd, p + ".norm1")), sd, p + ".conv1", 1)
        y = _conv(F.relu(_bn(y, sd, p + ".norm2")), sd, p + ".conv2", 1)
        out = out + y
    for i in range(gen.num_down_blocks):
        out = _up_block(out, sd, f"up_blocks.{i}")
    return torch.sigmoid(_conv(out, sd, "final", 3))


def reference_animation(source, driving, checkpoint, config: FommConfig, *, relative, adapt_movement_scale, align_corners):
    """The demo's make_animation, frame by frame, on the reference above. -> (T, 3, H, W)."""
    kd, gd = checkpoint["kp_detector"], checkpoint["generator"]
    with torch.no_grad():
        kp_s = reference_keypoints(source, kd, config)
        kp_0 = reference_keypoints(driving[:1], kd, config)
        alpha = 1.0
        if adapt_movement_scale:
            alpha = np.sqrt(ConvexHull(kp_s[0].numpy()).volume) / np.sqrt(ConvexHull(kp_0[0].numpy()).volume)
        frames = []
        for t in range(driving.shape[0]):
            v_t, j_t = reference_keypoints(driving[t : t + 1], kd, config)
            if relative:
                v_new = kp_s[0] + alpha * (v_t - kp_0[0])
                j_new = torch.stack([j_t[k] @ torch.linalg.inv(kp_0[1][k]) @ kp_s[1][k] for k in range(config.num_kp)])
            else:
                v_new, j_new = v_t, j_t
            frames.append(reference_generate(source, kp_s, (v_new, j_new), gd, config, align_corners=align_corners))
        return torch.cat(frames)
