"""The CPU fast paths of models/fomm: Winograd F(4x4, 3x3) convolutions, the Winograd residual
bottleneck, and the per-thread batch split in animate_stream, each against the plain computation."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from fomm_support import TINY, face_clip, one_torch_thread, random_checkpoint  # noqa: F401 (autouse fixture)
from models.fomm import animate_frames, build_networks, winograd
from models.fomm.blocks import ResBlock2d, UpBlock2d
from models.fomm.checkpoint import load_state_dict_strict
from models.fomm.fast import map_in_workers, reference_layers, run_resblocks_winograd, winograd_applies


def _random_block(channels: int, seed: int) -> ResBlock2d:
    """An eval-mode ResBlock2d with He-normal convs and random BatchNorm statistics."""
    generator = torch.Generator().manual_seed(seed)
    block = ResBlock2d(channels).eval()
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2 / (9 * channels)) ** 0.5)
            conv.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
        for norm in (block.norm1, block.norm2):
            norm.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
            norm.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
            norm.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
            norm.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
    return block


@pytest.mark.parametrize("m", [2, 4, 6])
def test_cook_toom_matrices_compute_a_3_tap_correlation_exactly(m):
    """y_i = sum_k d_(i+k) g_k, checked in exact rationals, so only float rounding is left."""
    a_t, g_mat, b_t = winograd.winograd_matrices(m)
    n = m + 2
    d = [Fraction(3 * i * i - 7 * i + 2, i + 1) for i in range(n)]
    g = [Fraction(5), Fraction(-2, 3), Fraction(7, 4)]
    transformed_d = [sum(b_t[p][i] * d[i] for i in range(n)) for p in range(n)]
    transformed_g = [sum(g_mat[p][k] * g[k] for k in range(3)) for p in range(n)]
    y = [sum(a_t[i][p] * transformed_d[p] * transformed_g[p] for p in range(n)) for i in range(m)]
    assert y == [sum(d[i + k] * g[k] for k in range(3)) for i in range(m)]


@pytest.mark.parametrize(
    ("batch", "channels", "out_channels", "height", "width"),
    [(1, 3, 5, 4, 4), (1, 5, 7, 9, 11), (3, 4, 6, 8, 8), (3, 16, 8, 13, 6), (1, 2, 3, 1, 1), (3, 32, 32, 16, 16)],
)
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_conv_equals_conv2d(batch, channels, out_channels, height, width, bias):
    """Odd sizes (partial tiles at the bottom/right edge), 1x1 maps, batch 1 and 3, with and without bias.

    The tolerance is float32 rounding: F(4, 3)'s transforms (coefficients up to 5, a 6-point
    sum) round about ten times more than a direct convolution, ~1e-5 on outputs of size ~5.
    """
    generator = torch.Generator().manual_seed(batch * 1000 + height * 10 + width)
    x = torch.randn(batch, channels, height, width, generator=generator)
    weight = torch.randn(out_channels, channels, 3, 3, generator=generator) * (2 / (9 * channels)) ** 0.5
    b = torch.randn(out_channels, generator=generator) if bias else None
    expected = F.conv2d(x, weight, b, padding=1)
    ours = winograd.conv3x3(x, winograd.transform_weight(weight), b)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_winograd_scatter_epilogues_and_padded_buffers():
    """ReLU and residual epilogues, written into a padded buffer's interior, for divisible and odd sizes."""
    generator = torch.Generator().manual_seed(7)
    for height, width in [(8, 12), (7, 10)]:
        x = torch.randn(2, 6, height, width, generator=generator)
        weight = torch.randn(6, 6, 3, 3, generator=generator) * 0.3
        bias = torch.randn(6, generator=generator)
        padded, interior = winograd.padded_buffer(x, 6, height, width)
        interior.copy_(x)
        tiles = winograd.conv3x3_tiles(padded, winograd.transform_weight(weight), bias, height, width)
        expected = F.conv2d(x, weight, bias, padding=1)
        target, target_interior = winograd.padded_buffer(x, 6, height, width)
        winograd.scatter_tiles(tiles, target_interior, relu=True)
        torch.testing.assert_close(target_interior, F.relu(expected), rtol=1e-4, atol=1e-4)
        border = target.clone()
        border[:, :, 1 : height + 1, 1 : width + 1] = 0
        assert not border.any()  # only the interior was written
        residual = winograd.scatter_tiles(tiles, torch.empty_like(x), residual=x)
        torch.testing.assert_close(residual, expected + x, rtol=1e-4, atol=1e-4)


