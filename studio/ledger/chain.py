"""The hash chain and its signed checkpoints: encodings, hashing and verification.

Pure functions over plain values, so that ``Ledger.verify`` and an external auditor working
from ``log export`` compute exactly the same thing.

Event hash (v1): SHA-256 over the UTF-8 bytes of ::

    avatar-studio/ledger/event/v1|<seq>|<len>:<kind>|<len>:<actor>|<created_at>|<len>:<data>|<len>:<prev_hash>

``<len>`` is the length of the following field in characters, which makes the encoding
unambiguous whatever the fields contain; ``created_at`` is the UTC ISO-8601 form with
microseconds (``2026-11-22T02:15:01.000123+00:00``); ``data`` is the RFC 8785 canonical JSON
text of the event's payload, hashed as stored; ``prev_hash`` is the previous event's hash (64
zeros for seq 1). It is a plain string format rather than JSON so that verification of
100,000 events costs well under a second of hashing.

Checkpoint signature: Ed25519 by the studio key over the compact JSON array
``["avatar-studio/ledger/checkpoint/v1", seq, head_hash, created_at, studio_did, prev_signature]``;
``prev_signature`` (the previous checkpoint's signature, "" for the first) chains the
checkpoints, so deleting one that is not the last is found too.

What verification can and cannot prove (see ``docs/ledger.md``): any edit, deletion, insertion or
reordering of events is found, as is any edited or forged checkpoint. Someone with write access
to the database can, however, rewrite or cut the tail *after the last checkpoint*: SHA-256 is
public, so a recomputed tail is self-consistent. Only events at or before a checkpoint carry the
studio key's signature; ``ChainReport.unprotected_tail`` says how many are not yet covered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS_HASH = "0" * 64
_SQLITE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")
_EVENT_DOMAIN = "avatar-studio/ledger/event/v1"
_CHECKPOINT_DOMAIN = "avatar-studio/ledger/checkpoint/v1"

EventTuple = tuple[int, str, str, "datetime | str", str, str, str]
"""(seq, kind, actor, created_at, data, prev_hash, hash) as read from the database."""
CheckpointTuple = tuple[int, int, str, "datetime | str", str, str, str]
"""(id, seq, head_hash, created_at, studio_did, signature, prev_signature) as read from the database."""


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    actor: str
    created_at: datetime
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    created_at: datetime
    studio_did: str
    signature: str
    prev_signature: str


@dataclass(frozen=True)
class ChainReport:
    """Result of ``Ledger.verify()``: a finding, never an exception.

    ``first_bad_seq`` names the first event that is not what was written (or, for a rewrite
    that is only visible against a checkpoint, the first seq of the affected range);
    ``reason`` says why in one sentence.
    """

    ok: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int = 0
    unprotected_tail: int = 0
    table: str | None = None  # a state table whose row disagrees with the events (the chain itself is intact)
    row_key: str | None = None  # that row's primary key

    def summary(self) -> str:
        if self.ok:
            return f"chain intact: {self.events_checked} events, {self.checkpoints_checked} checkpoints"
        if self.table is not None:
            return f"state table {self.table}, row {self.row_key!r}, disagrees with the log: {self.reason}"
        if self.first_bad_seq is None:
            return f"verification failed: {self.reason}"
        return f"chain broken at seq {self.first_bad_seq}: {self.reason}"


def canonical_data(data: dict[str, Any]) -> str:
    """RFC 8785 canonical JSON text of an event payload (rejects NaN and integers above 2**53)."""
    if not isinstance(data, dict):
        raise TypeError("event data must be a JSON object")
    return rfc8785.dumps(data).decode("utf-8")


def format_time(value: datetime) -> str:
    """The one textual form of a timestamp inside hashes and signatures."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _coerce_time(value: datetime | str) -> str:
    """``format_time`` of a value read raw from the database.

    PostgreSQL returns datetimes. SQLite returns the stored text, which SQLAlchemy always
    writes as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC); anything else in that column was not
    written by the ledger. Slicing that exact layout is injective, so any one-byte edit either
    breaks the layout (ValueError) or changes the hashed time.
    """
    if isinstance(value, datetime):
        if value.tzinfo is timezone.utc:
            return value.isoformat(timespec="microseconds")
        return format_time(value)
    if not isinstance(value, str) or len(value) != 26 or not _SQLITE_TIME.fullmatch(value):
        raise ValueError("not a ledger timestamp")
    return f"{value[:10]}T{value[11:]}+00:00"


def time_text(value: datetime | str) -> str:
    """A stored timestamp as hashed (see ``_coerce_time``), or the raw text when it is unreadable."""
    try:
        return _coerce_time(value)
    except (TypeError, ValueError):
        return str(value)


def event_hash(seq: int, kind: str, actor: str, created_at: str, data: str, prev_hash: str) -> str:
    """SHA-256 (hex) of one event; ``created_at`` already formatted by ``format_time``."""
    preimage = (
        f"{_EVENT_DOMAIN}|{seq}|{len(kind)}:{kind}|{len(actor)}:{actor}|{created_at}"
        f"|{len(data)}:{data}|{len(prev_hash)}:{prev_hash}"
    )
    return hashlib.sha256(preimage.encode("utf-8", "surrogatepass")).hexdigest()


def checkpoint_message(seq: int, head_hash: str, created_at: str, studio_did: str, prev_signature: str) -> bytes:
    fields = [_CHECKPOINT_DOMAIN, seq, head_hash, created_at, studio_did, prev_signature]
    return json.dumps(fields, separators=(",", ":")).encode("ascii")


