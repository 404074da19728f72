"""Attacks on the state tables: plain SQL edits that used to change a render decision unnoticed.

Each test edits the real database file (or PostgreSQL database) behind the ledger's back, then
checks both halves of the defence: ``Ledger.verify()`` names the row that disagrees with the
chained events, and the decision itself (revocation, trust, role, credential) fails closed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from consent.errors import ConsentRevoked, UnknownIssuer
from consent.keys import did_key_from_public, generate_keypair
from consent.verify import ConsentRequest, verify_consent
from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.ledger import Ledger, LedgerTampered
from studio_support import issue_credential


@pytest.fixture()
def ledger(backend_url: str, studio_key: Any) -> Ledger:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=1000) as opened:
        yield opened


def _sql(ledger: Ledger, statement: str, **params: Any) -> None:
    """Run ``statement`` on the database through a separate engine, as an intruder would."""
    engine = create_engine(ledger.engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def _enrolled_credential(ledger: Ledger) -> tuple[str, str]:
    issuer = generate_keypair()
    did = did_key_from_public(issuer.public_key())
    ledger.enroll_issuer(did, name="Eileen M. Collins", actor="officer")
    credential = ledger.import_credential(issue_credential(issuer), actor="officer")
    return did, credential.credential_id


def _decide(ledger: Ledger, credential_id: str) -> Any:
    return verify_consent(
        ledger.get_credential(credential_id),
        request=ConsentRequest(purpose="film", project="Orbit", duration_seconds=10),
        trust=ledger.trust(),
        status=ledger.revocation_status(),
        likeness=[0.0] * 128,
        now=datetime.now(timezone.utc),
    )


def test_deleting_a_revocation_row_does_not_bring_a_credential_back(ledger: Ledger) -> None:
    _did, credential_id = _enrolled_credential(ledger)
    ledger.revoke(credential_id, reason="subject withdrew", actor="officer")
    _sql(ledger, "DELETE FROM revocations WHERE credential_id = :id", id=credential_id)

    assert ledger.revocation_status().is_revoked(credential_id)
    with pytest.raises(ConsentRevoked):
        _decide(ledger, credential_id)
    report = ledger.verify()
    assert not report.ok
    assert report.table == "revocations" and report.row_key == credential_id
    assert "revocations" in report.summary() and credential_id in report.summary()


def test_deleting_an_issuer_withdrawal_does_not_restore_trust(ledger: Ledger) -> None:
    did, credential_id = _enrolled_credential(ledger)
    ledger.withdraw_issuer(did, actor="officer")
    _sql(ledger, "UPDATE issuers SET withdrawn_at = NULL WHERE did = :did", did=did)

    assert not ledger.trust().is_trusted(did, now=datetime.now(timezone.utc))
    with pytest.raises(UnknownIssuer):
        _decide(ledger, credential_id)
    report = ledger.verify()
    assert not report.ok and report.table == "issuers" and report.row_key == did
    assert "withdrawn" in report.summary()


def test_an_issuer_row_inserted_without_its_event_is_not_trusted(ledger: Ledger) -> None:
    did = did_key_from_public(generate_keypair().public_key())
    ledger.append("note", {"x": 1}, actor="seed")
    _sql(
        ledger,
        "INSERT INTO issuers (did, name, enrolled_at) VALUES (:did, 'mallory', :at)",
        did=did,
        at=datetime(2020, 1, 1, tzinfo=timezone.utc),
    )
    assert not ledger.trust().is_trusted(did, now=datetime.now(timezone.utc))
    report = ledger.verify()
    assert not report.ok and report.table == "issuers" and report.row_key == did


def test_editing_a_stored_credential_document_is_found(ledger: Ledger) -> None:
    _did, credential_id = _enrolled_credential(ledger)
    # Swap in another validly signed document under the same id (a different issuer's terms).
    other = issue_credential(generate_keypair(), credential_id=credential_id, purposes=("film", "advertising"))
    from studio.ledger.chain import canonical_data

    _sql(ledger, "UPDATE credentials SET document = :doc WHERE credential_id = :id", doc=canonical_data(other), id=credential_id)

    with pytest.raises(LedgerTampered):
        ledger.get_credential(credential_id)
    report = ledger.verify()
    assert not report.ok and report.table == "credentials" and report.row_key == credential_id
    assert "document" in report.summary()


def test_promoting_an_operator_to_admin_in_the_users_table(ledger: Ledger) -> None:
    from studio.users import PermissionDenied, Role, create_user, require_role

    create_user(ledger, "olivia", "correct horse battery", Role.OPERATOR, actor="admin")
    assert require_role(ledger, "olivia", Role.OPERATOR).role is Role.OPERATOR
    _sql(ledger, "UPDATE users SET role = 'admin' WHERE username = 'olivia'")

    with pytest.raises((LedgerTampered, PermissionDenied)):
        require_role(ledger, "olivia", Role.ADMIN)
    report = ledger.verify()
    assert not report.ok and report.table == "users" and report.row_key == "olivia"
    assert "role" in report.summary() and "admin" in report.summary()


def test_a_user_row_inserted_or_rekeyed_without_its_event(ledger: Ledger) -> None:
    from studio.users import Role, create_user, hash_password, require_role

    create_user(ledger, "olivia", "correct horse battery", Role.OPERATOR, actor="admin")
    _sql(
        ledger,
        "INSERT INTO users (username, password_hash, role, created_at, disabled) VALUES ('mallory', :h, 'admin', :at, :f)",
        h=hash_password("mallory's password"),
        at=datetime.now(timezone.utc),
        f=False,
    )
    with pytest.raises(LedgerTampered):
        require_role(ledger, "mallory", Role.ADMIN)
    report = ledger.verify()
    assert not report.ok and report.table == "users" and report.row_key == "mallory"

    _sql(ledger, "DELETE FROM users WHERE username = 'mallory'")
    assert ledger.verify().ok
    # Replacing a password hash (to log in as someone) is found too.
    _sql(ledger, "UPDATE users SET password_hash = :h WHERE username = 'olivia'", h=hash_password("mallory's password"))
    with pytest.raises(LedgerTampered):
        require_role(ledger, "olivia", Role.OPERATOR)
    report = ledger.verify()
    assert not report.ok and report.table == "users" and "password" in report.summary()


def test_untouched_state_verifies_and_decides_normally(ledger: Ledger) -> None:
    from studio.users import Role, create_user, require_role

    did, credential_id = _enrolled_credential(ledger)
    assert _decide(ledger, credential_id).credential.credential_id == credential_id
    create_user(ledger, "olivia", "correct horse battery", Role.OPERATOR, actor="admin")
    ledger.withdraw_issuer(did, actor="officer")
    ledger.enroll_issuer(did, name="again", actor="officer")
    ledger.revoke(credential_id, reason="done", actor="officer")
    assert require_role(ledger, "olivia", Role.OPERATOR).username == "olivia"
    report = ledger.verify()
    assert report.ok, report.summary()


def test_log_verify_names_the_deleted_revocation_row(studio_home: Path, capsys: Any) -> None:
    from studio.cli import main
    from studio.config import StudioConfig

    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        _did, credential_id = _enrolled_credential(ledger)
        ledger.revoke(credential_id, reason="subject withdrew", actor="officer")
        _sql(ledger, "DELETE FROM revocations")
    rc = main(["log", "verify"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert "revocations" in err and credential_id in err and "missing" in err


def test_user_changes_through_the_ledger_are_logged_and_verify(ledger: Ledger) -> None:
    from studio.users import PermissionDenied, Role, UnknownUser, create_user, hash_password, require_role

    create_user(ledger, "olivia", "correct horse battery", Role.OPERATOR, actor="admin")
    with pytest.raises(PermissionDenied):
        require_role(ledger, "olivia", Role.ADMIN)
    ledger.change_user("olivia", role="admin", actor="root")
    assert require_role(ledger, "olivia", Role.ADMIN).role is Role.ADMIN
    ledger.change_user("olivia", password_hash=hash_password("another long password"), actor="root")
    ledger.change_user("olivia", disabled=True, actor="root")
    with pytest.raises(UnknownUser):
        require_role(ledger, "olivia", Role.ADMIN)
    assert [e.kind for e in ledger.events()][-3:] == ["user.changed"] * 3
    assert ledger.verify().ok
    _sql(ledger, "UPDATE users SET disabled = :f WHERE username = 'olivia'", f=False)  # re-enable by hand
    with pytest.raises(LedgerTampered):
        require_role(ledger, "olivia", Role.ADMIN)
    report = ledger.verify()
    assert not report.ok and report.table == "users" and "disabled" in report.summary()
