"""The render farm's throughput and overhead, side by side with in-process rendering.

    python benchmarks/farm.py [--clip-seconds 10] [--renders 4]

Needs ``redis-server`` (Debian package) and celery. In one run, on one data folder (SQLite):

- in-process: ``RenderPipeline.render`` of the same clip, ``--renders`` times in a row;
- the farm with 1 and with 2 ``avatar-studio worker`` processes (a redis-server on a free
  loopback port): ``--renders`` submitted at once, throughput in renders per minute;
- per render on an idle worker: enqueue to start (the ledger's ``render.started`` event to the
  worker's ``render.claimed``) and finish to visible (``render.finished`` to the moment the
  waiting caller returns with the delivered file), in ms, and their sum as a share of the
  in-process render time.

The driving clip is synthetic (``models.synthetic``) from the public-domain astronaut portrait.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# benchmarks/watermark.py would shadow the watermark package: this folder comes off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clip(path: Path, seconds: float) -> Path:
    from PIL import Image
    from skimage import data

    from models.synthetic import make_driving_clip
    from studio import media

    head = np.ascontiguousarray(data.astronaut())[0:320, 60:380]
    small = np.asarray(Image.fromarray(head).resize((256, 256), Image.BILINEAR))
    frames, _ = make_driving_clip(small, frames=int(round(seconds * 25)))
    media.write_video(path, frames, fps=25)
    return path


def _event_time(ledger, kind: str, render_id: str):
    for event in ledger.events():
        if event.kind == kind and event.data.get("render_id") == render_id:
            return event.created_at
    raise LookupError(f"no {kind} for {render_id}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--renders", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (Debian package redis-server)")

    from studio.config import StudioConfig
    from studio.demo import ensure_demo
    from studio.render.farm import Farm
    from studio.render.pipeline import RenderPipeline, RenderRequest

    root = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        port = _free_port()
        (root / "redis").mkdir()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "yes", "--dir", str(root / "redis")], stdout=subprocess.DEVNULL)
        procs.append(redis)
        url = f"redis://127.0.0.1:{port}/0"
        home = root / "home"
        config = StudioConfig(home=home, broker_url=url, max_render_seconds=600)
        pipeline = RenderPipeline.from_config(config)
        demo = ensure_demo(config, pipeline)
        clip = _clip(root / "clip.mp4", args.clip_seconds)

        def request() -> RenderRequest:
            return RenderRequest(photo=demo.photo, driving=clip, credential_id=demo.credential_id, purpose="education",
                                 project="Orbit (demo documentary)", operator="bench")

        pipeline.render(request())  # warm-up: models loaded, caches filled
        t0 = time.perf_counter()
        solo = []
        for _ in range(args.renders):
            t = time.perf_counter()
            pipeline.render(request())
            solo.append(time.perf_counter() - t)
        in_process_rate = args.renders / (time.perf_counter() - t0) * 60
        render_seconds = statistics.median(solo)

        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), STUDIO_HOME=str(home),
                   STUDIO_BROKER_URL=url, STUDIO_MAX_RENDER_SECONDS="600", GRADIO_ANALYTICS_ENABLED="False",
                   HF_HUB_OFFLINE="1")
        farm = Farm(pipeline)
        rows = []
        workers: list[subprocess.Popen] = []
        for count in (1, 2):
            while len(workers) < count:
                name = f"bench{len(workers) + 1}"
                log = root / f"{name}.log"
                proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "worker", "--name", f"{name}@%h"],
                                        env=dict(env, STUDIO_WORK_DIR=str(root / f"work-{name}")),
                                        stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
                workers.append(proc)
                procs.append(proc)
                while b"ready." not in log.read_bytes():
                    if proc.poll() is not None:
                        sys.exit(log.read_text()[-2000:])
                    time.sleep(0.1)
            # one render alone on an idle farm: the per-render overheads
            overhead = []
            for _ in range(2):
                render_id = farm.submit(request())
                result = farm.wait(render_id)
                visible = time.time()
                started = _event_time(pipeline.ledger, "render.started", render_id).timestamp()
                claimed = _event_time(pipeline.ledger, "render.claimed", render_id).timestamp()
                finished = _event_time(pipeline.ledger, "render.finished", result.render_id).timestamp()
                overhead.append(((claimed - started) * 1000, (visible - finished) * 1000))
            # then --renders at once: throughput
            t = time.perf_counter()
            ids = [farm.submit(request()) for _ in range(args.renders)]
            for render_id in ids:
                farm.wait(render_id)
            rate = args.renders / (time.perf_counter() - t) * 60
            to_start = statistics.median(o[0] for o in overhead)
            to_visible = statistics.median(o[1] for o in overhead)
            rows.append((f"farm, {count} worker{'s' if count > 1 else ''}", rate, to_start, to_visible,
                         (to_start + to_visible) / 1000 / render_seconds * 100))

        print(f"clip {args.clip_seconds:.0f} s ({int(round(args.clip_seconds * 25))} frames, 256 px), "
              f"{args.renders} renders per row, {os.cpu_count()} CPUs")
        print(f"{'':<20} {'renders/min':>12} {'enqueue->start ms':>18} {'finish->visible ms':>19} {'overhead %':>11}")
        print(f"{'in-process':<20} {in_process_rate:>12.1f} {'-':>18} {'-':>19} {'-':>11}"
              f"   (median render {render_seconds:.2f} s)")
        for name, rate, to_start, to_visible, share in rows:
            print(f"{name:<20} {rate:>12.1f} {to_start:>18.0f} {to_visible:>19.0f} {share:>10.2f}%")
        print("enqueue->start includes the submit's own admission work after render.started (moving the inputs,"
              " the publish) and the worker's claim; finish->visible includes the move into outputs/ and the"
              f" waiter's {0.1:.1f} s poll.")
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
