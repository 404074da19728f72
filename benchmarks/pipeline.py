"""End-to-end render time split by stage (prints a table).

Two cases, run side by side in one process on the demo material:
  * a 10-second 256x256 driving clip animating a 256x256 photo whole (256x256 output);
  * a 1080p paste-back: the astronaut placed in a 1920x1080 photo, 10-second clip.
Overhead = consent + watermark (embed and read-back) + provenance + ledger, as a share of
the animation time (the issue's target: under 25%). Medians over --repeat runs.

    .venv/bin/python benchmarks/pipeline.py [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

# benchmarks/ holds a watermark.py that would shadow the package: take this folder off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    from models.animate import AnimationOptions
    from studio import media
    from studio.config import StudioConfig
    from studio.demo import ensure_demo, short_driving_clip
    from studio.render.pipeline import RenderPipeline, RenderRequest

    frames = int(round(args.seconds * 25))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pipeline = RenderPipeline.from_config(StudioConfig(home=tmp / "home"))
        demo = ensure_demo(pipeline.config, pipeline)
        astronaut = np.ascontiguousarray(data.astronaut())
        clip = short_driving_clip(tmp / "clip.mp4", astronaut, frames=frames, size=256)
        canvas = np.full((1080, 1920, 3), 90, np.uint8)
        canvas[284:796, 704:1216] = astronaut
        big = tmp / "astronaut-1080p.png"
        Image.fromarray(canvas).save(big)
        # A 256x256 head-and-shoulders photo animated whole: the output is 256x256.
        small = tmp / "astronaut-256.png"
        Image.fromarray(astronaut[0:320, 60:380]).resize((256, 256), Image.BILINEAR).save(small)
        cases = {
            "256 px, no paste-back": RenderRequest(
                photo=small, driving=clip, credential_id=demo.credential_id, purpose="education",
                project="Orbit (demo documentary)", operator="bench", options=AnimationOptions(paste_back=False)),
            "1080p paste-back": RenderRequest(
                photo=big, driving=clip, credential_id=demo.credential_id, purpose="education",
                project="Orbit (demo documentary)", operator="bench"),
        }
        rows = []
        sizes = {}
        for name, request in cases.items():
            # The demo credential requires the visible label, so it is drawn (its own "label" stage).
            results = [pipeline.render(request) for _ in range(args.repeat)]
            out = media.probe_video(results[-1].video_path)
            sizes[name] = f"{out.width}x{out.height}"
            runs = [r.stage_seconds for r in results]  # the receipt stops at the commit; this adds "ledger"
            stages = sorted({k for r in runs for k in r})
            med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in stages}
            overhead = sum(med.get(k, 0.0) for k in ("consent", "watermark", "watermark_check", "provenance", "ledger"))
            rows.append((f"{name} ({sizes[name]})", med, overhead))

        order = ["read", "face", "consent", "animate", "label", "watermark", "encode", "watermark_check", "provenance", "ledger"]
        print(f"{frames} frames ({args.seconds:g} s at 25 fps), median of {args.repeat} runs, seconds per stage")
        print("| case | " + " | ".join(order) + " | total | gate overhead / animate |")
        print("|---|" + "---|" * (len(order) + 2))
        for name, med, overhead in rows:
            total = sum(med.values())
            cells = " | ".join(f"{med.get(k, 0.0):.2f}" for k in order)
            print(f"| {name} | {cells} | {total:.2f} | {100 * overhead / max(med.get('animate', 1e-9), 1e-9):.1f}% |")


if __name__ == "__main__":
    main()
