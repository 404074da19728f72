"""Rollback attacks: cutting the newest events and checkpoints off the database (plain SQL).

A signed checkpoint note (C2SP tlog-checkpoint style) held outside the database, by an auditor
(`log checkpoint --out`, a render receipt) or in the data folder, must expose any cut back
below it, down to zero events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.config import StudioConfig
from studio.ledger import Ledger
from studio_support import run_cli as _run


def _cut(url: str, keep: int) -> None:
    """Delete every event after ``keep`` and every checkpoint that signed one (an intruder's rollback)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM checkpoints WHERE seq > :keep"), {"keep": keep})
            conn.execute(text("DELETE FROM events WHERE seq > :keep"), {"keep": keep})
    finally:
        engine.dispose()


def _append(ledger: Ledger, count: int) -> None:
    for i in range(count):
        ledger.append("note", {"i": i}, actor="seed")


@pytest.mark.parametrize("keep", [6, 0])
def test_log_verify_since_an_exported_checkpoint_finds_a_rollback(
    studio_home: Path, tmp_path: Path, capsys: Any, keep: int
) -> None:
    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        _append(ledger, 10)
        url = ledger.engine.url.render_as_string(hide_password=False)
    note = tmp_path / "checkpoint.txt"
    rc, out, _ = _run(capsys, "log", "checkpoint", "--out", str(note))
    assert rc == 0 and "checkpoint at seq 10" in out
    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        _append(ledger, 5)
    rc, out, _ = _run(capsys, "log", "verify", "--since", str(note))
    assert rc == 0 and "extends the checkpoint of size 10" in out
    held = studio_home / "ledger-checkpoint.txt"  # the data folder's copy: private, atomic
    assert held.stat().st_mode & 0o777 == 0o600 and held.read_text().split("\n")[1] == "10"

    receipt = tmp_path / "render.receipt.json"  # a receipt carries its render's checkpoint the same way
    receipt.write_text(json.dumps({"render_id": "r1", "ledger_checkpoint": note.read_text()}))
    assert _run(capsys, "log", "verify", "--since", str(receipt))[0] == 0

    _cut(url, keep)
    rc, out, err = _run(capsys, "log", "verify", "--since", str(note))
    assert rc == 1 and out == ""
    assert "rolled back" in err and "size 10" in err and "Traceback" not in err
    rc, out, err = _run(capsys, "log", "verify", "--since", str(receipt))
    assert rc == 1 and "rolled back" in err
    # The data folder's own copy of the latest checkpoint catches it without --since too.
    rc, out, err = _run(capsys, "log", "verify")
    assert rc == 1 and "rolled back" in err


def test_checkpoint_note_format_and_signature(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    import base64

    from studio.ledger import CheckpointInvalid, SignedCheckpoint

    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=1000) as ledger:
        _append(ledger, 3)
        made = ledger.signed_checkpoint()
        assert made.size == 3 and made.root_hash == ledger.events()[-1].hash
        note = made.to_note()
        lines = note.split("\n")
        assert lines[0] == f"avatar-studio/ledger/{ledger.studio_did}"
        assert lines[1] == "3" and base64.b64decode(lines[2]).hex() == made.root_hash
        assert lines[3] == "" and lines[4].startswith("\u2014 avatar-studio/ledger/") and note.endswith("\n")
        again = SignedCheckpoint.from_note(note)
        assert again == made
        assert ledger.verify_extends(again).ok

        forged = note.replace("\n3\n", "\n2\n")
        with pytest.raises(CheckpointInvalid):
            ledger.verify_extends(SignedCheckpoint.from_note(forged))
        with pytest.raises(CheckpointInvalid):
            SignedCheckpoint.from_note("not a checkpoint")


def test_a_checkpoint_of_another_studio_is_refused(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    from consent.keys import generate_keypair
    from studio.ledger import CheckpointInvalid

    with Ledger.open(backend_url, studio_key=generate_keypair(), checkpoint_every=1000) as other:
        _append(other, 2)
        foreign = other.signed_checkpoint()
    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=1000) as ledger:
        with pytest.raises(CheckpointInvalid) as info:
            ledger.verify_extends(foreign)
        assert "another studio" in info.value.user_message()


def test_verify_extends_finds_cuts_and_rewrites(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=4) as ledger:
        _append(ledger, 9)
        old = ledger.signed_checkpoint()
        _append(ledger, 3)
        assert ledger.verify_extends(old).ok
        _cut(backend_url, 7)
        report = ledger.verify_extends(old)
        assert not report.ok and "rolled back" in report.summary() and "size 9" in report.summary()
        _cut(backend_url, 0)
        report = ledger.verify_extends(old)
        assert not report.ok and "0 events" in report.summary()


def test_a_rewritten_history_below_the_checkpoint_is_found(studio_home: Path, tmp_path: Path, capsys: Any) -> None:
    from studio.ledger.chain import event_hash, time_text

    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        _append(ledger, 5)
        note = ledger.signed_checkpoint().to_note()
        url = ledger.engine.url.render_as_string(hide_password=False)
    saved = tmp_path / "old.txt"
    saved.write_text(note)
    # Cut to 3 events and grow a different, self-consistent history to 6 (hashes recomputed).
    _cut(url, 3)
    engine = create_engine(url)
    with engine.begin() as conn:
        prev = conn.execute(text("SELECT hash FROM events WHERE seq = 3")).scalar_one()
        for seq in range(4, 7):
            when = "2026-01-01 00:00:00.000000"
            digest = event_hash(seq, "note", "mallory", time_text(when), '{"i":0}', prev)
            conn.execute(
                text("INSERT INTO events (seq, kind, actor, created_at, data, prev_hash, hash) "
                     "VALUES (:s, 'note', 'mallory', :w, :d, :p, :h)"),
                {"s": seq, "w": when, "d": '{"i":0}', "p": prev, "h": digest},
            )
            prev = digest
    engine.dispose()
    rc, _, err = _run(capsys, "log", "verify", "--since", str(saved))
    assert rc == 1 and "seq 5" in err and "rewritten" in err


def test_a_forged_held_checkpoint_file_fails_verification(studio_home: Path, capsys: Any) -> None:
    from consent.keys import generate_keypair
    from studio.ledger import SignedCheckpoint

    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        _append(ledger, 3)
        ledger.signed_checkpoint()
        forged = SignedCheckpoint.sign(generate_keypair(), studio_did=ledger.studio_did, size=1, root_hash="0" * 64)
    (studio_home / "ledger-checkpoint.txt").write_text(forged.to_note())
    rc, out, err = _run(capsys, "log", "verify")
    assert rc == 1 and "verification failed" in err and "signature is invalid" in err


def test_a_checkpoint_file_that_cannot_be_written_does_not_undo_the_commit(tmp_path: Path, studio_key: Any) -> None:  # noqa: F811
    blocked = tmp_path / "ledger-checkpoint.txt"
    blocked.mkdir()  # a folder where the note should go: writing it fails after the commit
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    with Ledger.open(url, studio_key=studio_key, checkpoint_every=2, checkpoint_file=blocked) as ledger:
        _append(ledger, 3)
        assert ledger.signed_checkpoint().size == 3
        assert len(ledger.events()) == 3 and ledger.checkpoints()[-1].seq == 3
        report = ledger.verify()  # but verification says the held note is unreadable
        assert not report.ok and "cannot be read" in report.summary()


def test_cutting_a_revocation_off_the_tail_is_a_rollback(studio_home: Path, capsys: Any) -> None:
    """The revocation event is the newest one: deleting it with its row and checkpoint leaves a valid,
    shorter log; the checkpoint signed at the revocation and held in the data folder exposes it."""
    from consent.keys import did_key_from_public, generate_keypair
    from studio_support import issue_credential

    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        issuer = generate_keypair()
        ledger.enroll_issuer(did_key_from_public(issuer.public_key()), name="Eileen", actor="officer")
        credential = ledger.import_credential(issue_credential(issuer), actor="officer")
        ledger.revoke(credential.credential_id, reason="withdrawn", actor="officer")
        revoked_at = ledger.events()[-1].seq
        url = ledger.engine.url.render_as_string(hide_password=False)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM revocations"))
    engine.dispose()
    _cut(url, revoked_at - 1)
    rc, _, err = _run(capsys, "log", "verify")
    assert rc == 1 and "rolled back" in err and f"size {revoked_at}" in err
