"""``Ledger``: the studio's tamper-evident record of consent and renders.

Every domain change (enrolment, credential import, revocation, render, user, login) writes its
state row and its hash-chained event in one transaction that holds the append lock, so the state
tables and the log never disagree and concurrent writers never fork the chain.

>>> ledger = Ledger.open("sqlite:///ledger.sqlite3", studio_key=key)   # doctest: +SKIP
>>> ledger.enroll_issuer(did, name="Jane Doe", actor="officer")       # doctest: +SKIP
>>> ledger.verify().ok                                                # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from studio.ledger import database
from studio.ledger.chain import (
    GENESIS_HASH,
    ChainReport,
    Checkpoint,
    Event,
    canonical_data,
    event_hash,
    format_time,
    sign_checkpoint,
    time_text,
    verify_chain,
)
from studio.ledger.errors import (
    CredentialAlreadyRevoked,
    DuplicateCredential,
    DuplicateUser,
    IssuerAlreadyEnrolled,
    IssuerNotEnrolled,
    LedgerEmpty,
    LedgerNotMigrated,
    UnknownCredential,
    UnknownRender,
)
from studio.ledger.records import (
    CredentialSummary,
    IssuerRecord,
    LedgerRevocations,
    LedgerTrust,
    RenderLease,
    RenderRecord,
    UserRecord,
)
from studio.ledger.tables import (
    CheckpointRow,
    CredentialRow,
    EventRow,
    IssuerRow,
    RenderRow,
    RevocationRow,
    UserRow,
    as_utc,
    as_utc_or_none,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from consent.credential import LikenessConsent
    from studio.config import StudioConfig
    from studio.receipt import Receipt

_Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _event_from_row(row: EventRow) -> Event:
    return Event(row.seq, row.kind, row.actor, as_utc(row.created_at), json.loads(row.data), row.prev_hash, row.hash)


def _checkpoint_from_row(row: CheckpointRow) -> Checkpoint:
    return Checkpoint(row.seq, row.head_hash, as_utc(row.created_at), row.studio_did, row.signature, row.prev_signature)


class Ledger:
    """The hash-chained, checkpoint-signed log plus the state tables it explains.

    Build it with :meth:`open` (any SQLAlchemy URL) or :meth:`from_config`.
    """

    def __init__(self, *, engine: Engine, studio_key: Ed25519PrivateKey, checkpoint_every: int, clock: _Clock) -> None:
        from consent.keys import did_key_from_public

        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._engine = engine
        self._key = studio_key
        self._did = did_key_from_public(studio_key.public_key())
        self._checkpoint_every = checkpoint_every
        self._clock = clock

    # --- construction -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        studio_key: Ed25519PrivateKey,
        checkpoint_every: int = 100,
        upgrade: bool = True,
        busy_timeout: float = 10.0,
        clock: _Clock = _utcnow,
    ) -> "Ledger":
        """Connect, migrate (unless ``upgrade=False``, which demands an up-to-date schema)."""
        if not upgrade and _missing_sqlite_file(url):
            raise LedgerNotMigrated("no ledger database exists yet.")
        engine = database.create_ledger_engine(url, busy_timeout=busy_timeout)
        try:
            if upgrade:
                database.upgrade(engine)
            else:
                database.ensure_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine=engine, studio_key=studio_key, checkpoint_every=checkpoint_every, clock=clock)

    @classmethod
    def from_config(cls, config: StudioConfig, *, upgrade: bool = True) -> "Ledger":
        """The ledger of a data folder, signed with that folder's studio key."""
        from studio.identity import load_or_create_studio_key

        config.home.mkdir(parents=True, exist_ok=True)
        return cls.open(config.sqlalchemy_url, studio_key=load_or_create_studio_key(config), upgrade=upgrade)

    @staticmethod
    def upgrade(url: str) -> bool:
        """Apply pending migrations (``avatar-studio db upgrade``); True when any were applied."""
        engine = database.create_ledger_engine(url, busy_timeout=30.0)
        try:
            return database.upgrade(engine)
        finally:
            engine.dispose()

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def studio_did(self) -> str:
        return self._did

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- the chain ----------------------------------------------------------------------

    def _now(self) -> datetime:
        # SQLite stores wall-clock digits without an offset: only UTC round-trips exactly.
        return self._clock().astimezone(timezone.utc)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """One write transaction holding the append lock; domain rows and events commit together."""
        with database.write(self._engine) as connection, Session(bind=connection) as session:
            yield session
            session.flush()

    def _append(self, session: Session, kind: str, data: dict[str, Any], actor: str) -> Event:
        head = session.execute(select(EventRow.seq, EventRow.hash).order_by(EventRow.seq.desc()).limit(1)).first()
        seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
        now = self._now()
        text = canonical_data(data)
        digest = event_hash(seq, kind, actor, format_time(now), text, prev)
        session.add(EventRow(seq=seq, kind=kind, actor=actor, created_at=now, data=text, prev_hash=prev, hash=digest))
        if seq % self._checkpoint_every == 0:
            self._add_checkpoint(session, seq, digest, now)
        return Event(seq, kind, actor, now, data, prev, digest)

    def _add_checkpoint(self, session: Session, seq: int, head_hash: str, now: datetime) -> Checkpoint:
        last = session.scalar(select(CheckpointRow.signature).order_by(CheckpointRow.id.desc()).limit(1)) or ""
        signature = sign_checkpoint(
            self._key, seq=seq, head_hash=head_hash, created_at=now, studio_did=self._did, prev_signature=last
        )
        row = CheckpointRow(
            seq=seq,
            head_hash=head_hash,
            created_at=now,
            studio_did=self._did,
            signature=signature,
            prev_signature=last,
        )
        session.add(row)
        return Checkpoint(seq, head_hash, now, self._did, signature, last)

    def append(self, kind: str, data: dict[str, Any], *, actor: str) -> Event:
        """Append one event (low level: domain methods below also update their tables)."""
        with self._transaction() as session:
            return self._append(session, kind, data, actor)

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now (also happens every ``checkpoint_every`` events)."""
        with self._transaction() as session:
            head = session.execute(select(EventRow.seq, EventRow.hash).order_by(EventRow.seq.desc()).limit(1)).first()
            if head is None:
                raise LedgerEmpty("the ledger has no events to checkpoint yet")
            return self._add_checkpoint(session, head.seq, head.hash, self._now())

    @contextmanager
    def _snapshot(self) -> Iterator[tuple[list[tuple[Any, ...]], Generator[tuple[Any, ...], None, None]]]:
        """Checkpoints and a stream of events from one consistent snapshot, read raw and untyped.

        Raw DB-API rows: SQLite's stored timestamp text is checked byte for byte, unreadable
        values do not abort the read, and 100,000 rows cost no ORM or Row objects.
        """
        with database.translate_errors(), self._engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                raw = connection.connection.dbapi_connection
                assert raw is not None
                cursor = raw.cursor()
                try:
                    cursor.execute(_select(_SELECT_CHECKPOINTS, postgres=postgres))
                    checkpoints = [tuple(row) for row in cursor.fetchall()]
                finally:
                    cursor.close()
                checkpoints.sort(key=lambda c: (c[1], c[0]))
                rows = _stream(raw, _select(_SELECT_EVENTS, postgres=postgres), postgres=postgres)
                try:
                    yield checkpoints, rows
                finally:
                    rows.close()

    def verify(self) -> ChainReport:
        """Recompute every hash, link and checkpoint signature from one consistent snapshot."""
        with self._snapshot() as (checkpoints, rows):
            return verify_chain(
                rows,  # type: ignore[arg-type]
                checkpoints,  # type: ignore[arg-type]
                studio_key=self._key.public_key(),
                studio_did=self._did,
            )

    def export_jsonl(self, fp: IO[str]) -> int:
        """Write every event, then every checkpoint, as JSON lines; returns the number of lines.

        Values are exported as stored (also from a tampered database), with ``data`` as the
        exact canonical text that was hashed, so an auditor can recompute the chain with
        ``studio.ledger.chain`` alone.
        """
        count = 0
        with self._snapshot() as (checkpoints, rows):
            for seq, kind, actor, created_at, data, prev_hash, digest in rows:
                line = {
                    "type": "event",
                    "seq": seq,
                    "kind": kind,
                    "actor": actor,
                    "created_at": time_text(created_at),
                    "data": data,
                    "prev_hash": prev_hash,
                    "hash": digest,
                }
                fp.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
            for _id, seq, head_hash, created_at, did, signature, prev_signature in checkpoints:
                line = {
                    "type": "checkpoint",
                    "seq": seq,
                    "head_hash": head_hash,
                    "created_at": time_text(created_at),
                    "studio_did": did,
                    "signature": signature,
                    "prev_signature": prev_signature,
                }
                fp.write(json.dumps(line) + "\n")
                count += 1
        return count

    def events(self, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        query = select(EventRow).where(EventRow.seq > after_seq).order_by(EventRow.seq).limit(limit)
        with database.translate_errors(), Session(self._engine) as session:
            return [_event_from_row(row) for row in session.scalars(query)]

    def checkpoints(self) -> list[Checkpoint]:
        with database.translate_errors(), Session(self._engine) as session:
            rows = session.scalars(select(CheckpointRow).order_by(CheckpointRow.seq, CheckpointRow.id))
            return [_checkpoint_from_row(row) for row in rows]

    # --- issuers ------------------------------------------------------------------------

    def enroll_issuer(self, did: str, *, name: str, actor: str) -> None:
        """Trust ``did`` to issue consent from now on (re-enrols a withdrawn issuer)."""
        from consent.keys import public_key_from_did

        public_key_from_did(did)  # raises InvalidDid (a ConsentError) for anything but an Ed25519 did:key
        with self._transaction() as session:
            now = self._now()
            row = session.get(IssuerRow, did)
            if row is not None and row.withdrawn_at is None:
                raise IssuerAlreadyEnrolled("this issuer is already enrolled")
            if row is None:
                session.add(IssuerRow(did=did, name=name, enrolled_at=now))
            else:
                row.name, row.enrolled_at, row.withdrawn_at = name, now, None
            # The name stays out of the append-only log: it is personal data that may have to be erased.
            self._append(session, "issuer.enrolled", {"did": did}, actor)

    def withdraw_issuer(self, did: str, *, actor: str) -> None:
        """Stop trusting ``did``: credentials it issued no longer verify for new renders."""
        with self._transaction() as session:
            row = session.get(IssuerRow, did)
            if row is None or row.withdrawn_at is not None:
                raise IssuerNotEnrolled("this issuer is not enrolled")
            row.withdrawn_at = self._now()
            self._append(session, "issuer.withdrawn", {"did": did}, actor)

    def list_issuers(self) -> list[IssuerRecord]:
        with database.translate_errors(), Session(self._engine) as session:
            rows = session.scalars(select(IssuerRow).order_by(IssuerRow.enrolled_at))
            return [IssuerRecord(r.did, r.name, as_utc(r.enrolled_at), as_utc_or_none(r.withdrawn_at)) for r in rows]

    def trust(self) -> LedgerTrust:
        """An ``IssuerTrust`` that asks the database on every call (withdrawals apply at once)."""
        return LedgerTrust(self._engine)

    # --- credentials and revocation -----------------------------------------------------

    def import_credential(self, document: dict[str, Any], *, actor: str) -> LikenessConsent:
        """Parse strictly, check the proof, store the exact document; refuses duplicates."""
        from consent.credential import LikenessConsent
        from consent.errors import VerificationMethodMismatch
        from consent.proof import verify_proof

        credential = LikenessConsent.from_document(document)
        if verify_proof(document).controller != credential.issuer:
            raise VerificationMethodMismatch("the consent was not signed with the issuer's key")
        text = canonical_data(document)
        with self._transaction() as session:
            if session.get(CredentialRow, credential.credential_id) is not None:
                raise DuplicateCredential("a credential with this id was already imported")
            session.add(
                CredentialRow(
                    credential_id=credential.credential_id,
                    issuer=credential.issuer,
                    subject_name=credential.subject_name,
                    project=credential.project,
                    document=text,
                    imported_at=self._now(),
                    imported_by=actor,
                )
            )
            data = {
                "credential_id": credential.credential_id,
                "issuer": credential.issuer,
                "document_sha256": _sha256_text(text),
            }
            self._append(session, "credential.imported", data, actor)
        return credential

    def get_credential(self, credential_id: str) -> LikenessConsent:
        from consent.credential import LikenessConsent

        with database.translate_errors(), Session(self._engine) as session:
            row = session.get(CredentialRow, credential_id)
            if row is None:
                raise UnknownCredential("no credential with this id was imported")
            return LikenessConsent.from_document(json.loads(row.document))

    def list_credentials(self) -> list[CredentialSummary]:
        query = (
            select(CredentialRow, RevocationRow.revoked_at)
            .outerjoin(RevocationRow, RevocationRow.credential_id == CredentialRow.credential_id)
            .order_by(CredentialRow.imported_at)
        )
        with database.translate_errors(), Session(self._engine) as session:
            return [
                CredentialSummary(
                    credential_id=row.credential_id,
                    issuer=row.issuer,
                    subject_name=row.subject_name,
                    project=row.project,
                    imported_at=as_utc(row.imported_at),
                    revoked_at=as_utc_or_none(at),
                )
                for row, at in session.execute(query)
            ]

    def revoke(self, credential_id: str, *, reason: str, actor: str) -> None:
        """Revoke for good: every later verification of this credential fails."""
        with self._transaction() as session:
            if session.get(CredentialRow, credential_id) is None:
                raise UnknownCredential("no credential with this id was imported")
            if session.get(RevocationRow, credential_id) is not None:
                raise CredentialAlreadyRevoked("this credential is already revoked")
            revocation = RevocationRow(credential_id=credential_id, reason=reason, revoked_by=actor, revoked_at=self._now())
            session.add(revocation)
            self._append(session, "credential.revoked", {"credential_id": credential_id, "reason": reason}, actor)

    def revocation_status(self) -> LedgerRevocations:
        """A ``RevocationStatus`` that asks the database on every call."""
        return LedgerRevocations(self._engine)

    # --- renders ------------------------------------------------------------------------

    def render_started(
        self,
        *,
        render_id: str,
        credential_id: str,
        operator: str,
        purpose: str,
        project: str,
        inputs: dict[str, Any],
        owner_pid: int | None = None,
        owner_host: str | None = None,
    ) -> None:
        """Open a render; ``owner_pid``/``owner_host`` take its lease (see ``heartbeat``)."""
        with self._transaction() as session:
            if session.get(RenderRow, render_id) is not None:
                raise ValueError(f"render id {render_id} was used before")
            now = self._now()
            session.add(
                RenderRow(
                    render_id=render_id,
                    status="started",
                    credential_id=credential_id,
                    operator=operator,
                    purpose=purpose,
                    project=project,
                    created_at=now,
                    inputs=json.dumps(inputs, sort_keys=True),
                    owner_pid=owner_pid,
                    owner_host=owner_host,
                    heartbeat_at=now if owner_pid is not None else None,
                )
            )
            data = {
                "render_id": render_id,
                "credential_id": credential_id,
                "purpose": purpose,
                "project": project,
                "inputs": inputs,
            }
            self._append(session, "render.started", data, operator)

    def render_finished(self, *, render_id: str, receipt: Receipt | dict[str, Any]) -> None:
        """Close a started render; ``receipt`` must hold ``output_sha256`` and ``watermark_payload`` (int).

        The receipt's exact canonical bytes (``Receipt.text``) are stored and hashed, so the file
        the studio delivers hashes to the event's ``receipt_sha256``.
        """
        from studio.receipt import Receipt

        frozen = receipt if isinstance(receipt, Receipt) else Receipt.freeze(receipt)
        fields = frozen.fields
        output_sha256, payload = fields["output_sha256"], fields["watermark_payload"]
        if not isinstance(payload, int) or payload < 0:
            raise ValueError("receipt['watermark_payload'] must be a non-negative int")
        receipt_text = frozen.text.decode("utf-8")
        with self._transaction() as session:
            row = self._started(session, render_id)
            row.status, row.finished_at = "finished", self._now()
            row.output_sha256, row.watermark_payload, row.receipt = output_sha256, payload, receipt_text
            data = {
                "render_id": render_id,
                "output_sha256": output_sha256,
                "watermark_payload_hex": format(payload, "x"),  # hex: payloads may exceed JSON's 2**53
                "receipt_sha256": _sha256_text(receipt_text),
            }
            self._append(session, "render.finished", data, row.operator)

    def render_failed(self, *, render_id: str, reason: str) -> None:
        with self._transaction() as session:
            row = self._started(session, render_id)
            row.status, row.finished_at, row.failure_reason = "failed", self._now(), reason
            self._append(session, "render.failed", {"render_id": render_id, "reason": reason}, row.operator)

    def render_refused(
        self, *, operator: str, credential_id: str | None, reason: str, error: str, inputs: dict[str, Any]
    ) -> str:
        """Record a refusal (consent not established); returns the refusal's render id."""
        render_id = uuid.uuid4().hex
        with self._transaction() as session:
            now = self._now()
            session.add(
                RenderRow(
                    render_id=render_id,
                    status="refused",
                    credential_id=credential_id,
                    operator=operator,
                    created_at=now,
                    finished_at=now,
                    inputs=json.dumps(inputs, sort_keys=True),
                    failure_reason=reason,
                    error=error,
                )
            )
            data = {
                "render_id": render_id,
                "credential_id": credential_id,
                "error": error,
                "reason": reason,
                "inputs": inputs,
            }
            self._append(session, "render.refused", data, operator)
        return render_id

    def mark_interrupted_renders(self, *, actor: str = "studio", render_ids: list[str] | None = None) -> int:
        """Renders still 'started' become 'failed'; returns how many.

        ``render_ids`` limits this to those renders (the ones whose owner is gone, as the
        pipeline's recovery decides); None means every started render.
        """
        reason = "interrupted: the studio stopped before the render finished"
        if render_ids is not None and not render_ids:
            return 0
        with self._transaction() as session:
            query = select(RenderRow).where(RenderRow.status == "started").order_by(RenderRow.created_at)
            if render_ids is not None:
                query = query.where(RenderRow.render_id.in_(render_ids))
            rows = list(session.scalars(query))
            for row in rows:
                row.status, row.finished_at, row.failure_reason = "failed", self._now(), reason
                self._append(session, "render.failed", {"render_id": row.render_id, "reason": reason}, actor)
            return len(rows)

    # --- leases and delivery (several processes may share one data folder) ---------------

    def render_leases(self) -> list[RenderLease]:
        """Open renders: started, or finished but not yet moved into place."""
        open_ = (RenderRow.status == "started") | ((RenderRow.status == "finished") & RenderRow.delivered_at.is_(None))
        query = select(RenderRow).where(open_).order_by(RenderRow.created_at)
        with database.translate_errors(), Session(self._engine) as session:
            return [RenderLease.from_row(row) for row in session.scalars(query)]

    def heartbeat(self, render_id: str) -> None:
        """The owner of an open render says it is still alive (a state column; no event)."""
        with self._transaction() as session:
            session.execute(update(RenderRow).where(RenderRow.render_id == render_id).values(heartbeat_at=self._now()))

    def render_delivered(self, *, render_id: str) -> None:
        """The finished render's output and receipt are in place (a state column; no event)."""
        with self._transaction() as session:
            row = session.get(RenderRow, render_id)
            if row is None or row.status != "finished":
                raise UnknownRender("no finished render has this id")
            row.delivered_at = self._now()

    def render_lost(self, *, render_id: str, reason: str, actor: str = "studio") -> None:
        """A finished render's output is gone before delivery: ``lost``, with a ``render.lost`` event."""
        with self._transaction() as session:
            row = session.get(RenderRow, render_id)
            if row is None or row.status != "finished":
                raise UnknownRender("no finished render has this id")
            row.status, row.failure_reason = "lost", reason
            self._append(session, "render.lost", {"render_id": render_id, "reason": reason}, actor)

    @staticmethod
    def _started(session: Session, render_id: str) -> RenderRow:
        row = session.get(RenderRow, render_id)
        if row is None or row.status != "started":
            raise UnknownRender("no render in progress has this id")
        return row

    def find_render(self, render_id: str) -> RenderRecord | None:
        with database.translate_errors(), Session(self._engine) as session:
            row = session.get(RenderRow, render_id)
            return RenderRecord.from_row(row) if row is not None else None

    def find_render_by_payload(self, payload: int) -> RenderRecord | None:
        query = select(RenderRow).where(RenderRow.watermark_payload == payload).order_by(RenderRow.created_at).limit(1)
        with database.translate_errors(), Session(self._engine) as session:
            row = session.scalars(query).first()
            return RenderRecord.from_row(row) if row is not None else None

    def list_renders(self, *, limit: int = 100) -> list[RenderRecord]:
        query = select(RenderRow).order_by(RenderRow.created_at.desc()).limit(limit)
        with database.translate_errors(), Session(self._engine) as session:
            return [RenderRecord.from_row(row) for row in session.scalars(query)]

    # --- users --------------------------------------------------------------------------

    def add_user(self, username: str, *, password_hash: str, role: str, actor: str) -> None:
        with self._transaction() as session:
            if session.get(UserRow, username) is not None:
                raise DuplicateUser("a user with this name already exists")
            user = UserRow(
                username=username, password_hash=password_hash, role=role, created_at=self._now(), disabled=False
            )
            session.add(user)
            self._append(session, "user.added", {"username": username, "role": role}, actor)

    def get_user(self, username: str) -> UserRecord | None:
        with database.translate_errors(), Session(self._engine) as session:
            row = session.get(UserRow, username)
            return UserRecord.from_row(row) if row is not None else None

    def list_users(self) -> list[UserRecord]:
        with database.translate_errors(), Session(self._engine) as session:
            return [UserRecord.from_row(row) for row in session.scalars(select(UserRow).order_by(UserRow.username))]

    def record_login(self, username: str, ok: bool) -> None:
        """Log every login attempt, failed ones included (unknown names too)."""
        with self._transaction() as session:
            if ok:
                session.execute(update(UserRow).where(UserRow.username == username).values(last_login_at=self._now()))
            self._append(session, "user.login", {"username": username, "ok": ok}, username)


# PostgreSQL renders its timestamps in SQLite's stored layout (UTC), so both take the same fast
# text path in chain.verify_chain and no datetime objects are built for 100,000 rows.
_PG_TIME = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
_SELECT_EVENTS = "SELECT seq, kind, actor, {time}, data, prev_hash, hash FROM events ORDER BY seq"
_SELECT_CHECKPOINTS = "SELECT id, seq, head_hash, {time}, studio_did, signature, prev_signature FROM checkpoints"


def _select(template: str, *, postgres: bool) -> str:
    return template.format(time=_PG_TIME if postgres else "created_at")


def _stream(raw: Any, sql: str, *, postgres: bool) -> Generator[tuple[Any, ...], None, None]:
    """Rows of ``sql`` in batches (a server-side cursor on PostgreSQL keeps memory flat)."""
    cursor = raw.cursor(name="ledger_verify") if postgres else raw.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        cursor.close()


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    database_path = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database_path in ("", ":memory:"):
        return False
    return not Path(database_path).exists()