def test_winograd_rejects_a_buffer_of_the_wrong_shape():
    with pytest.raises(ValueError, match="padded input"):
        winograd.conv3x3_tiles(torch.zeros(1, 2, 10, 10), torch.zeros(36, 2, 2), None, 8, 9)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_winograd_residual_chain_equals_the_plain_blocks(threads, batch):
    """Two blocks image by image (and over two worker threads) vs the plain BN/ReLU/conv layers."""
    torch.set_num_threads(threads)
    blocks = [_random_block(16, seed) for seed in (1, 2)]
    x = torch.randn(batch, 16, 12, 10, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        with reference_layers(*blocks):
            expected = blocks[1](blocks[0](x))
        assert all(winograd_applies(block, x) for block in blocks)
        ours = run_resblocks_winograd(blocks, x)
        one_by_one = blocks[1](blocks[0](x))  # ResBlock2d.forward takes the same path
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(one_by_one, ours, rtol=1e-5, atol=1e-5)
    assert torch.get_num_threads() == threads  # restored after the workers


def test_winograd_weights_are_recomputed_when_parameters_change():
    block = _random_block(8, seed=3)
    x = torch.randn(1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = block(x)
    with torch.no_grad():
        block.conv2.weight.mul_(2)  # in place: same storage, new version
        block.load_state_dict(_random_block(8, seed=4).state_dict())
    with torch.inference_mode():
        after = block(x)
        with reference_layers(block):
            expected = block(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-4, atol=1e-4)


def test_winograd_path_is_off_in_training_with_grad_under_autocast_and_on_other_dtypes():
    block = _random_block(4, seed=5)
    x = torch.randn(1, 4, 8, 8)
    assert winograd_applies(block, x)  # grad is disabled by the autouse fixture below
    assert not winograd_applies(block, x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not winograd_applies(block, x)
    other = _random_block(4, seed=6)
    with reference_layers(block):
        assert not winograd_applies(block, x)
        assert winograd_applies(other, x)  # chosen per network: another one keeps its fast path
    assert winograd_applies(block, x)  # restored on leaving
    with torch.enable_grad():
        assert not winograd_applies(block, x)  # cached kernels would cut the gradient
        block(x.requires_grad_()).sum().backward()
    assert block.conv1.weight.grad is not None and block.conv1.weight.grad.abs().sum() > 0
    block.train()
    assert not winograd_applies(block, x)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def test_animate_frames_is_the_same_with_worker_threads(astronaut, grace_hopper):
    """Two threads split each batch over two workers; the frames must not change beyond rounding."""
    checkpoint = random_checkpoint(TINY, seed=11)
    kp_detector, generator = build_networks(TINY)
    load_state_dict_strict(kp_detector, checkpoint["kp_detector"], what="kp_detector")
    load_state_dict_strict(generator, checkpoint["generator"], what="generator")
    source, driving = face_clip(astronaut, grace_hopper, frames=5)
    single = animate_frames(kp_detector, generator, source, driving, batch_size=3)
    torch.set_num_threads(2)
    split = animate_frames(kp_detector, generator, source, driving, batch_size=3)  # batches 3, 2
    assert torch.get_num_threads() == 2
    torch.testing.assert_close(split, single, rtol=1e-5, atol=1e-5)
    assert (split - single).abs().max().item() < 1e-5


@pytest.mark.parametrize("width", [64, 67])
def test_upblock_union_winograd_equals_nearest_upsample_then_conv(width):
    """At 64 px and up an UpBlock runs all four phases as one Winograd conv; odd widths crop partial tiles."""
    generator = torch.Generator().manual_seed(width)
    block = UpBlock2d(5, 3).eval()
    with torch.no_grad():
        block.conv.weight.copy_(torch.randn(block.conv.weight.shape, generator=generator) * 0.3)
        block.norm.running_mean.copy_(torch.randn(3, generator=generator) * 0.1)
        block.norm.running_var.copy_(torch.rand(3, generator=generator) + 0.5)
        block.norm.weight.copy_(torch.rand(3, generator=generator) + 0.5)
    x = torch.randn(2, 5, 64, width, generator=generator)
    with reference_layers(block):
        expected = block(x)
    ours = block(x)
    assert "winograd" in block.__dict__["_derived_cache"]  # the union path ran
    assert ours.shape == (2, 3, 128, 2 * width)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_final_conv_as_transposed_conv_equals_conv2d():
    conv = torch.nn.Conv2d(6, 3, 7, padding=3)
    generator = build_networks(TINY)[1]
    generator.final = conv
    x = torch.randn(2, 6, 20, 17)
    torch.testing.assert_close(generator._final(x), F.conv2d(x, conv.weight, conv.bias, padding=3), rtol=1e-5, atol=1e-5)
    assert "transposed" in conv.__dict__["_derived_cache"]


def test_map_in_workers_runs_single_threaded_and_restores_the_callers_count():
    """Workers see one intra-op thread and inference mode; the caller's count comes back,
    also when two callers overlap (then a worker may briefly read the other caller's restored
    default, which only costs speed, so only results and counts are checked there)."""
    import threading
    import time

    torch.set_num_threads(2)
    seen: list[tuple[int, bool]] = []

    def probe(item: int) -> int:
        time.sleep(0.05)
        seen.append((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return item * 2

    assert map_in_workers(probe, [1, 2, 3], 2) == [2, 4, 6]
    assert set(seen) == {(1, True)}
    assert torch.get_num_threads() == 2

    results: list[list[int]] = []
    other = threading.Thread(target=lambda: results.append(map_in_workers(probe, [1, 2, 3], 2)))
    other.start()
    assert map_in_workers(probe, [4, 5], 2) == [8, 10]
    other.join()
    assert results == [[2, 4, 6]]
    assert all(inference for _, inference in seen)
    assert torch.get_num_threads() == 2
