"""The render path against a ledger an attacker has touched, and the checkpoint each receipt carries.

Real pipeline (landmark animator, real watermark, C2PA, SQLite file) at small size.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from consent.credential import issue_consent
from consent.errors import ConsentRevoked, FaceThresholdAboveCeiling
from consent.keys import did_key_from_public, generate_keypair
from studio.render.pipeline import RenderRequest
from studio_support import short_driving_clip, small_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(tmp_path_factory: Any, astronaut: Any) -> Any:
    from studio.demo import ensure_demo

    home = tmp_path_factory.mktemp("pipeline-ledger-home")
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(home / "short.mp4", astronaut, frames=6)
    return pipeline, demo, clip


def _request(demo: Any, clip: Any, **kw: Any) -> RenderRequest:
    fields = dict(photo=demo.photo, driving=clip, credential_id=demo.credential_id, purpose="film",
                  project="Orbit (demo documentary)", operator="tester")
    fields.update(kw)
    return RenderRequest(**fields)


def _astronaut_credential(pipeline: Any, demo: Any, **extra: Any) -> dict[str, Any]:
    """A fresh, enrolled issuer's consent for the astronaut's face template (from the demo credential)."""
    template = pipeline.ledger.get_credential(demo.credential_id).face_vector
    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    pipeline.ledger.enroll_issuer(did, name="Eileen M. Collins", actor="officer")
    now = datetime.now(timezone.utc)
    fields = dict(issuer_key=key, subject_did=did, subject_name="Eileen M. Collins", grantor={"role": "self"},
                  grantee_name="Example Studio", reference_image_sha256=["0" * 64], face_vector=list(template),
                  project="Orbit (demo documentary)", purposes=["film"], max_duration_seconds=60,
                  valid_from=now - timedelta(days=1), now=now)
    fields.update(extra)
    return issue_consent(**fields)


def test_the_receipt_carries_a_signed_checkpoint_of_the_render_start(studio: Any) -> None:
    from studio.ledger import SignedCheckpoint

    pipeline, demo, clip = studio
    result = pipeline.render(_request(demo, clip))
    receipt = json.loads(result.receipt_path.read_text())
    checkpoint = SignedCheckpoint.from_note(receipt["ledger_checkpoint"])
    started = [e for e in pipeline.ledger.events() if e.kind == "render.started"][-1]
    assert started.data["render_id"] == result.render_id
    assert checkpoint.size == started.seq and checkpoint.root_hash == started.hash
    assert pipeline.ledger.verify_extends(checkpoint).ok
    assert receipt == result.receipt


def test_a_credential_looser_than_the_ceiling_does_not_render_another_face(studio: Any) -> None:
    """maxDistance 100 for the astronaut: Grace Hopper used to render under it."""
    pipeline, demo, clip = studio
    document = _astronaut_credential(pipeline, demo, max_distance=100.0)
    # As an older studio (no ceiling at import) would have stored it: row and event together.
    from studio.ledger.chain import canonical_data

    body = canonical_data(document)
    engine = create_engine(pipeline.ledger.engine.url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO credentials (credential_id, issuer, subject_name, project, document, imported_at, "
                 "imported_by) VALUES (:id, :issuer, 'Eileen M. Collins', 'Orbit (demo documentary)', :doc, :at, "
                 "'officer')"),
            {"id": document["id"], "issuer": document["issuer"], "doc": body, "at": datetime.now(timezone.utc)},
        )
    engine.dispose()
    import hashlib

    pipeline.ledger.append(
        "credential.imported",
        {"credential_id": document["id"], "issuer": document["issuer"],
         "document_sha256": hashlib.sha256(body.encode()).hexdigest()},
        actor="officer",
    )
    before = set(pipeline.config.outputs_dir.iterdir())
    with pytest.raises(FaceThresholdAboveCeiling):
        pipeline.render(_request(demo, clip, photo=demo.other_person, credential_id=document["id"]))
    assert set(pipeline.config.outputs_dir.iterdir()) == before
    refusal = [e for e in pipeline.ledger.events() if e.kind == "render.refused"][-1]
    assert refusal.data["error"] == "FaceThresholdAboveCeiling"


def test_deleting_the_revocation_row_does_not_let_a_render_through(studio: Any) -> None:
    pipeline, demo, clip = studio
    credential = pipeline.ledger.import_credential(_astronaut_credential(pipeline, demo), actor="officer")
    pipeline.ledger.revoke(credential.credential_id, reason="subject withdrew", actor="officer")
    engine = create_engine(pipeline.ledger.engine.url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM revocations WHERE credential_id = :id"), {"id": credential.credential_id})
    engine.dispose()
    before = set(pipeline.config.outputs_dir.iterdir())
    with pytest.raises(ConsentRevoked):
        pipeline.render(_request(demo, clip, credential_id=credential.credential_id))
    assert set(pipeline.config.outputs_dir.iterdir()) == before
    report = pipeline.ledger.verify()
    assert not report.ok and report.table == "revocations"
