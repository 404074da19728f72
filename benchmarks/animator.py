"""Speed of the default (landmark) animator, and the quality numbers its tests check.

    python benchmarks/animator.py [--frames 40] [--repeats 3]

Prints one table: end-to-end frames per second of ``LandmarkAnimator.animate`` (best-frame
alignment, 256 px crop, paste-back) into the 512 px astronaut photo and into a 1920x1080
photo, with per-stage medians (tracking the driving face, the warp, the paste-back), all
measured side by side in one run; then the tracking error and identity distance on the
same synthetic clip. The driving clip is synthetic (``models.synthetic``) from the
public-domain astronaut portrait.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timedelta, timezone

import numpy as np


def _verified(embedding: np.ndarray):
    from consent.credential import issue_consent
    from consent.keys import did_key_from_public, generate_keypair
    from consent.verify import ConsentRequest, RevocationList, TrustList, verify_consent

    now = datetime(2027, 3, 1, tzinfo=timezone.utc)
    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    credential = issue_consent(
        issuer_key=key, subject_did=did, subject_name="Eileen M. Collins", grantor={"role": "self"},
        grantee_name="Benchmark", reference_image_sha256=["ab" * 32], face_vector=[float(v) for v in embedding],
        project="bench", purposes=["education"], max_duration_seconds=600,
        valid_from=now - timedelta(days=1), now=now - timedelta(days=1))
    return verify_consent(credential, request=ConsentRequest(purpose="education", project="bench", duration_seconds=5),
                          trust=TrustList([did]), status=RevocationList([]), likeness=embedding, now=now)


def _stage_medians(photo: np.ndarray, clip: np.ndarray) -> dict[str, float]:
    """Median ms per frame of each stage, run through the animator's own parts."""
    from models.animate import AnimationOptions
    from models.landmark import LandmarkAnimator
    from models.landmark.keypoints import MeshKeypoints, movement_scale, transfer, transfer_points
    from models.landmark.warp import DenseWarp

    animator = LandmarkAnimator()
    options = AnimationOptions()
    image, points, paste = animator._prepare_source(photo, options)
    kp_model = MeshKeypoints(points)
    warp = DenseWarp(image, points, kp_model.source)
    animator.analyzer.new_video()
    poses = [animator.analyzer.landmarks(f) for f in clip[:2]]  # warm the tracker
    track, warp_ms, paste_ms = [], [], []
    ref = poses[0]
    alpha = np.full(2, movement_scale(points, ref))
    kp_ref = kp_model(ref)
    for frame in clip:
        t0 = time.perf_counter()
        pose = animator.analyzer.landmarks(frame)
        t1 = time.perf_counter()
        kp = transfer(kp_model.source, kp_model(pose), kp_ref, relative=True, alpha=alpha, absolute_scale=alpha)
        pts = transfer_points(points, pose, ref, relative=True, alpha=alpha, absolute_scale=alpha)
        crop = warp(kp, pts)
        t2 = time.perf_counter()
        paste(crop)
        t3 = time.perf_counter()
        track.append(t1 - t0)
        warp_ms.append(t2 - t1)
        paste_ms.append(t3 - t2)
    return {k: 1000 * statistics.median(v) for k, v in (("track", track), ("warp", warp_ms), ("paste", paste_ms))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from skimage import data

    from models.animate import AnimationOptions
    from models.face import FaceAnalyzer
    from models.landmark import LandmarkAnimator
    from models.synthetic import MotionSpec, make_driving_clip

    astronaut = np.ascontiguousarray(data.astronaut())
    analyzer = FaceAnalyzer()
    face = analyzer.analyze(astronaut)
    verified = _verified(face.embedding)
    clip, _ = make_driving_clip(astronaut, frames=args.frames, motion=MotionSpec())  # (T, 512, 512, 3)
    hd = np.full((1080, 1920, 3), 70, np.uint8)
    hd[300:812, 700:1212] = astronaut
    photos = {"512x512 photo": astronaut, "1920x1080 photo": hd}

    rows = []
    for label, photo in photos.items():
        stages = _stage_medians(photo, clip)
        walls, cpus, setups = [], [], []
        for _ in range(args.repeats):
            animator = LandmarkAnimator()
            t0, c0 = time.perf_counter(), time.process_time()
            animator._prepare_source(photo, AnimationOptions())  # what animate() does first, timed alone
            setups.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            n = sum(1 for _ in animator.animate(verified, photo, list(clip)))
            walls.append(n / (time.perf_counter() - t0))
            cpus.append(1000 * (time.process_time() - c0) / n)
        rows.append((label, statistics.median(walls), statistics.median(cpus), 1000 * statistics.median(setups), stages))

    print(f"LandmarkAnimator, 256 px crop, {args.frames}-frame synthetic clip, median of {args.repeats} runs, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'target':<16} {'fps':>6} {'CPU ms/frame':>13} {'setup ms':>9} {'track ms':>9} {'warp ms':>8} {'paste ms':>9}")
    for label, fps, cpu, setup, st in rows:
        print(f"{label:<16} {fps:>6.1f} {cpu:>13.1f} {setup:>9.0f} {st['track']:>9.1f} {st['warp']:>8.1f} "
              f"{st['paste']:>9.1f}")
    print("fps: end to end through animate() (setup + tracking pass + warp + paste-back); CPU ms counts all threads")

    # quality on the same clip, as the tests measure it
    out = list(LandmarkAnimator().animate(verified, astronaut, list(clip)))
    dists = [float(np.linalg.norm(analyzer.analyze(f).embedding - face.embedding)) for f in out[:: max(1, len(out) // 8)]]
    print(f"identity: dlib distance output vs photo, median {statistics.median(dists):.3f}, max {max(dists):.3f}")


if __name__ == "__main__":
    main()
