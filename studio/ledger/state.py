"""The state tables as the chained events say they must be, and the comparison with what is stored.

The state tables (issuers, credentials, revocations, users) decide renders and requests, and
anyone with write access to the database can edit them without touching the chain. So every fact
that decides something is also in an event: ``replay`` rebuilds the expected state from the events
alone, ``first_difference`` compares it with the stored rows (``Ledger.verify``), and the
decision-time lookups in ``records.py`` replay the few events of one key before trusting a row.

Facts per event kind (older events lack the fields marked *new*; those are then not compared):

- ``issuer.enrolled`` {did}: the row exists, enrolled at the event's time, not withdrawn
- ``issuer.withdrawn`` {did}: withdrawn at the event's time
- ``credential.imported`` {credential_id, issuer, document_sha256}: the stored document's digest
- ``credential.revoked`` {credential_id, reason}: the revocation row exists
- ``user.added`` {username, role, password_sha256 *new*}, ``user.changed`` {username, role?,
  disabled?, password_sha256?}: role, disabled flag, SHA-256 of the stored password hash
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

STATE_KINDS = frozenset(
    {
        "issuer.enrolled",
        "issuer.withdrawn",
        "credential.imported",
        "credential.revoked",
        "user.added",
        "user.changed",
    }
)
ISSUER_KINDS = ("issuer.enrolled", "issuer.withdrawn")
USER_KINDS = ("user.added", "user.changed")
_TIME_SLACK_SECONDS = 1.0  # older versions stamped a row and its event with two clock reads


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_time(value: datetime | str | None) -> datetime | None:
    """A timestamp read raw (SQLite text, PostgreSQL ``to_char`` text, or a datetime) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True)
class IssuerState:
    seq: int
    enrolled_at: datetime
    withdrawn_at: datetime | None = None
    history: tuple[tuple[datetime, bool], ...] = ()  # (when, trusted from then on), in log order


@dataclass(frozen=True)
class CredentialState:
    seq: int
    issuer: str
    document_sha256: str


@dataclass(frozen=True)
class RevocationState:
    seq: int
    reason: str
    revoked_by: str


@dataclass(frozen=True)
class UserState:
    seq: int
    role: str
    disabled: bool = False
    password_sha256: str | None = None


@dataclass
class Expected:
    issuers: dict[str, IssuerState] = field(default_factory=dict)
    credentials: dict[str, CredentialState] = field(default_factory=dict)
    revocations: dict[str, RevocationState] = field(default_factory=dict)
    users: dict[str, UserState] = field(default_factory=dict)


StateEvent = tuple[int, str, str, "datetime | str", "str | dict[str, Any]"]
"""(seq, kind, actor, created_at, data) with data as canonical JSON text or already parsed."""


def replay(events: Iterable[StateEvent]) -> Expected:
    """Fold the state-changing events, in seq order, into the state the tables must hold."""
    state = Expected()
    for seq, kind, actor, created_at, raw in events:
        if kind not in STATE_KINDS:
            continue
        data = json.loads(raw) if isinstance(raw, str) else raw
        when = parse_time(created_at)
        assert when is not None
        if kind == "issuer.enrolled":
            old = state.issuers.get(data["did"])
            history = (old.history if old else ()) + ((when, True),)
            state.issuers[data["did"]] = IssuerState(seq, when, None, history)
        elif kind == "issuer.withdrawn" and data["did"] in state.issuers:
            old = state.issuers[data["did"]]
            history = old.history + ((when, False),)
            state.issuers[data["did"]] = replace(old, seq=seq, withdrawn_at=when, history=history)
        elif kind == "credential.imported":
            state.credentials[data["credential_id"]] = CredentialState(seq, data["issuer"], data["document_sha256"])
        elif kind == "credential.revoked":
            state.revocations[data["credential_id"]] = RevocationState(seq, data["reason"], actor)
        elif kind == "user.added":
            state.users[data["username"]] = UserState(seq, data["role"], False, data.get("password_sha256"))
        elif kind == "user.changed" and data["username"] in state.users:
            old_user = state.users[data["username"]]
            state.users[data["username"]] = UserState(
                seq,
                data.get("role", old_user.role),
                data.get("disabled", old_user.disabled),
                data.get("password_sha256", old_user.password_sha256),
            )
    return state


def trusted_at(issuer: IssuerState | None, now: datetime) -> bool:
    """Whether the log says this issuer was enrolled (and not withdrawn) at ``now``."""
    trusted = False
    for when, enrolled in issuer.history if issuer else ():
        if when > now:
            break
        trusted = enrolled
    return trusted


@dataclass(frozen=True)
class Difference:
    table: str
    key: str
    reason: str
    seq: int | None  # the event the row should match (None: no event explains the row)


