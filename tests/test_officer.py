"""The consent officer's queries (issue 21, item 5): a credential's terms before import, the
credentials that expire soon, the renders under a credential. Real Ed25519 keys, real proofs,
a real ledger on SQLite and on the PostgreSQL server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from consent.credential import issue_consent
from consent.errors import MalformedCredential
from consent.keys import did_key_from_public, generate_keypair
from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.ledger import Ledger
from studio.ledger.errors import UnknownCredential
from studio.officer import expiring_credentials, preview_credential, renders_under

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture()
def ledger(backend_url: str, studio_key: Any) -> Any:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as opened:
        yield opened


def _credential(key: Any, *, valid_days: float | None = 90, **extra: Any) -> dict[str, Any]:
    did = did_key_from_public(key.public_key())
    fields: dict[str, Any] = dict(
        issuer_key=key, subject_did=did, subject_name="Eileen M. Collins",
        grantor={"role": "estate", "name": "Collins Estate", "represents": "Eileen M. Collins",
                 "chainOfTitle": "sha256:" + "cd" * 32},
        grantee_name="Example Studio", reference_image_sha256=["ab" * 32], face_vector=[0.01 * i for i in range(128)],
        project="Orbit", purposes=["film", "education"], max_duration_seconds=120, valid_from=NOW - timedelta(days=1),
        valid_until=None if valid_days is None else NOW + timedelta(days=valid_days), now=NOW - timedelta(days=1),
    )
    fields.update(extra)
    return issue_consent(**fields)


def _enrolled(ledger: Any, name: str = "Collins Estate") -> Any:
    key = generate_keypair()
    ledger.enroll_issuer(did_key_from_public(key.public_key()), name=name, actor="officer")
    return key


def test_preview_shows_the_terms_and_stores_nothing(ledger: Any) -> None:
    key = generate_keypair()
    document = _credential(key)
    raw = json.dumps(document).encode()
    before = len(ledger.events())

    terms = preview_credential(raw, ledger=ledger, now=NOW)

    assert len(ledger.events()) == before and ledger.list_credentials() == []  # nothing stored, nothing logged
    rows = dict(terms.lines())
    assert rows["Subject"].startswith("Eileen M. Collins (did:key:")
    assert rows["Granted by"] == "estate: Collins Estate (for Eileen M. Collins)"
    assert rows["Project"] == "Orbit" and rows["Purposes"] == "film, education"
    assert rows["Longest output"] == "120 s" and rows["AI label"] == "required on every frame"
    assert rows["Valid until"].endswith("(in 90 days)")
    assert rows["Signature"].startswith("valid")
    # Its issuer was never enrolled: the officer is told what to do before accepting.
    assert not terms.acceptable
    assert terms.problems == [
        "its issuer is not enrolled with this studio: check the issuer's identity and enrol it first"
    ]
    assert "NOT enrolled" in rows["Issuer"]


def test_preview_of_an_acceptable_credential_then_of_the_imported_one(ledger: Any) -> None:
    key = _enrolled(ledger)
    raw = json.dumps(_credential(key)).encode()

    terms = preview_credential(raw, ledger=ledger, now=NOW)
    assert terms.acceptable, terms.problems
    assert dict(terms.lines())["Issuer"].startswith("Collins Estate (did:key:")
    assert terms.to_dict()["days_left"] == 90

    ledger.import_credential(raw, actor="officer")
    problems = preview_credential(raw, ledger=ledger, now=NOW).problems
    assert problems == ["a credential with this id was already imported"]


def test_preview_names_a_broken_signature_and_an_expired_credential(ledger: Any) -> None:
    key = _enrolled(ledger)
    forged = _credential(key)
    forged["credentialSubject"]["uses"]["project"] = "Something else"  # changed after signing
    terms = preview_credential(json.dumps(forged), ledger=ledger, now=NOW)
    assert terms.signature_ok is False
    assert dict(terms.lines())["Signature"] == "INVALID"
    assert any(p.startswith("the signature does not verify") for p in terms.problems)

    later = NOW + timedelta(days=91)
    expired = preview_credential(json.dumps(_credential(key)), ledger=ledger, now=later)
    assert "it has already expired: no render can use it" in expired.problems
    assert dict(expired.lines())["Valid until"].endswith("(EXPIRED)")


def test_preview_of_a_malformed_file_raises_the_consent_error(ledger: Any) -> None:
    with pytest.raises(MalformedCredential):
        preview_credential(b'{"id": "urn:uuid:1"}', ledger=ledger, now=NOW)


def test_expiring_credentials_lists_active_ones_within_the_window_soonest_first(ledger: Any) -> None:
    key = _enrolled(ledger)
    ids = {}
    for name, days in (("in20", 20), ("in5", 5), ("in60", 60), ("forever", None), ("revoked", 3)):
        ids[name] = ledger.import_credential(_credential(key, valid_days=days), actor="officer").credential_id
    ledger.revoke(ids["revoked"], reason="the estate withdrew consent", actor="officer")
    ledger.render_started(render_id="r1", credential_id=ids["in5"], operator="op", purpose="film", project="Orbit",
                          inputs={})

    soon = expiring_credentials(ledger, within_days=30, now=NOW)

    assert [e.credential_id for e in soon] == [ids["in5"], ids["in20"]]
    assert [e.days_left for e in soon] == [5, 20]
    assert [e.renders for e in soon] == [1, 0]
    assert [e.credential_id for e in expiring_credentials(ledger, within_days=90, now=NOW)][-1] == ids["in60"]
    # Five days on, the first has expired: it is no longer "expiring soon".
    assert [e.credential_id for e in expiring_credentials(ledger, within_days=30, now=NOW + timedelta(days=6))] == [
        ids["in20"]
    ]


def test_renders_under_a_credential_lists_every_attempt_newest_first(ledger: Any) -> None:
    key = _enrolled(ledger)
    first = ledger.import_credential(_credential(key), actor="officer").credential_id
    other = ledger.import_credential(_credential(key), actor="officer").credential_id
    ledger.render_started(render_id="a1", credential_id=first, operator="alice", purpose="film", project="Orbit",
                          inputs={})
    ledger.render_finished(render_id="a1", receipt={"output_sha256": "0" * 64, "watermark_payload": 7})
    ledger.render_started(render_id="b1", credential_id=other, operator="bob", purpose="film", project="Orbit",
                          inputs={})
    refused = ledger.render_refused(operator="carol", credential_id=first, reason="purpose not covered",
                                    error="PurposeNotCovered", inputs={})

    renders = renders_under(ledger, first)

    assert [(r.render_id, r.operator, r.status) for r in renders] == [(refused, "carol", "refused"),
                                                                      ("a1", "alice", "finished")]
    assert [r.render_id for r in renders_under(ledger, other)] == ["b1"]
    with pytest.raises(UnknownCredential):
        renders_under(ledger, "urn:uuid:never-imported")
