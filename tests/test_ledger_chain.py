"""The hash chain and its checkpoints: intact chains verify; every kind of tampering is named.

Tampering is done with plain SQL on the database file/server (the attacker's view), never
through the Ledger API. The ledger has 12 events with checkpoints at seq 5 and 10; row 7 sits
between two checkpoints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.ledger import Ledger
from studio.ledger.chain import GENESIS_HASH, canonical_data, event_hash, format_time

MIDDLE = 7


@pytest.fixture()
def filled(backend_url: str, studio_key: Any) -> Ledger:  # noqa: F811
    ledger = Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=5)
    for i in range(12):
        ledger.append("note", {"i": i, "text": f"event number {i}"}, actor=f"user{i % 3}")
    yield ledger
    ledger.close()


def _sql(ledger: Ledger, statement: str, **params: Any) -> list[Any]:
    """Run SQL on a separate raw connection, the way someone with database access would."""
    engine = create_engine(ledger.engine.url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def _flip(value: str, index: int | None = None) -> str:
    """Change exactly one character, keeping its class (digit, hex, letter) where possible."""
    i = len(value) // 2 if index is None else index % len(value)
    c = value[i]
    if c.isdigit():
        new = str((int(c) + 1) % 10)
    elif c in "abcdef":
        new = "a" if c != "a" else "b"
    elif c.isalpha():
        new = "x" if c.lower() != "x" else "y"
    else:
        new = "_" if c != "_" else "-"
    return value[:i] + new + value[i + 1 :]


def _is_pg(ledger: Ledger) -> bool:
    return ledger.engine.dialect.name == "postgresql"


def test_intact_chain_verifies(filled: Ledger) -> None:
    report = filled.verify()
    assert report.ok, report.reason
    assert (report.events_checked, report.checkpoints_checked, report.head_seq) == (12, 2, 12)
    assert report.unprotected_tail == 2
    events = filled.events()
    assert [e.seq for e in events] == list(range(1, 13))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))
    # the stored hash is the documented encoding of the row
    e = events[MIDDLE - 1]
    assert e.hash == event_hash(e.seq, e.kind, e.actor, format_time(e.created_at), canonical_data(e.data), e.prev_hash)
    assert e.created_at.tzinfo is not None
    assert [c.seq for c in filled.checkpoints()] == [5, 10]


def test_empty_ledger_verifies(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        report = ledger.verify()
    assert report.ok and report.events_checked == 0 and report.head_seq == 0


@pytest.mark.parametrize("column", ["kind", "actor", "data", "prev_hash", "hash"])
def test_one_byte_edit_of_a_text_column_is_named(filled: Ledger, column: str) -> None:
    (old,) = _sql(filled, f"SELECT {column} FROM events WHERE seq = :s", s=MIDDLE)[0]
    _sql(filled, f"UPDATE events SET {column} = :v WHERE seq = :s", v=_flip(old), s=MIDDLE)
    report = filled.verify()
    assert not report.ok
    assert report.first_bad_seq == MIDDLE, report.reason


def test_one_byte_edit_of_created_at_is_named(filled: Ledger) -> None:
    (old,) = _sql(filled, "SELECT CAST(created_at AS TEXT) FROM events WHERE seq = :s", s=MIDDLE)[0]
    cast = "CAST(:v AS TIMESTAMP WITH TIME ZONE)" if _is_pg(filled) else ":v"
    _sql(filled, f"UPDATE events SET created_at = {cast} WHERE seq = :s", v=_flip(old, -1), s=MIDDLE)
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE), report.reason
    assert "hash" in (report.reason or "")


def test_unreadable_created_at_is_named(filled: Ledger) -> None:
    if _is_pg(filled):
        pytest.skip("PostgreSQL's timestamptz cannot hold unreadable text")
    _sql(filled, "UPDATE events SET created_at = 'not a time' WHERE seq = :s", s=MIDDLE)
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE)
    assert "unreadable" in (report.reason or "")
    import io
    import json

    fp = io.StringIO()
    filled.export_jsonl(fp)  # an auditor can still export what is there
    assert json.loads(fp.getvalue().splitlines()[MIDDLE - 1])["created_at"] == "not a time"


def test_edited_seq_is_named(filled: Ledger) -> None:
    _sql(filled, "UPDATE events SET seq = 77 WHERE seq = :s", s=MIDDLE)
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE)
    assert "missing" in (report.reason or "")


def test_deleted_row_is_named(filled: Ledger) -> None:
    _sql(filled, "DELETE FROM events WHERE seq = :s", s=MIDDLE)
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE)
    assert "missing" in (report.reason or "")


def _shift_up_from(ledger: Ledger, seq: int) -> None:
    # two steps so that the primary key never collides mid-update
    _sql(ledger, "UPDATE events SET seq = -seq - 1 WHERE seq >= :s", s=seq)
    _sql(ledger, "UPDATE events SET seq = -seq WHERE seq < 0")


def test_inserted_row_is_named(filled: Ledger) -> None:
    _shift_up_from(filled, MIDDLE)
    (prev,) = _sql(filled, "SELECT hash FROM events WHERE seq = :s", s=MIDDLE - 1)[0]
    _sql(
        filled,
        "INSERT INTO events (seq, kind, actor, created_at, data, prev_hash, hash) "
        "VALUES (:s, 'note', 'mallory', CURRENT_TIMESTAMP, '{}', :p, :h)",
        s=MIDDLE,
        p=prev,
        h="f" * 64,
    )
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE), report.reason


def test_inserted_row_with_forged_hash_breaks_the_next_link(filled: Ledger) -> None:
    """SHA-256 is public: a well-forged inserted row is self-consistent, the row after it is not."""
    _shift_up_from(filled, MIDDLE)
    (prev,) = _sql(filled, "SELECT hash FROM events WHERE seq = :s", s=MIDDLE - 1)[0]
    when = "2026-01-01T00:00:00.000000+00:00"
    forged = event_hash(MIDDLE, "note", "mallory", when, "{}", prev)
    cast = "CAST(:t AS TIMESTAMP WITH TIME ZONE)" if _is_pg(filled) else ":t"
    stored_when = when if _is_pg(filled) else "2026-01-01 00:00:00.000000"
    _sql(
        filled,
        f"INSERT INTO events (seq, kind, actor, created_at, data, prev_hash, hash) "
        f"VALUES (:s, 'note', 'mallory', {cast}, '{{}}', :p, :h)",
        s=MIDDLE,
        t=stored_when,
        p=prev,
        h=forged,
    )
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE + 1), report.reason
    assert "prev_hash" in (report.reason or "")


def test_swapped_rows_are_named(filled: Ledger) -> None:
    a, b = MIDDLE, MIDDLE + 1
    _sql(filled, "UPDATE events SET seq = -1 WHERE seq = :a", a=a)
    _sql(filled, "UPDATE events SET seq = :a WHERE seq = :b", a=a, b=b)
    _sql(filled, "UPDATE events SET seq = :b WHERE seq = -1", b=b)
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE), report.reason


def test_consistent_rewrite_is_caught_by_the_next_checkpoint(filled: Ledger) -> None:
    """Edit row 7 and recompute every later hash: only the signed checkpoint at 10 can tell."""
    rows = _sql(filled, "SELECT seq, kind, actor, created_at, data, prev_hash FROM events WHERE seq >= 6 ORDER BY seq")
    prev = _sql(filled, "SELECT hash FROM events WHERE seq = 6")[0][0]
    for seq, kind, actor, created_at, data, _ in rows[1:]:
        if seq == MIDDLE:
            data = data.replace("event", "EVENT")
        when = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(created_at)
        new = event_hash(seq, kind, actor, format_time(when), data, prev)
        _sql(filled, "UPDATE events SET data = :d, prev_hash = :p, hash = :h WHERE seq = :s", d=data, p=prev, h=new, s=seq)
        prev = new
    report = filled.verify()
    assert not report.ok
    assert report.first_bad_seq == 6  # the range after the last good checkpoint (5) up to 10
    assert "rewritten" in (report.reason or "")


@pytest.mark.parametrize("column", ["head_hash", "signature", "studio_did", "created_at", "prev_signature"])
def test_edited_checkpoint_is_named(filled: Ledger, column: str) -> None:
    if column == "created_at":
        (old,) = _sql(filled, "SELECT CAST(created_at AS TEXT) FROM checkpoints WHERE seq = 10")[0]
        cast = "CAST(:v AS TIMESTAMP WITH TIME ZONE)" if _is_pg(filled) else ":v"
        _sql(filled, f"UPDATE checkpoints SET created_at = {cast} WHERE seq = 10", v=_flip(old, -1))
    else:
        (old,) = _sql(filled, f"SELECT {column} FROM checkpoints WHERE seq = 10")[0]
        _sql(filled, f"UPDATE checkpoints SET {column} = :v WHERE seq = 10", v=_flip(old, -2))
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, 10), report.reason
    assert "checkpoint at seq 10" in (report.reason or "")


def test_checkpoint_forged_with_another_key_is_named(filled: Ledger) -> None:
    from consent.keys import did_key_from_public, generate_keypair
    from studio.ledger.chain import sign_checkpoint

    head = filled.events()[-1]
    last_signature = filled.checkpoints()[-1].signature
    mallory = generate_keypair()
    for did in (did_key_from_public(mallory.public_key()), filled.studio_did):
        _sql(filled, "DELETE FROM checkpoints WHERE seq = 12")
        created = head.created_at
        sig = sign_checkpoint(
            mallory, seq=12, head_hash=head.hash, created_at=created, studio_did=did, prev_signature=last_signature
        )
        cast = "CAST(:t AS TIMESTAMP WITH TIME ZONE)" if _is_pg(filled) else ":t"
        stored = format_time(created) if _is_pg(filled) else created.strftime("%Y-%m-%d %H:%M:%S.%f")
        _sql(
            filled,
            "INSERT INTO checkpoints (seq, head_hash, created_at, studio_did, signature, prev_signature) "
            f"VALUES (12, :h, {cast}, :d, :g, :p)",
            h=head.hash,
            t=stored,
            d=did,
            g=sig,
            p=last_signature,
        )
        report = filled.verify()
        assert (report.ok, report.first_bad_seq) == (False, 12), report.reason


def test_deleted_checkpoint_is_named_at_the_next_one(filled: Ledger) -> None:
    _sql(filled, "DELETE FROM checkpoints WHERE seq = 5")
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, 10), report.reason
    assert "does not follow" in (report.reason or "")


def test_truncation_past_a_checkpoint_is_named(filled: Ledger) -> None:
    _sql(filled, "DELETE FROM events WHERE seq >= 9")
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, 9), report.reason
    assert "truncated" in (report.reason or "")


def test_limit_tail_after_last_checkpoint_is_unprotected(filled: Ledger) -> None:
    """Documented limit: cutting events after the last checkpoint cannot be detected."""
    _sql(filled, "DELETE FROM events WHERE seq >= 11")
    report = filled.verify()
    assert report.ok and report.head_seq == 10 and report.unprotected_tail == 0
    # ...which is why checkpoints are cheap to make on demand
    filled.append("note", {"after": "cut"}, actor="a")
    filled.checkpoint()
    _sql(filled, "DELETE FROM events WHERE seq = 11")
    assert filled.verify().first_bad_seq == 11


def test_export_lines_recompute_to_the_same_hashes(filled: Ledger) -> None:
    import io
    import json

    fp = io.StringIO()
    assert filled.export_jsonl(fp) == 12 + 2
    lines = [json.loads(line) for line in fp.getvalue().splitlines()]
    events = [line for line in lines if line["type"] == "event"]
    prev = GENESIS_HASH
    for line in events:
        assert line["prev_hash"] == prev
        assert event_hash(line["seq"], line["kind"], line["actor"], line["created_at"], line["data"], prev) == line["hash"]
        prev = line["hash"]
    assert [line["seq"] for line in lines if line["type"] == "checkpoint"] == [5, 10]


def test_sqlite_time_layout_edit_is_named(filled: Ledger) -> None:
    """'2026-11-22 02:15:01.000123' -> '2026-11-22T02:15:01.000123' is the same instant but not the stored bytes."""
    if _is_pg(filled):
        pytest.skip("PostgreSQL stores timestamps as values, not text")
    (old,) = _sql(filled, "SELECT created_at FROM events WHERE seq = :s", s=MIDDLE)[0]
    _sql(filled, "UPDATE events SET created_at = :v WHERE seq = :s", v=old[:10] + "T" + old[11:], s=MIDDLE)
    report = filled.verify()
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE), report.reason


def test_a_clock_in_another_zone_still_verifies(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    from datetime import timedelta, timezone

    paris = timezone(timedelta(hours=1))
    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=2, clock=lambda: datetime.now(paris)) as ledger:
        for i in range(3):
            ledger.append("note", {"i": i}, actor="a")
        assert ledger.verify().ok
        assert all(e.created_at.utcoffset() == timedelta(0) for e in ledger.events())
