"""Demo material for the embedded default: a consenting demo subject and what a new user needs
to render within a minute.

Everything is made locally from public-domain pictures that ship in installed packages:
``skimage.data.astronaut()`` (Eileen Collins, NASA) as the consenting subject, and matplotlib's
``grace_hopper.jpg`` (US Navy) twice: posed frame by frame (speech-like mouth openings, blinks,
head turns) as the driving clip, so the demo shows one person's motion on another's face (the
driver's face is never copied), and as "another person" whose render is refused when her
photo is uploaded as the photo to animate.
The demo subject's key lives in the data folder only because this is a demo: real subjects
keep their keys on their own machines and sign with ``avatar-studio consent issue``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from studio.config import StudioConfig

if TYPE_CHECKING:
    from models.expression_metrics import ExpressionSchedule

DEMO_PROJECT = "Orbit (demo documentary)"
DEMO_PURPOSES = ("education", "film", "museum-exhibit")
DEMO_FPS = 25
DEMO_SECONDS = 7.0
_ROLES = {"admin": "admin", "operator": "operator", "officer": "consent-officer", "auditor": "auditor"}


@dataclass(frozen=True)
class DemoMaterial:
    folder: Path
    credential_id: str
    credential_path: Path
    photo: Path
    other_person: Path
    driving: Path
    logins: dict[str, str]  # username -> password


def ensure_demo(config: StudioConfig, pipeline) -> DemoMaterial:  # noqa: ANN001 - RenderPipeline (import cycle)
    """Create the demo material once (idempotent) and return where it is."""
    folder = config.home / "demo"
    state_file = folder / "demo.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        return _material(folder, state)
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image
    from skimage import data

    from consent.credential import issue_consent
    from consent.keys import did_key_from_public, generate_keypair, save_private_key
    from studio import media
    from studio.users import create_user, new_password

    ledger = pipeline.ledger
    astronaut = np.ascontiguousarray(data.astronaut())
    photo = folder / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    digest = media.sha256_file(photo)
    refs = config.home / "references"
    refs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(photo, refs / f"{digest}.png")

    from matplotlib import cbook

    other = folder / "grace_hopper.jpg"
    shutil.copyfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), other)

    driving = folder / "driving.mp4"
    driving.write_bytes(_demo_driving_mp4())

    key = generate_keypair()
    save_private_key(key, folder / "subject-demo-key.pem", passphrase=None)
    did = did_key_from_public(key.public_key())
    embedding = pipeline.face_analyzer().analyze(astronaut).embedding
    now = datetime.now(timezone.utc)
    document = issue_consent(
        issuer_key=key,
        subject_did=did,
        subject_name="Eileen M. Collins (demo)",
        grantor={"role": "self"},
        grantee_name="Avatar Studio demo",
        reference_image_sha256=[f"sha256:{digest}"],
        face_vector=[float(v) for v in embedding],
        project=DEMO_PROJECT,
        purposes=list(DEMO_PURPOSES),
        max_duration_seconds=60,
        prohibited=["political endorsement", "advertising"],
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
        compensation="demo: none",
        now=now,
    )
    credential_path = folder / "astronaut-consent.json"
    credential_path.write_text(json.dumps(document, indent=2))
    ledger.enroll_issuer(did, name="Demo subject (astronaut)", actor="demo-setup")
    credential = ledger.import_credential(
        document, actor="demo-setup", reference_embedding=[float(v) for v in embedding]
    )

    logins: dict[str, str] = {}
    existing = {u.username for u in ledger.list_users()}
    for username, role in _ROLES.items():
        if username in existing:
            continue
        password = new_password()
        create_user(ledger, username, password, role, actor="demo-setup")
        logins[username] = password
    state = {"credential_id": credential.credential_id, "logins": logins}
    state_file.write_text(json.dumps(state, indent=2))
    os.chmod(state_file, 0o600)
    return _material(folder, state)


def other_person_photo() -> np.ndarray:
    """Grace Hopper's portrait (matplotlib's sample data) as (H, W, 3) uint8 RGB."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def demo_schedule(frames: int, *, fps: int = DEMO_FPS) -> ExpressionSchedule:
    """What the demo driver does, frame by frame: still for half a second, then speech-like
    mouth openings, a blink every 2 to 3 s, and a head turn one way, then the other."""
    from models.expression_metrics import ExpressionSchedule

    t = np.arange(frames) / fps  # seconds
    mouth = np.zeros(frames)
    for centre, amount in zip((0.8, 1.3, 1.9, 2.6, 3.2, 4.6, 5.1, 5.8, 6.4), (0.3, 0.4, 0.25, 0.45, 0.3, 0.35, 0.25, 0.4, 0.3)):
        u = np.clip(np.abs(t - centre) / 0.18, 0, 1)  # a cos^2 bump about 9 frames wide
        mouth = np.maximum(mouth, amount * np.cos(0.5 * np.pi * u) ** 2)
    blink = np.zeros(frames)
    for centre in (1.6, 3.9, 6.1):
        c = int(round(centre * fps))
        for dt, closure in ((-1, 0.6), (0, 1.0), (1, 0.6)):  # lids down over three frames
            if 0 <= c + dt < frames:
                blink[c + dt] = closure
    rotation = np.zeros(frames)
    for start, end, degrees in ((2.0, 3.6, -10.0), (4.2, 5.8, 10.0)):
        inside = (t >= start) & (t <= end)
        rotation = np.where(inside, degrees * np.sin(np.pi * (t - start) / (end - start)) ** 2, rotation)
    neutral = (mouth < 1e-3) & (blink < 1e-3) & (np.abs(rotation) < 1e-3)
    return ExpressionSchedule(mouth=mouth, blink=blink, rotation=rotation, neutral=neutral)


