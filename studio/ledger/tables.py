"""The ledger's tables as SQLAlchemy 2 typed declarative models.

``events`` and ``checkpoints`` form the tamper-evident log; the other tables hold the current
state (who is enrolled, which credentials are revoked, how each render ended) so that the
pipeline can answer questions without replaying the log. Every change to a state table is
written in the same transaction as the event that records it.

Datetimes are declared ``timezone=True``; PostgreSQL returns aware values, SQLite returns naive
ones that are UTC by construction. Read them through :func:`as_utc`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as a UTC-aware datetime (SQLite hands back naive UTC values)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    pass


class EventRow(Base):
    """One append-only log entry; ``hash`` covers every other column (see ``chain.event_hash``)."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64), index=True)  # decisions look events up by kind
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[str] = mapped_column(Text)  # RFC 8785 canonical JSON text
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class CheckpointRow(Base):
    """The studio key's signature over the chain head at ``seq``."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    studio_did: Mapped[str] = mapped_column(String(200))
    signature: Mapped[str] = mapped_column(String(128))  # hex Ed25519 signature
    prev_signature: Mapped[str] = mapped_column(String(128))  # the previous checkpoint's ("" for the first)


class IssuerRow(Base):
    """A consent issuer (subject, estate, guardian) enrolled by a consent officer."""

    __tablename__ = "issuers"

    did: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CredentialRow(Base):
    """An imported likeness-consent credential, stored as the exact JSON that was signed."""

    __tablename__ = "credentials"

    credential_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(200), index=True)
    subject_name: Mapped[str] = mapped_column(String(300))
    project: Mapped[str] = mapped_column(String(300))
    document: Mapped[str] = mapped_column(Text)  # JSON text
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    imported_by: Mapped[str] = mapped_column(String(200))


class RevocationRow(Base):
    __tablename__ = "revocations"

    credential_id: Mapped[str] = mapped_column(
        String(500), ForeignKey("credentials.credential_id"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(Text)
    revoked_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RenderRow(Base):
    """One render attempt: ``started`` then ``finished`` or ``failed``; or ``refused`` outright.

    A finished render whose output was lost before delivery becomes ``lost``.
    """

    __tablename__ = "renders"

    render_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    credential_id: Mapped[str | None] = mapped_column(String(500), nullable=True, index=True)
    operator: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)
    project: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    inputs: Mapped[str] = mapped_column(Text)  # JSON text: input file hashes and sizes
    output_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    watermark_payload: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON text
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(String(100), nullable=True)  # error class of a refusal
    # The render's lease (revision 0003): which process runs it, when it last said so, and when
    # its output was moved into place (None while finished but not yet delivered).
    owner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    owner_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
