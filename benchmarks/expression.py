"""Expression transfer of the default animator, today's and the new one side by side.

    PYTHONPATH=. python benchmarks/expression.py [--frames 48] [--sheet docs/expression-sheet.png]

Driving set (``models.expression_metrics``): one public-domain portrait drives the other
(Grace Hopper drives the astronaut, and the astronaut drives Grace Hopper), posed by
warping the driver photo's own landmark regions: a still start, two mouth openings, two
blinks, an in-plane head turn, fixed seed. Per frame the project's face analysis measures
driver and output; the table gives, per direction and animator:

* mouth: Pearson r of the inner-lip gap / face height, driver vs output, and the amplitude
  ratio (least-squares slope of the output's change against the driver's), read by the
  face tracker in one pass over each clip as the animator reads its driver; the same two
  from the static (per-photo) mesh follow as "static" rows;
* eyes: driver blinks reproduced within 1 frame, blink F1 and false blinks by the issue's
  rule (aperture < 30 % of open) and by the mesh rule (``mesh_blink_fraction``), and
  Pearson r of the eye aperture;
* sharpness: Laplacian variance over the face box, output / source photo, neutral frames;
* identity: dlib distance output to source photo, median over every 3rd frame;
* stability: mean |frame-to-frame difference| of the output on a still, noisy driver;
* speed: frames per second through ``animate()`` at a 256 px crop and pasted into 720p.

"new" is the default (``reference="resting"``); "new,closest" the same animator with FOMM's
closest-frame reference; ``--fomm`` adds the FOMM animator with seeded random vox-256
weights, whose numbers only show that the path runs. It also writes a contact sheet
(driver row, today's output row, new output row, for each direction).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np


def _faces() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return {"astronaut": np.ascontiguousarray(data.astronaut()), "hopper": np.ascontiguousarray(hopper)}


class _Closest:
    """An animator called with ``reference="closest"`` (FOMM's best frame)."""

    def __init__(self, animator):
        self.animator = animator

    def animate(self, verified, source, driving, **kwargs):
        from models.animate import AnimationOptions

        return self.animator.animate(verified, source, driving, options=AnimationOptions(reference="closest"), **kwargs)


def _animators(fomm: bool):
    from models.landmark import LandmarkAnimator

    found = {"today": lambda: LandmarkAnimator(expressive=False), "new": lambda: LandmarkAnimator(),
             "new,closest": lambda: _Closest(LandmarkAnimator())}
    if fomm:
        def make_fomm():
            from benchmarks.fomm import _networks
            from models.fomm.animator import FommAnimator

            kp_detector, generator = _networks()  # vox-256 with seeded random weights
            return FommAnimator(kp_detector=kp_detector, generator=generator)

        found["fomm*"] = make_fomm
    return found


def measure(animator, verified, source, driver, still, schedule, analyzer, mesh) -> tuple[dict, list]:
    """All quality numbers of one animator on one (source, driver) pair, and its frames."""
    from models import expression_metrics as em
    from models.errors import MotionError
    from models.face import eye_aperture

    src_face = analyzer.analyze(source)
    out = list(animator.animate(verified, source, list(driver)))
    d_lm = em.track(mesh, driver)
    try:
        o_lm = em.track(mesh, out)
    except MotionError as exc:  # a random-weight FOMM draws no face: nothing to measure
        still_out = list(animator.animate(verified, source, list(still)))
        row = {m: f"no face ({type(exc).__name__})" for m in ("mouth r", "mouth amp", "mouth r static",
                                                               "mouth amp static", "blinks (30 %)", "F1 (30 %)",
                                                               "blinks", "blink F1", "false blinks", "eye r", "identity")}
        ref = em.sharpness(source, src_face.box)
        row["sharpness"] = float(np.median([em.sharpness(out[t], src_face.box)
                                            for t in np.flatnonzero(schedule.neutral)])) / ref
        row["still diff"] = em.frame_to_frame(still_out)
        return row, out
    neutral = schedule.neutral
    d_mouth = np.array([em.mouth_gap(p) for p in em.track_video(mesh, driver)])
    o_mouth = np.array([em.mouth_gap(p) for p in em.track_video(mesh, out)])
    d_static = np.array([em.mouth_gap(p) for p in d_lm])
    o_static = np.array([em.mouth_gap(p) for p in o_lm])
    d_eye = np.array([eye_aperture(p) for p in d_lm])
    o_eye = np.array([eye_aperture(p) for p in o_lm])
    strict = em.blink_scores(d_eye, o_eye, neutral)
    blinks = em.blink_scores(d_eye, o_eye, neutral, em.mesh_blink_fraction(d_eye, neutral))
    ref = em.sharpness(source, src_face.box)
    sharp = float(np.median([em.sharpness(out[t], src_face.box) for t in np.flatnonzero(neutral)])) / ref
    dists = [float(np.linalg.norm(analyzer.analyze(f).embedding - src_face.embedding)) for f in out[::3]]
    still_out = list(animator.animate(verified, source, list(still)))
    row = {
        "mouth r": em.pearson(d_mouth, o_mouth),
        "mouth amp": em.amplitude_ratio(d_mouth, o_mouth, neutral),
        "mouth r static": em.pearson(d_static, o_static),
        "mouth amp static": em.amplitude_ratio(d_static, o_static, neutral),
        "blinks (30 %)": f"{strict['reproduced']}/{strict['driver_blinks']}",
        "F1 (30 %)": strict["f1"] if strict["driver_blinks"] else "no driver blink",
        "blinks": f"{blinks['reproduced']}/{blinks['driver_blinks']}",
        "blink F1": blinks["f1"],
        "false blinks": blinks["false"],
        "eye r": em.pearson(d_eye, o_eye),
        "sharpness": sharp,
        "identity": statistics.median(dists),
        "still diff": em.frame_to_frame(still_out),
    }
    return row, out


def speed(animator, verified, photo: np.ndarray, driver: np.ndarray, repeats: int = 2) -> float:
    """Frames per second through animate(), end to end (setup, tracking pass, warp, paste)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = sum(1 for _ in animator.animate(verified, photo, list(driver)))
        best = max(best, n / (time.perf_counter() - t0))
    return best


def contact_sheet(driver: np.ndarray, outputs: list[np.ndarray], frames: list[int], box, dbox, size: int = 112):
    """Rows: driver, then each output; columns: ``frames``; each cell the face region."""

    def cell(image, b):
        x0, y0, x1, y1 = b
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.62 * max(x1 - x0, y1 - y0)
        h, w = image.shape[:2]
        a, c = int(max(cy - half, 0)), int(min(cy + half, h))
        l, r = int(max(cx - half, 0)), int(min(cx + half, w))
        return cv2.resize(np.ascontiguousarray(image[a:c, l:r]), (size, size), interpolation=cv2.INTER_AREA)

    rows = [np.concatenate([cell(driver[t], dbox) for t in frames], axis=1)]
    rows += [np.concatenate([cell(o[t], box) for t in frames], axis=1) for o in outputs]
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", default="docs/expression-sheet.png")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--fomm", action="store_true",
                        help="add the FOMM animator with seeded random vox-256 weights (shows the path runs; "
                             "its quality numbers mean nothing)")
    args = parser.parse_args()

    from benchmarks.animator import _verified
    from models import expression_metrics as em
    from models.face import FaceAnalyzer

    cv2.setNumThreads(2)
    analyzer, mesh = FaceAnalyzer(), FaceAnalyzer(with_embedding=False)
    faces = _faces()
    schedule = em.make_schedule(args.frames, seed=args.seed)
    animators = _animators(args.fomm)
    table: dict[tuple[str, str], dict] = {}
    sheets = []
    for src_name, drv_name in (("astronaut", "hopper"), ("hopper", "astronaut")):
        source, drv_photo = faces[src_name], faces[drv_name]
        verified = _verified(analyzer.analyze(source).embedding)
        driver = em.make_driver(drv_photo, schedule, analyzer)
        still = em.make_still_driver(drv_photo, seed=args.seed)
        outs = []
        for name, make in animators.items():
            row, out = measure(make(), verified, source, driver, still, schedule, analyzer, mesh)
            table[(f"{drv_name} drives {src_name}", name)] = row
            if name in ("today", "new"):
                outs.append(out)
        picks = [0, int(np.argmax(schedule.mouth)), int(np.argmax(schedule.blink)),
                 int(np.argmax(np.abs(schedule.rotation))), 30, 40]
        sheets.append(contact_sheet(driver, outs, picks, analyzer.analyze(source).box,
                                    analyzer.analyze(drv_photo).box))

    if not args.no_speed:
        source = faces["astronaut"]
        verified = _verified(analyzer.analyze(source).embedding)
        driver = em.make_driver(faces["hopper"], schedule, analyzer)
        from models.animate import AnimationOptions
        from models.crop import plan_crop

        # the 512 px astronaut's head box is ~270 px: the warp runs on a crop of about 256 px
        crop = plan_crop(analyzer.analyze(source), source.shape).size
        hd = np.full((720, 1280, 3), 70, np.uint8)
        hd[:, 280:1000] = cv2.resize(source, (720, 720), interpolation=cv2.INTER_CUBIC)  # a 720p frame-filling head
        hd_crop = max(AnimationOptions().crop_size, plan_crop(analyzer.analyze(hd), hd.shape).size)
        print(f"speed: crop {max(crop, 256)} px on the 512 px photo, {hd_crop} px crop pasted into 1280x720")
        for name, make in animators.items():
            table[("speed", name)] = {"fps 256 px": speed(make(), verified, source, driver),
                                      "fps 720p": speed(make(), verified, hd, driver)}

    print(f"Expression benchmark: {args.frames}-frame generated driver, seed {args.seed}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    metrics = ["mouth r", "mouth amp", "mouth r static", "mouth amp static", "blinks (30 %)", "F1 (30 %)", "blinks",
               "blink F1", "false blinks", "eye r", "sharpness", "identity", "still diff"]
    targets = {"mouth r": ">= 0.9", "mouth amp": "0.75-1.25", "mouth r static": ">= 0.9", "mouth amp static": "0.75-1.25",
               "blinks": "all", "blinks (30 %)": "all", "F1 (30 %)": ">= 0.95", "blink F1": ">= 0.95",
               "false blinks": "0", "eye r": "", "sharpness": ">= 0.85", "identity": "<= 0.35",
               "still diff": "<= 0.5", "fps 256 px": ">= 25", "fps 720p": ">= 25"}
    pairs = sorted({k[0] for k in table if k[0] != "speed"})
    names = list(animators)
    header = f"| {'metric':<16} | {'target':<9} | " + " | ".join(f"{p[:22]:>22}: {n:<5}" for p in pairs for n in names)
    print(header)
    print("|" + "---|" * (2 + len(pairs) * len(names)))

    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)[:29]

    for m in metrics:
        print(f"| {m:<16} | {targets[m]:<9} | " + " | ".join(f"{fmt(table[(p, n)][m]):>29}" for p in pairs for n in names))
    if not args.no_speed:
        for m in ("fps 256 px", "fps 720p"):
            print(f"| {m:<16} | {targets[m]:<9} | " + " | ".join(f"{fmt(table[('speed', n)][m]):>29}" for n in names))
    sheet = np.concatenate(sheets, axis=0)
    Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # a 192-colour palette keeps the committed PNG small; faces stay faithful at this size
    Image.fromarray(sheet).quantize(colors=192, dither=Image.Dither.NONE).save(args.sheet, optimize=True)
    print(f"contact sheet: {args.sheet} (per direction: driver row, then today's and the new animator's rows)")


if __name__ == "__main__":
    main()
