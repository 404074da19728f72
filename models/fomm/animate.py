"""Animate a source image with driving frames: the semantics of FOMM's ``demo.py``, batched and streamed.

Same results as ``make_animation`` + ``normalize_kp`` of
github.com/AliaksandrSiarohin/first-order-model (see the project's FOMM facts, section 2):
keypoints of the source, of an "initial" driving frame (the first by default) and of each
frame; in relative mode a frame's keypoints become
``kp_S + alpha (kp_Dt - kp_D0)`` with jacobians ``J_Dt inv(J_D0) J_S``, where alpha is the
ratio of the square roots of the source's and initial frame's keypoint convex-hull areas when
``adapt_movement_scale`` is on (else 1); in absolute mode the frame's own keypoints are used.

What differs is only how the work is done: the source is encoded once, driving frames run
through both networks in batches under ``torch.inference_mode()``, and ``animate_stream``
consumes an iterable of batches and yields results, so memory stays flat however long the
clip is. ``reduced_precision`` runs the convolutions in bfloat16 (CPU) or float16 (CUDA)
under autocast; keypoint algebra and sampling grids stay float32.

On a multi-core CPU a batch is split into one contiguous slice per intra-op thread, and each
slice runs in its own worker thread with single-threaded torch ops (``_per_thread_slices``).
Frames are independent, so this changes nothing but the schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from scipy.spatial import ConvexHull

from models.fomm.fast import map_in_workers
from models.fomm.generator import OcclusionAwareGenerator
from models.fomm.keypoint_detector import KPDetector

KeypointDict = dict[str, torch.Tensor]


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (N, 2)."""
    return float(ConvexHull(points).volume)


def movement_scale(kp_source: KeypointDict, kp_initial: KeypointDict) -> float:
    """alpha = sqrt(hull area of the source keypoints) / sqrt(hull area of the initial frame's)."""
    source_area = hull_area(kp_source["value"][0].float().cpu().numpy())
    driving_area = hull_area(kp_initial["value"][0].float().cpu().numpy())
    return float(np.sqrt(source_area) / np.sqrt(driving_area))


def normalize_kp(
    kp_source: KeypointDict, kp_driving: KeypointDict, kp_initial: KeypointDict, *, relative: bool, scale: float = 1.0
) -> KeypointDict:
    """The keypoints the generator is driven with (source/initial have batch 1, driving batch B)."""
    if not relative:
        return dict(kp_driving)
    value = (kp_driving["value"] - kp_initial["value"]) * scale + kp_source["value"]  # (B, K, 2)
    out = {"value": value}
    if "jacobian" in kp_driving:
        change = kp_driving["jacobian"] @ torch.inverse(kp_initial["jacobian"])  # (B, K, 2, 2)
        out["jacobian"] = change @ kp_source["jacobian"]
    return out


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _float_kp(kp: KeypointDict) -> KeypointDict:
    return {key: value.float() for key, value in kp.items()}


def _per_thread_slices(
    fn: Callable[[slice], dict[str, torch.Tensor]], size: int, device: torch.device, enabled: bool = True
) -> dict[str, torch.Tensor]:
    """``fn`` over a batch of ``size`` frames, one contiguous slice per thread, results concatenated.

    Why: on a small CPU shared with other work, OpenMP's many short parallel regions (one per
    layer, two threads each) stall at their barriers whenever one core is busy elsewhere; we
    measured a batch-8 generator call at 1.4 s per frame that way against 0.9 s per frame with
    two worker threads, each running single-threaded ops on half the batch (torch ops release
    the GIL). Each worker runs single-threaded ops (``map_in_workers``), so it and the
    per-image Winograd bottleneck inside it stay on one core. Off on CUDA, under autocast
    (thread-local, so it would not reach the workers) and for a single frame. ``fn`` maps a slice to a dict of (b, ...) tensors.
    """
    threads = torch.get_num_threads()
    workers = min(threads, size)
    if not enabled or device.type != "cpu" or workers <= 1:
        return fn(slice(0, size))
    bounds = [size * i // workers for i in range(workers + 1)]
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(workers)]

    parts = map_in_workers(fn, slices, workers)
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def animate_stream(
    kp_detector: KPDetector,
    generator: OcclusionAwareGenerator,
    source: torch.Tensor,
    driving_batches: Iterable[torch.Tensor],
    *,
    relative: bool = True,
    adapt_movement_scale: bool = True,
    initial_frame: torch.Tensor | None = None,
    reduced_precision: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield predictions (b, 3, H, W) float32 on the CPU, one per driving batch (b, 3, H, W) in [0, 1].

    ``source`` is (1, 3, H, W) in [0, 1]. ``initial_frame`` (1, 3, H, W) is the frame motion
    is measured from; by default the first frame of the first batch, as in ``demo.py``.
    Inputs may live on any device; they are moved to the networks' device.
    """
    if source.ndim != 4 or source.shape[0] != 1:
        raise ValueError(f"source must be (1, C, H, W), got {tuple(source.shape)}")
    device = _device_of(generator)
    autocast = torch.autocast(
        device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16, enabled=reduced_precision
    )
    with torch.inference_mode():
        source = source.to(device, torch.float32)
        with autocast:
            kp_source = _float_kp(kp_detector(source))
            encoded = generator.encode_source(source)
        kp_initial: KeypointDict | None = None
        scale = 1.0
        for batch in driving_batches:
            if batch.ndim != 4 or batch.shape[1:] != source.shape[1:]:
                raise ValueError(f"driving batches must be (b, {', '.join(map(str, source.shape[1:]))})")
            batch = batch.to(device, torch.float32)
            split = not reduced_precision  # autocast state does not cross into worker threads
            with autocast:
                kp_driving = _per_thread_slices(
                    lambda part, frames=batch: _float_kp(kp_detector(frames[part])), batch.shape[0], device, split
                )
                if kp_initial is None:
                    if initial_frame is None:
                        kp_initial = {key: value[:1] for key, value in kp_driving.items()}
                    else:
                        kp_initial = _float_kp(kp_detector(initial_frame.to(device, torch.float32)))
                    if relative and adapt_movement_scale:
                        scale = movement_scale(kp_source, kp_initial)
                kp_new = normalize_kp(kp_source, kp_driving, kp_initial, relative=relative, scale=scale)
                prediction = _per_thread_slices(
                    lambda part, kp=kp_new: {
                        "prediction": generator.decode(encoded, {key: value[part] for key, value in kp.items()}, kp_source)[
                            "prediction"
                        ]
                    },
                    batch.shape[0],
                    device,
                    split,
                )["prediction"]
            yield prediction.float().cpu()


def animate_frames(
    kp_detector: KPDetector,
    generator: OcclusionAwareGenerator,
    source: torch.Tensor,
    driving: torch.Tensor,
    relative: bool = True,
    adapt_movement_scale: bool = True,
    *,
    batch_size: int = 8,
    reduced_precision: bool = False,
) -> torch.Tensor:
    """Predictions (T, 3, H, W) for a whole clip (T, 3, H, W); the tensor form of ``animate_stream``."""
    if driving.ndim != 4 or driving.shape[0] == 0:
        raise ValueError(f"driving must be (T, C, H, W) with T >= 1, got {tuple(driving.shape)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches = (driving[start : start + batch_size] for start in range(0, driving.shape[0], batch_size))
    return torch.cat(
        list(
            animate_stream(
                kp_detector,
                generator,
                source,
                batches,
                relative=relative,
                adapt_movement_scale=adapt_movement_scale,
                reduced_precision=reduced_precision,
            )
        )
    )
