"""Peak memory of streaming a long 1080p video through VideoReader -> op -> VideoWriter.

The question it answers: does a 10-minute 1080p driving video fit in memory? The render
path never holds more than a batch of frames, so peak RSS should be flat in the video's
length. For each length this script

1. writes a synthetic 1080p input (moving gradient, H.264 ultrafast, AAC sine track),
2. streams it in a fresh child process (so nothing from step 1 counts) through
   ``VideoReader.chunks`` -> ``255 - frames`` -> ``VideoWriter(audio_from=input)``,
   sampling ``VmRSS`` as it goes, and reports the child's peak RSS (``ru_maxrss``).

Usage::

    python benchmarks/media_memory.py --seconds 30 120 600 [--fps 25] [--preset ultrafast]

Prints one JSON object per length and a summary table; see docs/media.md for results.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

# Run as a script, Python puts benchmarks/ first on sys.path, where another benchmark's
# watermark.py would shadow the watermark package that studio imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

_SAMPLE_RATE = 48_000


def write_sine_audio(path: Path, seconds: float) -> None:
    """A stereo 440 Hz AAC track in an .m4a, encoded a frame at a time."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=_SAMPLE_RATE, layout="stereo")
        total = int(seconds * _SAMPLE_RATE)
        step = stream.codec_context.frame_size or 1024
        for start in range(0, total, step):
            n = min(step, total - start)
            t = np.arange(start, start + n) / _SAMPLE_RATE
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # (n,)
            frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = _SAMPLE_RATE, start, Fraction(1, _SAMPLE_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_input(path: Path, *, seconds: float, fps: int, width: int, height: int) -> None:
    """The synthetic driving video: a gradient that moves every frame (so nothing is free to encode)."""
    from studio.media import VideoWriter

    audio = path.with_suffix(".m4a")
    write_sine_audio(audio, seconds)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    with VideoWriter(path, fps=fps, width=width, height=height, crf=28, preset="ultrafast", audio_from=audio) as writer:
        for i in range(int(seconds * fps)):
            writer.write(np.roll(base, 8 * i, axis=1))  # (H, W, 3)
    audio.unlink()


def stream_through(src: Path, dst: Path, *, preset: str, chunk: int) -> dict[str, float]:
    """Run in the child: the render path's I/O with a trivial per-frame op."""
    from studio.media import VideoReader, VideoWriter

    reader = VideoReader(src)
    info = reader.info
    samples: list[float] = []
    started = time.perf_counter()
    with VideoWriter(dst, fps=info.fps, width=info.width, height=info.height, preset=preset, audio_from=src) as writer:
        for batch in reader.chunks(chunk):  # (<=chunk, H, W, 3)
            writer.write(255 - batch)
            samples.append(_rss_mib())
    elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    tenth = max(1, len(samples) // 10)
    return {
        "frames": writer.frames_written,
        "seconds_of_video": writer.duration_seconds,
        "elapsed_s": round(elapsed, 1),
        "fps_processed": round(writer.frames_written / elapsed, 1),
        "peak_rss_mib": round(peak_mib, 1),
        "rss_at_10pct_steps_mib": [round(s, 1) for s in samples[tenth - 1 :: tenth]],
    }


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--preset", default="ultrafast", help="x264 preset of the output")
    parser.add_argument("--chunk", type=int, default=16, help="frames per batch, as the pipeline uses")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=2, type=Path, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(stream_through(*args.child, preset=args.preset, chunk=args.chunk)))
        return 0

    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for seconds in args.seconds:
            src, dst = Path(tmp) / f"in_{seconds:g}s.mp4", Path(tmp) / f"out_{seconds:g}s.mp4"
            t0 = time.perf_counter()
            write_input(src, seconds=seconds, fps=args.fps, width=args.width, height=args.height)
            made = time.perf_counter() - t0
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(src), str(dst), "--preset", args.preset, "--chunk", str(args.chunk)],
                capture_output=True,
                text=True,
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return child.returncode
            row = {"length_s": seconds, "input_written_s": round(made, 1), **json.loads(child.stdout)}
            print(json.dumps(row), flush=True)
            results.append(row)
            src.unlink()
            dst.unlink()
    print(f"\n{'length':>8} {'frames':>7} {'peak RSS MiB':>13} {'fps':>6}")
    for row in results:
        print(f"{row['length_s']:>7g}s {row['frames']:>7} {row['peak_rss_mib']:>13} {row['fps_processed']:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
