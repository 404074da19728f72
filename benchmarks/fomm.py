"""FOMM inference speed and memory: reference-style frame by frame vs our batched stream.

Full vox-256 networks with random weights (speed does not depend on the values), 256x256,
a synthetic moving driving clip. Every measurement runs in its own subprocess so peak RSS is
that mode's alone; modes alternate round by round and medians are reported, so load from
other processes hits them alike.

  per-frame   what demo.py does: the whole clip in memory, batch 1, the source re-encoded and
              the visualisation warp computed for every frame, plain layers
  per-frame+  the same loop on our layers (BatchNorm folded, phase-split upsampling)
  batched-N   animate_stream: source encoded once, N frames per call, frames streamed
  reduced-8   bfloat16/float16 autocast; on a CPU without native bf16 only its error is measured
              (emulated: conv inputs, weights and outputs rounded to bf16, fp32 accumulation)

    python benchmarks/fomm.py --frames 64 --repeats 3 --threads 2

--threads 2 is the issue's setting. On a shared 2-core machine also run --threads 1: two
spinning OpenMP threads per process slow the reference pattern down a lot once other processes
compete for the cores (our batched modes split a batch over worker threads instead), so the
1-thread ratio is the one that shows the algorithmic gain alone. The |diff| columns compare
each mode's float predictions with the first mode's (the reference pattern).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _driving_frames(count: int, size: int = 256):
    """Astronaut photo drifting and zooming: (1, 3, s, s) float tensors, made one at a time."""
    import numpy as np
    import torch
    from skimage import data
    from skimage.transform import resize

    base = resize(data.astronaut()[:400, 50:450], (size + 32, size + 32), anti_aliasing=True).astype(np.float32)
    for t in range(count):
        dx, dy = int(8 + 8 * np.sin(t / 5)), int(8 + 6 * np.cos(t / 7))
        frame = base[dy : dy + size, dx : dx + size]
        yield torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]


def _networks():
    """vox-256 networks with He-normal convs and random BatchNorm statistics, so outputs vary
    with the motion (the default init gives a near-constant image, hiding precision errors)."""
    import torch

    from models.fomm import VOX_256, build_networks

    torch.manual_seed(0)
    kp_detector, generator = build_networks(VOX_256)
    with torch.no_grad():
        for module in (*kp_detector.modules(), *generator.modules()):
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2.0 / fan_in) ** 0.5)
                module.bias.normal_(0, 0.1)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        kp_detector.jacobian.weight.mul_(0.01)
        kp_detector.jacobian.bias.copy_(torch.tensor([1.0, 0, 0, 1] * 10) + 0.1 * torch.randn(40))
    return kp_detector, generator


def _worker(mode: str, frames: int, save: str | None = None, keep: int = 0) -> dict:
    """Time one mode over ``frames`` frames; with ``save``, write its first ``keep`` predictions
    (float32, (keep, 3, H, W), before any rounding) there after the clock stops."""
    import numpy as np
    import torch

    from models.fomm.animate import animate_stream, normalize_kp
    from models.fomm.fast import reference_layers

    kp_detector, generator = _networks()
    source = next(_driving_frames(1))
    start = time.perf_counter()
    with torch.inference_mode():
        if mode.startswith("per-frame"):
            driving = torch.cat(list(_driving_frames(frames)))  # (T, 3, H, W) held like demo.py
            plain = reference_layers(kp_detector, generator) if mode == "per-frame" else torch.autocast("cpu", enabled=False)
            with plain:
                predictions = []
                kp_source = kp_detector(source)
                kp_initial = kp_detector(driving[:1])
                for t in range(frames):
                    kp_driving = kp_detector(driving[t : t + 1])
                    kp_new = normalize_kp(kp_source, kp_driving, kp_initial, relative=True)
                    out = generator(source, kp_driving=kp_new, kp_source=kp_source)
                    predictions.append(np.transpose(out["prediction"].numpy(), [0, 2, 3, 1])[0])
            kept = [torch.from_numpy(frame).permute(2, 0, 1) for frame in predictions[:keep]]
        else:
            batch = int(mode.rsplit("-", 1)[1]) if mode.startswith("batched-") else 8

            def batches():
                pending = []
                for frame in _driving_frames(frames):
                    pending.append(frame)
                    if len(pending) == batch:
                        yield torch.cat(pending)
                        pending = []
                if pending:
                    yield torch.cat(pending)

            kept = []
            for out in animate_stream(kp_detector, generator, source, batches(), reduced_precision=mode.startswith("reduced")):
                _ = (out.clamp(0, 1) * 255).round().to(torch.uint8)  # what the animator keeps
                kept.extend(list(out[: max(0, keep - len(kept))]))  # a few float frames for the error check
    seconds = time.perf_counter() - start
    if save:
        np.save(save, torch.stack(kept).numpy() if kept else np.zeros((0,), np.float32))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"fps": frames / seconds, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def _run_worker(mode: str, args: argparse.Namespace, save: str | None = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, __file__, "--worker", mode, "--frames", str(args.frames), "--threads", str(args.threads)]
    if save:
        command += ["--save", save, "--compare-frames", str(args.compare_frames)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _emulated_bf16_error(frames: int) -> tuple[float, float]:
    """Max / mean |bf16 - fp32| of predictions, bf16 emulated by rounding around every conv."""
    import torch
    import torch.nn.functional as F

    from models.fomm.animate import animate_frames
    from models.fomm.fast import reference_layers

    kp_detector, generator = _networks()
    clip = list(_driving_frames(frames + 1))
    source, driving = clip[0], torch.cat(clip[1:])
    conv2d = F.conv2d

    def rounded(x):
        return x.to(torch.bfloat16).float()

    def bf16_conv2d(x, weight, bias=None, *rest, **kwargs):
        bias = rounded(bias) if bias is not None else None
        return rounded(conv2d(rounded(x), rounded(weight), bias, *rest, **kwargs))

    # Plain layers for both runs: every conv then goes through F.conv2d (the CPU Winograd and
    # transposed-conv fast paths would bypass the rounding); autocast turns those paths off too.
    with reference_layers(kp_detector, generator):
        exact = animate_frames(kp_detector, generator, source, driving)
        F.conv2d = bf16_conv2d
        try:
            reduced = animate_frames(kp_detector, generator, source, driving)
        finally:
            F.conv2d = conv2d
    error = (reduced - exact).abs()
    return error.max().item(), error.mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--error-frames", type=int, default=4)
    parser.add_argument("--modes", default="per-frame,per-frame+,batched-1,batched-8")
    parser.add_argument("--compare-frames", type=int, default=8,
                        help="frames whose float output is compared with the first mode's (the reference pattern)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.frames, args.save, args.compare_frames)))
        return

    modes = args.modes.split(",")
    if torch.cuda.is_available():
        modes.append("reduced-8")
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    outputs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.repeats):
            for index, mode in enumerate(modes):
                save = os.path.join(scratch, f"{index}.npy") if round_index == 0 and args.compare_frames else None
                results[mode].append(_run_worker(mode, args, save))
                if save:
                    outputs[mode] = np.load(save)

    print(f"FOMM vox-256, random weights, 256x256, {args.frames} frames, {args.threads} thread(s), "
          f"median of {args.repeats} (device: {'cuda' if torch.cuda.is_available() else 'cpu'})")
    print(f"{'mode':<12} {'frames/s':>9} {'s/clip':>8} {'peak RSS MiB':>13} {'speed-up':>9} "
          f"{'max |diff|':>11} {'mean |diff|':>12}")
    base = statistics.median(r["fps"] for r in results[modes[0]])
    for mode in modes:
        fps = statistics.median(r["fps"] for r in results[mode])
        seconds = statistics.median(r["seconds"] for r in results[mode])
        rss = statistics.median(r["peak_rss_mib"] for r in results[mode])
        if mode in outputs and modes[0] in outputs and outputs[mode].shape == outputs[modes[0]].shape:
            diff = np.abs(outputs[mode].astype(np.float64) - outputs[modes[0]])  # vs the reference pattern
            error = f"{diff.max():>11.2e} {diff.mean():>12.2e}"
        else:
            error = f"{'-':>11} {'-':>12}"
        print(f"{mode:<12} {fps:>9.2f} {seconds:>8.1f} {rss:>13.0f} {fps / base:>8.2f}x {error}")
    if outputs:
        print(f"|diff|: float predictions of the first {args.compare_frames} frames vs {modes[0]}, same network and frames")
    if args.error_frames:
        max_error, mean_error = _emulated_bf16_error(args.error_frames)
        print(f"reduced precision (bf16, emulated) vs float32 over {args.error_frames} frames: "
              f"max {max_error:.4f}, mean {mean_error:.5f}")


if __name__ == "__main__":
    main()
