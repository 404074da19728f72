"""Our batched FOMM inference gives the independent plain reference's output (tests/fomm_support.py).

Tiny config, 64x64 frames, a seeded random checkpoint with random BatchNorm statistics and a
random jacobian head; astronaut as the source, a moving grace_hopper as the driving clip.
"""

from __future__ import annotations

import pytest
import torch

from fomm_support import TINY, face_clip, random_checkpoint, reference_animation
from models.fomm import animate_frames, animate_stream, build_networks
from models.fomm.checkpoint import load_state_dict_strict

MODES = [(True, True), (True, False), (False, False), (False, True)]  # (relative, adapt_movement_scale)


@pytest.fixture(scope="module", autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: 2 spinning OpenMP threads crawl
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint():
    return random_checkpoint(TINY, seed=3)


@pytest.fixture(scope="module")
def networks(checkpoint):
    kp_detector, generator = build_networks(TINY)
    load_state_dict_strict(kp_detector, checkpoint["kp_detector"], what="kp_detector")
    load_state_dict_strict(generator, checkpoint["generator"], what="generator")
    return kp_detector, generator


@pytest.fixture(scope="module")
def clip(astronaut, grace_hopper):
    return face_clip(astronaut, grace_hopper, frames=5)


@pytest.fixture(scope="module")
def reference_outputs(checkpoint, clip):
    """(align_corners, relative, adapt) -> reference predictions, computed once."""
    source, driving = clip
    return {
        (align, relative, adapt): reference_animation(
            source, driving, checkpoint, TINY, relative=relative, adapt_movement_scale=adapt, align_corners=align
        )
        for align in (True, False)
        for relative, adapt in MODES
    }


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(("relative", "adapt"), MODES)
def test_animate_frames_matches_the_independent_reference(networks, clip, reference_outputs, align_corners, relative, adapt):
    kp_detector, generator = networks
    generator.set_align_corners(align_corners)
    source, driving = clip
    ours = animate_frames(kp_detector, generator, source, driving, relative, adapt, batch_size=2)  # batches 2, 2, 1
    expected = reference_outputs[(align_corners, relative, adapt)]
    assert ours.shape == expected.shape == driving.shape
    error = (ours - expected).abs()
    assert error.max().item() < 1e-3
    assert error.mean().item() < 1e-4


def test_the_modes_compared_above_really_differ(reference_outputs):
    """Guards the equivalence test against a checkpoint whose outputs ignore the motion."""
    def gap(a, b):
        return (reference_outputs[a] - reference_outputs[b]).abs().mean().item()

    assert gap((True, True, True), (True, True, False)) > 1e-3  # adapt_movement_scale matters
    assert gap((True, True, False), (True, False, False)) > 1e-3  # relative vs absolute
    assert gap((True, True, True), (False, True, True)) > 1e-3  # align_corners matters
    frames = reference_outputs[(True, False, False)]
    assert (frames[1:] - frames[:1]).abs().mean().item() > 1e-3  # frames differ over the clip


def test_stream_with_initial_frame_measures_motion_from_that_frame(networks, clip):
    """Best-frame semantics: every frame relative to frame i equals animating the clip from frame i."""
    kp_detector, generator = networks
    generator.set_align_corners(True)
    source, driving = clip
    batches = (driving[i : i + 3] for i in range(0, len(driving), 3))
    streamed = torch.cat(list(animate_stream(kp_detector, generator, source, batches, initial_frame=driving[2:3])))
    from_frame_two = animate_frames(kp_detector, generator, source, driving[2:], batch_size=1)
    assert streamed.shape == driving.shape
    assert (streamed[2:] - from_frame_two).abs().max().item() < 1e-5
    first_frame_initial = animate_frames(kp_detector, generator, source, driving)
    assert (streamed - first_frame_initial).abs().mean().item() > 1e-3


def test_reduced_precision_stays_close_to_float32(networks, clip):
    kp_detector, generator = networks
    generator.set_align_corners(True)
    source, driving = clip
    exact = animate_frames(kp_detector, generator, source, driving[:2])
    reduced = animate_frames(kp_detector, generator, source, driving[:2], reduced_precision=True)
    assert reduced.dtype == torch.float32 and reduced.shape == exact.shape
    error = (reduced - exact).abs()
    assert 0 < error.mean().item() < 0.02
    assert error.max().item() < 0.25


def test_animate_frames_rejects_bad_shapes(networks, clip):
    kp_detector, generator = networks
    source, driving = clip
    with pytest.raises(ValueError, match="source"):
        animate_frames(kp_detector, generator, driving, driving)
    with pytest.raises(ValueError, match="driving"):
        animate_frames(kp_detector, generator, source, driving[:, :, :32])
    with pytest.raises(ValueError, match="driving"):
        animate_frames(kp_detector, generator, source, driving[:0])


def test_stream_pulls_one_driving_batch_per_output(networks, clip):
    """Streaming: a batch is read only when its output is asked for, so long clips never pile up."""
    kp_detector, generator = networks
    source, driving = clip
    pulled = []

    def batches():
        for start in range(0, len(driving), 2):
            pulled.append(start)
            yield driving[start : start + 2]

    stream = animate_stream(kp_detector, generator, source, batches())
    first = next(stream)
    assert pulled == [0] and first.shape == (2, *driving.shape[1:])
    rest = list(stream)
    assert pulled == [0, 2, 4] and [b.shape[0] for b in rest] == [2, 1]
