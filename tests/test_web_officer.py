"""The consent officer's tab handlers (issue 21, item 5), called in-process on the real Gradio app as
logged-in users: the identity tick before enrolling, the terms before accepting, the expiring list,
the renders under a credential, a reason for every revocation; and only for the consent officer.
Real Ed25519 keys and proofs, a real SQLite ledger."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from consent.credential import issue_consent
from consent.keys import did_key_from_public, generate_keypair
from studio.users import Role, create_user
from studio_support import small_pipeline


@pytest.fixture(scope="module")
def app(tmp_path_factory: Any) -> Any:
    from studio.web.app import build_app

    pipeline = small_pipeline(tmp_path_factory.mktemp("web-officer") / "home")
    for name, role in (("officer", Role.CONSENT_OFFICER), ("auditor", Role.AUDITOR)):
        create_user(pipeline.ledger, name, "correct horse battery", role, actor="admin")
    handlers = {f.api_name: f.fn for f in build_app(pipeline).fns.values() if f.api_name}
    return pipeline, handlers


def _as(user: str) -> gr.Request:
    return gr.Request(username=user)


def _credential_file(folder: Path, key: Any, *, days: int) -> Path:
    now = datetime.now(timezone.utc)
    document = issue_consent(
        issuer_key=key, subject_did=did_key_from_public(key.public_key()), subject_name="Ada <b>Lovelace</b>",
        grantor={"role": "self"}, grantee_name="Example Studio", reference_image_sha256=["ab" * 32],
        face_vector=[0.01 * i for i in range(128)], project="Engines", purposes=["museum-exhibit"],
        max_duration_seconds=45, valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=days),
        now=now - timedelta(days=1),
    )
    path = folder / f"{document['id'].rsplit(':', 1)[-1]}.json"
    path.write_text(json.dumps(document))
    return path


def test_enrol_needs_the_identity_tick_and_import_shows_the_terms_first(app: Any, tmp_path: Path) -> None:
    pipeline, h = app
    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    path = _credential_file(tmp_path, key, days=12)

    terms, accept = h["preview_credential"](str(path), _as("officer"))
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in terms and "<b>Lovelace" not in terms  # escaped
    assert "Engines" in terms and "museum-exhibit" in terms and "45 s" in terms
    assert "not enrolled" in terms and accept["interactive"] is False
    assert pipeline.ledger.list_credentials() == []

    with pytest.raises(gr.Error, match="I checked this issuer"):
        h["enroll"](did, "Ada Lovelace", False, _as("officer"))
    assert pipeline.ledger.list_issuers() == []
    message, _tick = h["enroll"](did, "Ada Lovelace", True, _as("officer"))
    assert "Enrolled issuer" in message

    terms, accept = h["preview_credential"](str(path), _as("officer"))
    assert "All checks pass" in terms and accept["interactive"] is True
    message, table = h["import_credential"](str(path), None, _as("officer"))
    assert "Imported credential" in message and any("Engines" in row for row in table)


def test_expiring_renders_and_revocation_with_a_reason(app: Any, tmp_path: Path) -> None:
    pipeline, h = app
    key = generate_keypair()
    pipeline.ledger.enroll_issuer(did_key_from_public(key.public_key()), name="Ada", actor="officer")
    soon = pipeline.ledger.import_credential(_credential_file(tmp_path, key, days=3).read_bytes(), actor="officer")
    later = pipeline.ledger.import_credential(_credential_file(tmp_path, key, days=200).read_bytes(), actor="officer")
    pipeline.ledger.render_started(render_id="r-soon", credential_id=soon.credential_id, operator="alice",
                                   purpose="museum-exhibit", project="Engines", inputs={})

    rows = h["expiring_credentials"](30, _as("officer"))
    ids = [row[-1] for row in rows]
    assert soon.credential_id in ids and later.credential_id not in ids
    assert rows[ids.index(soon.credential_id)][1:5] == [2, "Ada <b>Lovelace</b>", "Engines", 1]

    (render,) = h["renders_under_credential"](soon.credential_id, _as("officer"))
    assert render[:2] == ["r-soon", "alice"] and render[3] == "started"
    assert h["renders_under_credential"](later.credential_id, _as("officer")) == []

    with pytest.raises(gr.Error, match="Choose the credential"):
        h["revoke"](None, "no credential chosen", _as("officer"))
    with pytest.raises(gr.Error, match="reason"):
        h["revoke"](soon.credential_id, "  ", _as("officer"))
    message, _table = h["revoke"](soon.credential_id, "the subject withdrew consent", _as("officer"))
    assert "withdrew" in message and pipeline.ledger.revocation_status().is_revoked(soon.credential_id)
    assert soon.credential_id not in [row[-1] for row in h["expiring_credentials"](30, _as("officer"))]


@pytest.mark.parametrize("api_name", ["preview_credential", "expiring_credentials", "renders_under_credential"])
def test_only_the_consent_officer_reaches_the_new_endpoints(app: Any, api_name: str) -> None:
    _pipeline, h = app
    with pytest.raises(gr.Error, match="role"):
        h[api_name](None, _as("auditor"))
