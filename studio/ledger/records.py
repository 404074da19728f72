"""Read-only views of ledger rows handed to callers, and the live trust / revocation views."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from studio.ledger.database import translate_errors
from studio.ledger.state import ISSUER_KINDS, replay, trusted_at
from studio.ledger.tables import EventRow, IssuerRow, RenderRow, RevocationRow, UserRow, as_utc, as_utc_or_none


@dataclass(frozen=True)
class CredentialSummary:
    credential_id: str
    issuer: str
    subject_name: str
    project: str
    imported_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class IssuerRecord:
    did: str
    name: str
    enrolled_at: datetime
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class RenderRecord:
    """How one render attempt went; ``status`` is started | finished | failed | refused."""

    render_id: str
    status: str
    credential_id: str | None
    operator: str
    purpose: str | None
    project: str | None
    created_at: datetime
    finished_at: datetime | None
    inputs: dict[str, Any]
    output_sha256: str | None
    watermark_payload: int | None
    receipt: dict[str, Any] | None
    failure_reason: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: RenderRow) -> RenderRecord:
        return cls(
            render_id=row.render_id,
            status=row.status,
            credential_id=row.credential_id,
            operator=row.operator,
            purpose=row.purpose,
            project=row.project,
            created_at=as_utc(row.created_at),
            finished_at=as_utc_or_none(row.finished_at),
            inputs=json.loads(row.inputs),
            output_sha256=row.output_sha256,
            watermark_payload=row.watermark_payload,
            receipt=json.loads(row.receipt) if row.receipt is not None else None,
            failure_reason=row.failure_reason,
            error=row.error,
        )


# owner_host of a render admitted for the farm and not yet claimed: the queue holds it, not a process
QUEUED_OWNER = "(queued)"


@dataclass(frozen=True)
class RenderLease:
    """Who runs an open render (started, or finished but not yet delivered) and when it last said so."""

    render_id: str
    status: str
    owner_pid: int | None
    owner_host: str | None
    heartbeat_at: datetime  # the creation time for renders from before leases existed

    @classmethod
    def from_row(cls, row: RenderRow) -> RenderLease:
        beat = row.heartbeat_at if row.heartbeat_at is not None else row.created_at
        return cls(row.render_id, row.status, row.owner_pid, row.owner_host, as_utc(beat))


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    role: str
    created_at: datetime
    disabled: bool
    last_login_at: datetime | None

    @classmethod
    def from_row(cls, row: UserRow) -> UserRecord:
        return cls(
            username=row.username,
            password_hash=row.password_hash,
            role=row.role,
            created_at=as_utc(row.created_at),
            disabled=row.disabled,
            last_login_at=as_utc_or_none(row.last_login_at),
        )


def state_events(
    session: Session, kinds: tuple[str, ...], *, key: str | None = None, value: str | None = None
) -> list[tuple[Any, ...]]:
    """The chained events of these kinds, in log order, as ``state.replay`` takes them (by the kind index).

    With ``key``/``value``: only those whose payload has ``key == value``. Event data is stored as
    RFC 8785 text, so the SQL narrows on the exact ``"key":value`` text and parsing confirms it
    (a nested field of the same name cannot match).
    """
    query = (
        select(EventRow.seq, EventRow.kind, EventRow.actor, EventRow.created_at, EventRow.data)
        .where(EventRow.kind.in_(kinds))
        .order_by(EventRow.seq)
    )
    if key is None:
        return [tuple(row) for row in session.execute(query)]
    needle = f"{rfc8785.dumps(key).decode()}:{rfc8785.dumps(value).decode()}"
    query = query.where(EventRow.data.contains(needle, autoescape=True))
    return [tuple(row) for row in session.execute(query) if json.loads(row[4]).get(key) == value]


class LedgerTrust:
    """``consent.verify.IssuerTrust`` backed by the ledger, queried on every call.

    An issuer is trusted at ``now`` when it was enrolled at or before ``now`` and not
    withdrawn at or before ``now``: a withdrawal takes effect for every later render. Both the
    issuers row and the chained enrolment events must say so (fail closed: an edited or deleted
    row cannot restore trust; ``log verify`` names it).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def is_trusted(self, did: str, *, now: datetime) -> bool:
        with translate_errors(), Session(self._engine) as session:
            row = session.get(IssuerRow, did)
            if row is None or as_utc(row.enrolled_at) > now:
                return False
            if row.withdrawn_at is not None and now >= as_utc(row.withdrawn_at):
                return False
            events = state_events(session, ISSUER_KINDS, key="did", value=did)
            return trusted_at(replay(events).issuers.get(did), now)


class LedgerRevocations:
    """``consent.verify.RevocationStatus`` backed by the ledger, queried on every call.

    Revoked when the revocations row or a chained ``credential.revoked`` event says so (fail
    closed: deleting the row does not bring a credential back).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def is_revoked(self, credential_id: str) -> bool:
        with translate_errors(), Session(self._engine) as session:
            query = select(RevocationRow.credential_id).where(RevocationRow.credential_id == credential_id)
            if session.scalar(query) is not None:
                return True
            return bool(state_events(session, ("credential.revoked",), key="credential_id", value=credential_id))