@functools.cache
def _demo_driving_mp4() -> bytes:
    """The demo driving clip as MP4 bytes, made once per process (it is deterministic, and
    every fresh data folder in one process gets the same clip)."""
    from studio import media

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "driving.mp4"
        media.write_video(path, demo_driving_frames(other_person_photo()), fps=DEMO_FPS)
        return path.read_bytes()


def demo_driving_frames(photo: np.ndarray, *, seconds: float = DEMO_SECONDS, fps: int = DEMO_FPS) -> np.ndarray:
    """(T, 512, 512, 3) uint8: the driver's head and shoulders posed as ``demo_schedule`` says
    (deterministic: no random numbers)."""
    from models.expression_metrics import make_driver
    from models.face import FaceAnalyzer

    head = np.ascontiguousarray(photo[:512, :512])  # square, even-sized for H.264
    schedule = demo_schedule(int(round(seconds * fps)), fps=fps)
    return make_driver(head, schedule, FaceAnalyzer(with_embedding=False))


def short_driving_clip(path: Path, image: np.ndarray, *, frames: int = 12, size: int = 256, fps: int = 25) -> Path:
    """A short synthetic driving clip of the astronaut photo's head and shoulders moving
    (``models.synthetic.make_driving_clip``), ``size`` px square; for tests and benchmarks."""
    from PIL import Image

    from models.synthetic import make_driving_clip
    from studio import media

    head = image[0:320, 60:380]  # head and shoulders, so the face stays >= 64 px at small sizes
    small = np.asarray(Image.fromarray(head).resize((size, size), Image.BILINEAR))
    clip, _ = make_driving_clip(small, frames=frames)
    media.write_video(path, clip, fps=fps)
    return path


def _material(folder: Path, state: dict) -> DemoMaterial:
    return DemoMaterial(
        folder=folder,
        credential_id=state["credential_id"],
        credential_path=folder / "astronaut-consent.json",
        photo=folder / "astronaut.png",
        other_person=folder / "grace_hopper.jpg",
        driving=folder / "driving.mp4",
        logins=dict(state["logins"]),
    )


def describe(material: DemoMaterial, url: str) -> str:
    logins = "\n".join(f"    {u:<9} {p}   ({_ROLES.get(u, '')})" for u, p in material.logins.items())
    return (
        f"Avatar Studio demo at {url}\n"
        f"  Demo logins (stored in {material.folder.name}/demo.json in the data folder):\n{logins}\n"
        f"  Demo credential: {material.credential_id} (astronaut, NASA public-domain portrait)\n"
        f"  Try: Render tab -> pick the credential -> tick 'use the credential's reference photo' ->\n"
        f"       upload {material.driving} (another person's face moving: only its motion is used) -> Render.\n"
        f"  A refusal: upload {material.other_person} as the photo instead (a face the credential does not cover).\n"
    )