def _times_differ(stored: datetime | None, expected: datetime | None) -> bool:
    if stored is None or expected is None:
        return stored is not expected
    return abs((stored - expected).total_seconds()) > _TIME_SLACK_SECONDS


def _when(value: datetime | None) -> str:
    return "none" if value is None else value.isoformat(timespec="seconds")


def issuer_difference(key: str, row: tuple[Any, ...] | None, expected: IssuerState | None) -> Difference | None:
    """``row`` is (did, enrolled_at, withdrawn_at) as read raw."""
    if expected is None:
        if row is None:
            return None
        return Difference("issuers", key, "no issuer.enrolled event explains this row (inserted)", None)
    if row is None:
        return Difference("issuers", key, f"row missing, enrolled at seq {expected.seq} (deleted)", expected.seq)
    enrolled_at, withdrawn_at = parse_time(row[1]), parse_time(row[2])
    if _times_differ(enrolled_at, expected.enrolled_at):
        reason = f"enrolled_at is {_when(enrolled_at)}, the log says {_when(expected.enrolled_at)}"
        return Difference("issuers", key, reason, expected.seq)
    if _times_differ(withdrawn_at, expected.withdrawn_at):
        return Difference(
            "issuers",
            key,
            f"withdrawn_at is {_when(withdrawn_at)}, the log says {_when(expected.withdrawn_at)} (seq {expected.seq})",
            expected.seq,
        )
    return None


def credential_difference(
    key: str, row: tuple[Any, ...] | None, expected: CredentialState | None
) -> Difference | None:
    """``row`` is (credential_id, issuer, document) as read raw."""
    if expected is None:
        if row is None:
            return None
        return Difference("credentials", key, "no credential.imported event explains this row (inserted)", None)
    if row is None:
        return Difference("credentials", key, f"row missing, imported at seq {expected.seq} (deleted)", expected.seq)
    if sha256_text(row[2]) != expected.document_sha256:
        reason = f"the stored document is not the one imported at seq {expected.seq} (edited)"
        return Difference("credentials", key, reason, expected.seq)
    if row[1] != expected.issuer:
        return Difference("credentials", key, f"issuer is {row[1]!r}, the log says {expected.issuer!r}", expected.seq)
    return None


def revocation_difference(
    key: str, row: tuple[Any, ...] | None, expected: RevocationState | None
) -> Difference | None:
    """``row`` is (credential_id, reason, revoked_by) as read raw."""
    if expected is None:
        if row is None:
            return None
        return Difference("revocations", key, "no credential.revoked event explains this row (inserted)", None)
    if row is None:
        return Difference("revocations", key, f"row missing, revoked at seq {expected.seq} (deleted)", expected.seq)
    if row[1] != expected.reason or row[2] != expected.revoked_by:
        reason = f"reason or revoked_by differ from seq {expected.seq} (edited)"
        return Difference("revocations", key, reason, expected.seq)
    return None


def user_difference(key: str, row: tuple[Any, ...] | None, expected: UserState | None) -> Difference | None:
    """``row`` is (username, password_hash, role, disabled) as read raw."""
    if expected is None:
        if row is None:
            return None
        return Difference("users", key, "no user.added event explains this row (inserted)", None)
    if row is None:
        return Difference("users", key, f"row missing, last changed at seq {expected.seq} (deleted)", expected.seq)
    if row[2] != expected.role:
        reason = f"role is {row[2]!r}, the log says {expected.role!r} (seq {expected.seq})"
        return Difference("users", key, reason, expected.seq)
    if bool(row[3]) != expected.disabled:
        reason = f"disabled is {bool(row[3])}, the log says {expected.disabled} (seq {expected.seq})"
        return Difference("users", key, reason, expected.seq)
    if expected.password_sha256 is not None and sha256_text(row[1]) != expected.password_sha256:
        reason = f"the password hash is not the one set at seq {expected.seq} (replaced)"
        return Difference("users", key, reason, expected.seq)
    return None


_CHECKS = (
    ("issuers", "issuers", issuer_difference),
    ("credentials", "credentials", credential_difference),
    ("revocations", "revocations", revocation_difference),
    ("users", "users", user_difference),
)


def first_difference(expected: Expected, rows: dict[str, list[tuple[Any, ...]]]) -> Difference | None:
    """The first stored row (table by table, in log order; inserted rows last) that the log does not explain."""
    for table, attribute, check in _CHECKS:
        wanted: dict[str, Any] = getattr(expected, attribute)
        stored = {row[0]: row for row in rows[table]}
        for key, state in sorted(wanted.items(), key=lambda item: item[1].seq):
            found = check(key, stored.get(key), state)
            if found is not None:
                return found
        for key in sorted(set(stored) - set(wanted)):
            found = check(key, stored[key], None)
            if found is not None:
                return found
    return None
