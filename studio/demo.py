"""Demo material for the embedded default: a consenting demo subject and what a new user needs
to render within a minute.

Everything is made locally from public-domain pictures: ``skimage.data.astronaut()`` (Eileen
Collins, NASA) as the consenting subject, a synthetic driving clip made from the same photo,
and matplotlib's ``grace_hopper.jpg`` (US Navy) as "another person" whose render is refused.
The demo subject's key lives in the data folder only because this is a demo: real subjects
keep their keys on their own machines and sign with ``avatar-studio consent issue``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from studio.config import StudioConfig

DEMO_PROJECT = "Orbit (demo documentary)"
DEMO_PURPOSES = ("education", "film", "museum-exhibit")
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
    from models.synthetic import make_driving_clip
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

    frames, _ = make_driving_clip(astronaut, frames=50)
    driving = folder / "driving.mp4"
    media.write_video(driving, frames, fps=25)

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
        f"       upload {material.driving} -> Render.\n"
        f"  A refusal: upload {material.other_person} as the photo instead (another person).\n"
    )
