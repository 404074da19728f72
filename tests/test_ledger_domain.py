"""Domain operations: each writes its state row and its event together, or neither."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from consent.errors import ConsentRevoked, InvalidDid, SignatureInvalid, UnknownIssuer
from consent.keys import did_key_from_public, generate_keypair
from consent.verify import ConsentRequest, verify_consent
from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.ledger import (
    CredentialAlreadyRevoked,
    DuplicateCredential,
    DuplicateUser,
    IssuerAlreadyEnrolled,
    IssuerNotEnrolled,
    Ledger,
    UnknownCredential,
    UnknownRender,
)
from studio_support import issue_credential


@pytest.fixture()
def ledger(backend_url: str, studio_key: Any) -> Ledger:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=4) as opened:
        yield opened


def _kinds(ledger: Ledger) -> list[str]:
    return [e.kind for e in ledger.events()]


def test_enrol_withdraw_and_live_trust(ledger: Ledger) -> None:
    did = did_key_from_public(generate_keypair().public_key())
    trust = ledger.trust()
    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    assert not trust.is_trusted(did, now=now())
    ledger.enroll_issuer(did, name="Eileen M. Collins", actor="officer")
    assert trust.is_trusted(did, now=now())  # the same object sees the change
    assert not trust.is_trusted(did, now=now() - timedelta(days=1))  # not before enrolment
    with pytest.raises(IssuerAlreadyEnrolled):
        ledger.enroll_issuer(did, name="again", actor="officer")
    ledger.withdraw_issuer(did, actor="officer")
    assert not trust.is_trusted(did, now=now())
    with pytest.raises(IssuerNotEnrolled):
        ledger.withdraw_issuer(did, actor="officer")
    ledger.enroll_issuer(did, name="Eileen M. Collins", actor="officer")  # re-enrolment
    assert trust.is_trusted(did, now=now())
    assert _kinds(ledger) == ["issuer.enrolled", "issuer.withdrawn", "issuer.enrolled"]
    assert all("name" not in e.data for e in ledger.events())  # personal data stays out of the log
    assert [i.did for i in ledger.list_issuers()] == [did]
    assert ledger.verify().ok


def test_enrol_rejects_a_malformed_did(ledger: Ledger) -> None:
    with pytest.raises(InvalidDid):
        ledger.enroll_issuer("did:key:nope", name="x", actor="officer")
    assert ledger.events() == []


def test_import_revoke_and_verify_consent_against_the_ledger(ledger: Ledger) -> None:
    issuer = generate_keypair()
    document = issue_credential(issuer)
    did = did_key_from_public(issuer.public_key())
    request = ConsentRequest(purpose="film", project="Orbit", duration_seconds=10)

    with pytest.raises(UnknownIssuer):  # an issuer nobody enrolled cannot bring consent in (logged)
        ledger.import_credential(document, actor="officer")
    ledger.enroll_issuer(did, name="Eileen M. Collins", actor="officer")
    credential = ledger.import_credential(document, actor="officer")
    assert ledger.get_credential(credential.credential_id).document == document
    with pytest.raises(DuplicateCredential):
        ledger.import_credential(document, actor="officer")

    def decide() -> Any:
        return verify_consent(
            ledger.get_credential(credential.credential_id),
            request=request,
            trust=ledger.trust(),
            status=ledger.revocation_status(),
            likeness=[0.0] * 128,
            now=datetime.now(timezone.utc),
        )

    assert decide().credential.credential_id == credential.credential_id

    ledger.revoke(credential.credential_id, reason="subject withdrew consent", actor="officer")
    assert ledger.revocation_status().is_revoked(credential.credential_id)
    with pytest.raises(ConsentRevoked):
        decide()
    with pytest.raises(CredentialAlreadyRevoked):
        ledger.revoke(credential.credential_id, reason="again", actor="officer")
    with pytest.raises(UnknownCredential):
        ledger.revoke("urn:uuid:00000000-0000-0000-0000-000000000000", reason="x", actor="officer")
    with pytest.raises(UnknownCredential):
        ledger.get_credential("urn:uuid:00000000-0000-0000-0000-000000000000")

    (summary,) = ledger.list_credentials()
    assert summary.revoked and summary.subject_name == "Eileen M. Collins" and summary.project == "Orbit"
    assert _kinds(ledger) == [
        "credential.refused", "issuer.enrolled", "credential.imported", "credential.refused", "credential.revoked"
    ]
    assert ledger.verify().ok


def test_import_refuses_a_tampered_credential(ledger: Ledger) -> None:
    document = issue_credential(generate_keypair())
    document["credentialSubject"]["uses"]["maxDurationSeconds"] = 6000
    with pytest.raises(SignatureInvalid):
        ledger.import_credential(document, actor="officer")
    assert ledger.list_credentials() == []
    assert [(e.kind, e.data["error"]) for e in ledger.events()] == [("credential.refused", "SignatureInvalid")]


def test_render_lifecycle(ledger: Ledger) -> None:
    inputs = {"photo_sha256": "a" * 64, "driving_sha256": "b" * 64}
    payload = 0xBEEF_CAFE_F00D  # 48 bits, beyond 32-bit integers
    ledger.render_started(
        render_id="r1", credential_id="urn:uuid:x", operator="op", purpose="film", project="Orbit", inputs=inputs
    )
    assert ledger.find_render("r1").status == "started"
    receipt = {"output_sha256": "c" * 64, "watermark_payload": payload, "manifest": {"status": "Valid"}}
    ledger.render_finished(render_id="r1", receipt=receipt)
    done = ledger.find_render("r1")
    assert (done.status, done.output_sha256, done.receipt, done.inputs) == ("finished", "c" * 64, receipt, inputs)
    assert done.finished_at is not None and done.finished_at.tzinfo is not None
    assert ledger.find_render_by_payload(payload).render_id == "r1"
    assert ledger.find_render_by_payload(payload + 1) is None
    with pytest.raises(UnknownRender):
        ledger.render_finished(render_id="r1", receipt=receipt)  # already finished

    ledger.render_started(render_id="r2", credential_id="urn:uuid:x", operator="op", purpose="film", project="Orbit", inputs=inputs)
    ledger.render_failed(render_id="r2", reason="encoder crashed")
    assert (ledger.find_render("r2").status, ledger.find_render("r2").failure_reason) == ("failed", "encoder crashed")

    refused = ledger.render_refused(operator="op", credential_id=None, reason="issuer not enrolled", error="UnknownIssuer", inputs=inputs)
    record = ledger.find_render(refused)
    assert (record.status, record.error, record.failure_reason) == ("refused", "UnknownIssuer", "issuer not enrolled")

    ledger.render_started(render_id="r3", credential_id="urn:uuid:x", operator="op", purpose="film", project="Orbit", inputs=inputs)
    ledger.render_started(render_id="r4", credential_id="urn:uuid:x", operator="op", purpose="film", project="Orbit", inputs=inputs)
    assert ledger.mark_interrupted_renders() == 2
    assert {ledger.find_render(r).status for r in ("r3", "r4")} == {"failed"}
    assert ledger.mark_interrupted_renders() == 0
    assert _kinds(ledger) == [
        "render.started", "render.finished", "render.started", "render.failed", "render.refused",
        "render.started", "render.started", "render.failed", "render.failed",
    ]  # fmt: skip
    finished = ledger.events()[1]
    assert finished.data["watermark_payload_hex"] == "beefcafef00d"
    assert ledger.verify().ok
    assert ledger.find_render("nope") is None


def test_users_and_logins(ledger: Ledger) -> None:
    ledger.add_user("alice", password_hash="$argon2id$x", role="operator", actor="admin")
    with pytest.raises(DuplicateUser):
        ledger.add_user("alice", password_hash="$argon2id$y", role="admin", actor="admin")
    assert ledger.get_user("alice").last_login_at is None
    ledger.record_login("alice", ok=False)
    assert ledger.get_user("alice").last_login_at is None
    ledger.record_login("alice", ok=True)
    ledger.record_login("nobody", ok=False)
    user = ledger.get_user("alice")
    assert user.role == "operator" and not user.disabled and user.last_login_at is not None
    assert [u.username for u in ledger.list_users()] == ["alice"] and ledger.get_user("nobody") is None
    events = ledger.events()
    assert [(e.kind, e.data.get("ok")) for e in events] == [
        ("user.added", None), ("user.login", False), ("user.login", True), ("user.login", False)
    ]  # fmt: skip
    assert all("password_hash" not in e.data for e in events)
    assert [c.seq for c in ledger.checkpoints()] == [1, 4]  # user.added is signed at once, then every 4th


def test_a_failing_event_leaves_no_domain_row(ledger: Ledger) -> None:
    """The event cannot be encoded (NaN is not JSON): the render row must not survive either."""
    with pytest.raises(Exception):
        ledger.render_started(
            render_id="r9", credential_id="c", operator="op", purpose="film", project="p", inputs={"bad": float("nan")}
        )
    assert ledger.find_render("r9") is None and ledger.events() == []
    ledger.append("note", {"ok": True}, actor="a")  # the ledger is still usable
    assert ledger.verify().ok