def sign_checkpoint(
    key: Ed25519PrivateKey, *, seq: int, head_hash: str, created_at: datetime, studio_did: str, prev_signature: str
) -> str:
    message = checkpoint_message(seq, head_hash, format_time(created_at), studio_did, prev_signature)
    return key.sign(message).hex()


@dataclass(frozen=True)
class _Finding:
    seq: int
    reason: str


def _walk_events(rows: Iterable[EventTuple], watch: set[int]) -> tuple[int, int, dict[int, str], _Finding | None]:
    """Check links and hashes in seq order; stop at the first bad row."""
    expected, prev, checked = 1, GENESIS_HASH, 0
    heads: dict[int, str] = {}
    for seq, kind, actor, created_at, data, prev_hash, stored in rows:
        if seq != expected:
            gap = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
            return checked, expected - 1, heads, _Finding(expected, f"{gap} missing (rows deleted or renumbered)")
        checked += 1
        if prev_hash != prev:
            reason = "prev_hash does not match the previous event (rows inserted, deleted or reordered)"
            return checked, seq, heads, _Finding(seq, reason)
        try:
            when = _coerce_time(created_at)
        except (TypeError, ValueError):
            return checked, seq, heads, _Finding(seq, "created_at is unreadable (row edited)")
        if event_hash(seq, kind, actor, when, data, prev_hash) != stored:
            return checked, seq, heads, _Finding(seq, "hash does not match the row's contents (row edited)")
        if seq in watch:
            heads[seq] = stored
        prev, expected = stored, expected + 1
    return checked, expected - 1, heads, None


def _check_checkpoint(
    row: CheckpointTuple,
    *,
    key: Ed25519PublicKey,
    did: str,
    heads: dict[int, str],
    head_seq: int,
    previous_good: int,
    previous_signature: str,
) -> _Finding | None:
    """A bad checkpoint names its own seq; a rewrite it exposes names the start of its range."""
    _id, seq, head_hash, created_at, studio_did, signature, prev_signature = row
    if studio_did != did:
        return _Finding(seq, f"checkpoint at seq {seq} names another studio key (forged)")
    try:
        message = checkpoint_message(seq, head_hash, _coerce_time(created_at), studio_did, prev_signature)
        key.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return _Finding(seq, f"checkpoint at seq {seq} has an invalid signature (edited or forged)")
    if prev_signature != previous_signature:
        return _Finding(seq, f"checkpoint at seq {seq} does not follow the previous checkpoint (one was deleted)")
    if seq > head_seq:
        return _Finding(
            head_seq + 1, f"events after seq {head_seq} are gone but checkpoint at seq {seq} signed them (truncated)"
        )
    if heads.get(seq) != head_hash:
        return _Finding(
            previous_good + 1,
            f"events in seqs {previous_good + 1}..{seq} no longer match the head signed at checkpoint seq {seq} "
            "(rewritten)",
        )
    return None


def _check_held(held: tuple[int, str, str], heads: dict[int, str], head_seq: int) -> _Finding | None:
    """A head signed outside the database (size, root hash, where it came from) must still be in the log."""
    size, root, source = held
    if size > head_seq:
        return _Finding(
            head_seq + 1,
            f"the log was rolled back: it has {head_seq} events but {source} of size {size} signed more (truncated)",
        )
    if size > 0 and heads.get(size) != root:
        reason = f"event at seq {size} is not the one {source} of size {size} signed (history rewritten up to it)"
        return _Finding(size, reason)
    return None


def verify_chain(
    events: Iterable[EventTuple],
    checkpoints: list[CheckpointTuple],
    *,
    studio_key: Ed25519PublicKey,
    studio_did: str,
    held: tuple[int, str, str] | None = None,
) -> ChainReport:
    """Recompute every hash and link, check every checkpoint; report the first bad seq.

    ``held`` is (size, root hash, a name for it) of a checkpoint kept outside the database whose
    signature the caller has checked: the log must extend it (``SignedCheckpoint``).
    """
    ordered = sorted(checkpoints, key=lambda c: (c[1], c[0]))
    watch = {c[1] for c in ordered} | ({held[0]} if held else set())
    checked, head_seq, heads, event_finding = _walk_events(events, watch)
    if held is not None:
        held_finding = _check_held(held, heads, head_seq)
        if held_finding is not None and (event_finding is None or held_finding.seq < event_finding.seq):
            event_finding = held_finding
    finding, previous_good, previous_signature = event_finding, 0, ""
    checked_checkpoints = 0
    for row in ordered:
        if event_finding is not None and row[1] >= event_finding.seq:
            break  # this checkpoint covers rows already known bad; the earlier finding stands
        checked_checkpoints += 1
        problem = _check_checkpoint(
            row,
            key=studio_key,
            did=studio_did,
            heads=heads,
            head_seq=head_seq,
            previous_good=previous_good,
            previous_signature=previous_signature,
        )
        if problem is not None:
            if finding is None or problem.seq < finding.seq:
                finding = problem
            break
        previous_good, previous_signature = row[1], row[5]
    if finding is not None:
        return ChainReport(False, checked, checked_checkpoints, finding.seq, finding.reason, head_seq=head_seq)
    last_signed = ordered[-1][1] if ordered else 0
    return ChainReport(True, checked, checked_checkpoints, head_seq=head_seq, unprotected_tail=head_seq - last_signed)
