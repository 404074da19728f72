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
import logging
import os
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select, update
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
    CheckpointInvalid,
    CredentialAlreadyRevoked,
    DuplicateCredential,
    DuplicateUser,
    IssuerAlreadyEnrolled,
    IssuerNotEnrolled,
    LedgerEmpty,
    LedgerNotMigrated,
    LedgerTampered,
    UnknownCredential,
    UnknownRender,
    UnknownUser,
)
from studio.ledger.notes import SignedCheckpoint
from studio.ledger.records import (
    QUEUED_OWNER,
    CredentialSummary,
    IssuerRecord,
    LedgerRevocations,
    LedgerTrust,
    RenderLease,
    RenderRecord,
    UserRecord,
    state_events,
)
from studio.ledger.state import STATE_KINDS, USER_KINDS, first_difference, replay, user_difference
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
    from studio.render.receipt import Receipt

log = logging.getLogger(__name__)
_Clock = Callable[[], datetime]
_DLIB_FACE_CEILING = 0.6  # the loosest face match any studio accepts (dlib's threshold)
_REFUSAL_ID_CHARS = 200  # a refused credential's id is logged truncated: the log takes no unbounded input


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

    def __init__(
        self,
        *,
        engine: Engine,
        studio_key: Ed25519PrivateKey,
        checkpoint_every: int,
        clock: _Clock,
        face_ceiling: float = _DLIB_FACE_CEILING,
        checkpoint_file: Path | None = None,
    ) -> None:
        from consent.keys import did_key_from_public

        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if not 0 < face_ceiling <= _DLIB_FACE_CEILING:
            raise ValueError(f"face_ceiling lies in (0, {_DLIB_FACE_CEILING}]: it can only be made stricter")
        self._engine = engine
        self._key = studio_key
        self._did = did_key_from_public(studio_key.public_key())
        self._checkpoint_every = checkpoint_every
        self._clock = clock
        self._face_ceiling = face_ceiling
        # The latest signed checkpoint, kept outside the database: `verify` proves the log extends it.
        self._checkpoint_file = checkpoint_file

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
        face_ceiling: float = _DLIB_FACE_CEILING,
        checkpoint_file: Path | None = None,
    ) -> Ledger:
        """Connect, migrate (unless ``upgrade=False``, which demands an up-to-date schema).

        ``face_ceiling`` is the studio's limit on a credential's ``maxDistance`` at import;
        ``checkpoint_file`` keeps the latest signed checkpoint note outside the database.
        """
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
        return cls(
            engine=engine,
            studio_key=studio_key,
            checkpoint_every=checkpoint_every,
            clock=clock,
            face_ceiling=face_ceiling,
            checkpoint_file=checkpoint_file,
        )

    @classmethod
    def from_config(cls, config: StudioConfig, *, upgrade: bool = True) -> Ledger:
        """The ledger of a data folder, signed with that folder's studio key."""
        from studio.identity import load_or_create_studio_key, secure_home

        secure_home(config, create_database=upgrade)  # owner-only folders, 0600 database
        return cls.open(
            config.sqlalchemy_url,
            studio_key=load_or_create_studio_key(config),
            upgrade=upgrade,
            face_ceiling=config.max_face_distance,
            checkpoint_file=config.home / CHECKPOINT_FILE_NAME,
        )

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

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def studio_did(self) -> str:
        return self._did

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def face_ceiling(self) -> float:
        return self._face_ceiling

    # --- the chain ----------------------------------------------------------------------

    def _now(self) -> datetime:
        # SQLite stores wall-clock digits without an offset: only UTC round-trips exactly.
        return self._clock().astimezone(timezone.utc)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """One write transaction holding the append lock; domain rows and events commit together.

        A checkpoint signed inside it is published to the checkpoint file only after the commit.
        """
        with database.write(self._engine) as connection, Session(bind=connection) as session:
            yield session
            session.flush()
            signed = session.info.get("checkpoint")
        if signed is not None:
            self._publish(signed)

    def _append(
        self, session: Session, kind: str, data: dict[str, Any], actor: str, *, now: datetime | None = None
    ) -> Event:
        head = session.execute(select(EventRow.seq, EventRow.hash).order_by(EventRow.seq.desc()).limit(1)).first()
        seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
        now = now or self._now()
        text = canonical_data(data)
        digest = event_hash(seq, kind, actor, format_time(now), text, prev)
        session.add(EventRow(seq=seq, kind=kind, actor=actor, created_at=now, data=text, prev_hash=prev, hash=digest))
        # State changes (revocations, withdrawals, roles...) are signed at once, so the held note
        # pins them: cutting such an event off the tail is then a detectable rollback.
        if seq % self._checkpoint_every == 0 or kind in STATE_KINDS:
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
        session.info["checkpoint"] = (seq, head_hash)
        return Checkpoint(seq, head_hash, now, self._did, signature, last)

    def _publish(self, head: tuple[int, str]) -> None:
        """Write the signed note of a committed head to the checkpoint file (atomic, 0600, never shrinking).

        Runs after the commit, so it never raises: a file that cannot be written is logged (``verify``
        then simply has an older note to check against), an unreadable one is replaced.
        """
        if self._checkpoint_file is None:
            return
        note = SignedCheckpoint.sign(self._key, studio_did=self._did, size=head[0], root_hash=head[1])
        try:
            held = self.held_checkpoint()
        except CheckpointInvalid:
            held = None
        if held is not None and held.studio_did == self._did and held.size > note.size:
            return  # another process published a later head meanwhile
        path = self._checkpoint_file
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fp:
                fp.write(note.to_note())
                fp.flush()
                os.fsync(fp.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not write the ledger checkpoint file (%s); the database checkpoint stands", exc.strerror)

    def held_checkpoint(self) -> SignedCheckpoint | None:
        """The checkpoint note kept in the data folder (None when there is none yet)."""
        if self._checkpoint_file is None:
            return None
        try:
            with self._checkpoint_file.open("r", encoding="utf-8", errors="replace") as fp:
                text = fp.read(8192)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointInvalid(f"the checkpoint file cannot be read ({exc.strerror})") from None
        return SignedCheckpoint.from_note(text)

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

    def signed_checkpoint(self) -> SignedCheckpoint:
        """Sign the head now as a checkpoint note (C2SP tlog-checkpoint style) that can leave the database.

        Also stores a checkpoint row for that head (unless the newest one already signs it) and
        publishes the note to the checkpoint file, so the head is pinned in three places.
        """
        with self._transaction() as session:
            head = session.execute(select(EventRow.seq, EventRow.hash).order_by(EventRow.seq.desc()).limit(1)).first()
            if head is None:
                return SignedCheckpoint.sign(self._key, studio_did=self._did, size=0, root_hash=GENESIS_HASH)
            last = session.scalar(select(CheckpointRow.seq).order_by(CheckpointRow.id.desc()).limit(1))
            if last != head.seq:
                self._add_checkpoint(session, head.seq, head.hash, self._now())
            else:
                session.info["checkpoint"] = (head.seq, head.hash)
        return SignedCheckpoint.sign(self._key, studio_did=self._did, size=head.seq, root_hash=head.hash)

    def verify_extends(self, checkpoint: SignedCheckpoint) -> ChainReport:
        """Prove the current log extends ``checkpoint``: its event at ``size`` has that root hash and
        the chain verifies through it. Raises ``CheckpointInvalid`` for a note this studio did not sign."""
        checkpoint.verify(self._key.public_key(), studio_did=self._did)
        return self._verify(since=(checkpoint.size, checkpoint.root_hash, "the checkpoint"))

    @contextmanager
    def _snapshot(self) -> Iterator[tuple[list[tuple[Any, ...]], Generator[tuple[Any, ...], None, None], Any, bool]]:
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
                    yield checkpoints, rows, raw, postgres
                finally:
                    rows.close()

    def verify(self) -> ChainReport:
        """Recompute every hash, link and checkpoint signature from one consistent snapshot; check that
        the log extends the checkpoint held in the data folder; replay the state-changing events and
        compare every state table with them (the first row that disagrees is named)."""
        held = None
        try:
            note = self.held_checkpoint()
        except CheckpointInvalid as exc:
            return ChainReport(False, 0, 0, None, f"the held checkpoint file is unreadable: {exc}")
        if note is not None:
            try:
                note.verify(self._key.public_key(), studio_did=self._did)
            except CheckpointInvalid as exc:
                return ChainReport(False, 0, 0, None, f"the held checkpoint file: {exc}")
            held = (note.size, note.root_hash, f"the checkpoint held in {CHECKPOINT_FILE_NAME}")
        return self._verify(since=held)

    def _verify(self, *, since: tuple[int, str, str] | None) -> ChainReport:
        with self._snapshot() as (checkpoints, rows, raw, postgres):
            tapped: list[tuple[Any, ...]] = []
            report = verify_chain(
                _tap(rows, tapped),  # type: ignore[arg-type]
                checkpoints,  # type: ignore[arg-type]
                studio_key=self._key.public_key(),
                studio_did=self._did,
                held=since,
            )
            if not report.ok:
                return report
            tables = {name: _fetch(raw, sql, postgres=postgres) for name, sql in _STATE_SELECTS.items()}
        difference = first_difference(replay((r[0], r[1], r[2], r[3], r[4]) for r in tapped), tables)
        if difference is None:
            return report
        return ChainReport(
            False,
            report.events_checked,
            report.checkpoints_checked,
            difference.seq,
            difference.reason,
            head_seq=report.head_seq,
            table=difference.table,
            row_key=difference.key,
        )

    def export_jsonl(self, fp: IO[str]) -> int:
        """Write every event, then every checkpoint, as JSON lines; returns the number of lines.

        Values are exported as stored (also from a tampered database), with ``data`` as the
        exact canonical text that was hashed, so an auditor can recompute the chain with
        ``studio.ledger.chain`` alone.
        """
        count = 0
        with self._snapshot() as (checkpoints, rows, _raw, _postgres):
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

    def head_seq(self) -> int:
        """The newest event's sequence number (0 while the ledger is empty)."""
        with database.translate_errors(), Session(self._engine) as session:
            return session.scalar(select(func.max(EventRow.seq))) or 0

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
            self._append(session, "issuer.enrolled", {"did": did}, actor, now=now)

    def withdraw_issuer(self, did: str, *, actor: str) -> None:
        """Stop trusting ``did``: credentials it issued no longer verify for new renders."""
        with self._transaction() as session:
            row = session.get(IssuerRow, did)
            if row is None or row.withdrawn_at is not None:
                raise IssuerNotEnrolled("this issuer is not enrolled")
            row.withdrawn_at = now = self._now()
            self._append(session, "issuer.withdrawn", {"did": did}, actor, now=now)

    def list_issuers(self) -> list[IssuerRecord]:
        with database.translate_errors(), Session(self._engine) as session:
            rows = session.scalars(select(IssuerRow).order_by(IssuerRow.enrolled_at))
            return [IssuerRecord(r.did, r.name, as_utc(r.enrolled_at), as_utc_or_none(r.withdrawn_at)) for r in rows]

    def trust(self) -> LedgerTrust:
        """An ``IssuerTrust`` that asks the database on every call (withdrawals apply at once)."""
        return LedgerTrust(self._engine)

    # --- credentials and revocation -----------------------------------------------------

    def import_credential(
        self,
        submitted: Mapping[str, Any] | bytes | str,
        *,
        actor: str,
        reference_embedding: Sequence[float] | None = None,
    ) -> LikenessConsent:
        """Check and store a credential; every refusal is logged as a ``credential.refused`` event.

        ``submitted`` is the document as received (bytes or text, parsed strictly here) or already
        parsed. Checks, in order: well-formed (``MalformedCredential`` and its leaves), proof by the
        issuer's own key (``SignatureInvalid``, ``VerificationMethodMismatch``...), issuer enrolled now
        (``UnknownIssuer``), ``maxDistance`` within the studio's ceiling (``FaceThresholdAboveCeiling``),
        the reference photo's face embedding, when given, within both thresholds of the template
        (``ReferencePhotoMismatch``), not imported before (``DuplicateCredential``).
        """
        from consent.credential import LikenessConsent
        from consent.errors import ConsentError, UnknownIssuer, VerificationMethodMismatch
        from consent.proof import parse_json, verify_proof
        from consent.verify import check_face_ceiling, check_reference_face

        raw = _submitted_bytes(submitted)
        document: Any = None
        try:
            document = parse_json(raw) if isinstance(submitted, (bytes, str)) else submitted
            credential = LikenessConsent.from_document(document)
            if verify_proof(credential.document).controller != credential.issuer:
                raise VerificationMethodMismatch("the consent was not signed with the issuer's key")
            if not self.trust().is_trusted(credential.issuer, now=self._now()):
                raise UnknownIssuer(
                    "the credential's issuer is not enrolled with this studio; a consent officer enrols its key first"
                )
            check_face_ceiling(credential, self._face_ceiling)
            if reference_embedding is not None:
                check_reference_face(credential, reference_embedding, self._face_ceiling)
            text = canonical_data(credential.document)
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
        except (ConsentError, DuplicateCredential) as exc:
            self.record_credential_refused(action="import", error=exc, submitted=raw, document=document, actor=actor)
            raise
        return credential

    def record_credential_refused(
        self,
        *,
        action: str,
        error: BaseException,
        submitted: bytes | None,
        actor: str,
        document: Any = None,
    ) -> Event:
        """Log a refused credential (at import or verify) in bounded form: the error class, the id
        (truncated) when the document has one, and the SHA-256 and size of the submitted bytes."""
        candidate = document.get("id") if isinstance(document, Mapping) else None
        data = {
            "action": action[:20],
            "error": type(error).__name__,
            "credential_id": candidate[:_REFUSAL_ID_CHARS] if isinstance(candidate, str) else None,
            "submitted_sha256": hashlib.sha256(submitted).hexdigest() if submitted is not None else None,
            "submitted_bytes": len(submitted) if submitted is not None else None,
        }
        return self.append("credential.refused", data, actor=actor[:200])

    def get_credential(self, credential_id: str) -> LikenessConsent:
        """The stored document, after checking it is the one whose import the log recorded."""
        from consent.credential import LikenessConsent

        with database.translate_errors(), Session(self._engine) as session:
            row = session.get(CredentialRow, credential_id)
            if row is None:
                raise UnknownCredential("no credential with this id was imported")
            imports = state_events(session, ("credential.imported",), key="credential_id", value=credential_id)
            recorded = [json.loads(e[4])["document_sha256"] for e in imports]
            if not recorded or recorded[-1] != _sha256_text(row.document):
                raise LedgerTampered("the stored credential is not the one whose import the ledger recorded")
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
            now = self._now()
            revocation = RevocationRow(credential_id=credential_id, reason=reason, revoked_by=actor, revoked_at=now)
            session.add(revocation)
            data = {"credential_id": credential_id, "reason": reason}
            self._append(session, "credential.revoked", data, actor, now=now)

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
        from studio.render.receipt import Receipt

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

    def render_failed(self, *, render_id: str, reason: str, error: str | None = None) -> None:
        """Close a started render as failed; ``error`` names the class (e.g. a term the frames broke)."""
        with self._transaction() as session:
            row = self._started(session, render_id)
            row.status, row.finished_at, row.failure_reason = "failed", self._now(), reason
            data = {"render_id": render_id, "reason": reason}
            if error is not None:
                row.error = error[:100]
                data["error"] = error[:100]
            self._append(session, "render.failed", data, row.operator)

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

    def claim_render(
        self,
        render_id: str,
        *,
        seen: RenderLease,
        owner_pid: int,
        owner_host: str,
        worker: str,
        max_claims: int,
    ) -> str:
        """Take the lease of a started render whose holder ``seen`` the caller judged gone (a farm
        worker's claim); returns ``claimed``, ``held`` (the lease changed since ``seen``: another
        claim won), ``done`` (no longer started) or ``exhausted`` (``max_claims`` claims were made
        already: the render is failed with that reason). One transaction under the append lock,
        and the update only matches the lease as seen, so two workers never both win."""
        with self._transaction() as session:
            row = session.get(RenderRow, render_id)
            if row is None or row.status != "started":
                return "done"
            claims = self._claims(session, render_id)
            if claims >= max_claims:
                reason = (f"given up after {claims} workers took it and did not finish it "
                          "(each stopped or lost its lease mid-render)")
                row.status, row.finished_at, row.failure_reason, row.error = "failed", self._now(), reason, "LeaseExhausted"
                data = {"render_id": render_id, "reason": reason, "error": "LeaseExhausted"}
                self._append(session, "render.failed", data, "studio")
                return "exhausted"
            now = self._now()
            same = (
                (RenderRow.render_id == render_id)
                & (RenderRow.status == "started")
                & _same_or_null(RenderRow.owner_pid, seen.owner_pid)
                & _same_or_null(RenderRow.owner_host, seen.owner_host)
            )
            taken = session.execute(
                update(RenderRow).where(same).values(owner_pid=owner_pid, owner_host=owner_host, heartbeat_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken != 1:
                return "held"
            data = {"render_id": render_id, "worker": worker, "host": owner_host, "pid": owner_pid, "claim": claims + 1}
            self._append(session, "render.claimed", data, "studio", now=now)
            return "claimed"

    @staticmethod
    def _claims(session: Session, render_id: str) -> int:
        query = select(func.count()).select_from(EventRow).where(
            (EventRow.kind == "render.claimed") & EventRow.data.contains(f'"render_id":"{render_id}"')
        )
        return int(session.scalar(query) or 0)

    def render_claims(self, render_id: str) -> int:
        """How many times workers have claimed this render (``render.claimed`` events)."""
        with database.translate_errors(), Session(self._engine) as session:
            return self._claims(session, render_id)

    def request_cancel(self, render_id: str, *, actor: str) -> str:
        """Cancel an open render: ``cancelled`` (it was still queued: failed at once, with who),
        ``requested`` (it is running: a ``render.cancel_requested`` event its owner looks for at
        least every second, then fails it) or ``done`` (not open: nothing to cancel)."""
        with self._transaction() as session:
            row = session.get(RenderRow, render_id)
            if row is None or row.status != "started":
                return "done"
            if row.owner_pid is None and row.owner_host == QUEUED_OWNER:
                reason = f"the render was cancelled by {actor} before a worker started it; nothing was delivered"
                row.status, row.finished_at, row.failure_reason, row.error = "failed", self._now(), reason, "RenderCancelled"
                self._append(session, "render.failed", {"render_id": render_id, "reason": reason,
                                                        "error": "RenderCancelled"}, actor)
                return "cancelled"
            self._append(session, "render.cancel_requested", {"render_id": render_id}, actor)
            return "requested"

    def cancel_requested(self, render_id: str) -> str | None:
        """Who asked to cancel this render (the first ``render.cancel_requested``), or None."""
        query = select(EventRow.actor).where(
            (EventRow.kind == "render.cancel_requested") & EventRow.data.contains(f'"render_id":"{render_id}"')
        ).order_by(EventRow.seq).limit(1)
        with database.translate_errors(), Session(self._engine) as session:
            return session.scalar(query)

    def refuse_started(self, *, render_id: str, reason: str, error: str) -> None:
        """Close an admitted render as refused: its consent no longer held when a worker went to
        animate it (e.g. revoked while it was queued). Nothing was animated."""
        with self._transaction() as session:
            row = self._started(session, render_id)
            row.status, row.finished_at, row.failure_reason, row.error = "refused", self._now(), reason, error[:100]
            data = {"render_id": render_id, "credential_id": row.credential_id, "error": error[:100], "reason": reason,
                    "stage": "worker"}
            self._append(session, "render.refused", data, row.operator)

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

    def list_renders(self, *, limit: int = 100, credential_id: str | None = None) -> list[RenderRecord]:
        """The newest renders first; with ``credential_id``, only those made under that credential."""
        query = select(RenderRow).order_by(RenderRow.created_at.desc()).limit(limit)
        if credential_id is not None:
            query = query.where(RenderRow.credential_id == credential_id)
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
            data = {"username": username, "role": role, "password_sha256": _sha256_text(password_hash)}
            self._append(session, "user.added", data, actor)

    def change_user(
        self,
        username: str,
        *,
        actor: str,
        role: str | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
    ) -> None:
        """Change a user's role, disabled flag or password hash; the change is a ``user.changed`` event."""
        with self._transaction() as session:
            row = session.get(UserRow, username)
            if row is None:
                raise UnknownUser("no user with this name exists")
            data: dict[str, Any] = {"username": username}
            if role is not None:
                row.role = data["role"] = role
            if disabled is not None:
                row.disabled = data["disabled"] = bool(disabled)
            if password_hash is not None:
                row.password_hash = password_hash
                data["password_sha256"] = _sha256_text(password_hash)
            self._append(session, "user.changed", data, actor)

    def get_user(self, username: str) -> UserRecord | None:
        """The user's row, after checking its role, disabled flag and password hash against the log.

        Raises ``LedgerTampered`` when they disagree (a row edited or inserted by hand), so no role
        check or login can rest on a row the log does not explain.
        """
        with database.translate_errors(), Session(self._engine) as session:
            row = session.get(UserRow, username)
            if row is None:
                return None
            events = state_events(session, USER_KINDS, key="username", value=username)
            expected = replay(events).users.get(username)
            stored = (row.username, row.password_hash, row.role, row.disabled)
            if user_difference(username, stored, expected) is not None:
                raise LedgerTampered("this account's stored role, status or password is not what the ledger recorded")
            return UserRecord.from_row(row)

    def list_users(self) -> list[UserRecord]:
        with database.translate_errors(), Session(self._engine) as session:
            return [UserRecord.from_row(row) for row in session.scalars(select(UserRow).order_by(UserRow.username))]

    def record_login(self, username: str, ok: bool) -> None:
        """Log one login. The web server logs successes this way and failures aggregated
        (:meth:`record_login_failures`); names are cut to a bounded length either way."""
        name = bounded_name(username)
        with self._transaction() as session:
            if ok:
                session.execute(update(UserRow).where(UserRow.username == username).values(last_login_at=self._now()))
            self._append(session, "user.login", {"username": name, "ok": ok}, name)

    def record_login_failures(
        self, *, account: str, failures: int, throttled: int, clients: int, names: int,
        window_start: datetime, window_seconds: float,
    ) -> None:
        """One event for all failed logins of ``account`` (or of a bucket such as "(unknown)")
        in one time window: counts only, never a password, never an unbounded name."""
        data = {
            "account": bounded_name(account), "failures": failures, "throttled": throttled, "clients": clients,
            "names": names, "window_start": format_time(as_utc(window_start)), "window_seconds": window_seconds,
        }
        with self._transaction() as session:
            self._append(session, "user.login_failed", data, "studio")

    def lock_user(self, username: str, *, failures: int, actor: str = "studio") -> None:
        """Lock an account after too many failed logins (until :meth:`unlock_user`)."""
        with self._transaction() as session:
            self._append(session, "user.locked", {"username": bounded_name(username), "failures": failures}, actor)

    def unlock_user(self, username: str, *, actor: str) -> bool:
        """Lift a login lock; False (and nothing logged) when the account was not locked."""
        with self._transaction() as session:
            if not self._locked_in(session, 0)[1].get(username):
                return False
            self._append(session, "user.unlocked", {"username": username}, actor)
            return True

    def login_lock_changes(self, after_seq: int = 0) -> tuple[int, dict[str, bool]]:
        """Lock and unlock events after ``after_seq``: the last seq looked at and, per account
        changed since, whether it is now locked. Cheap to call often (a range of the log)."""
        with database.translate_errors(), Session(self._engine) as session:
            return self._locked_in(session, after_seq)

    def locked_users(self) -> set[str]:
        """Accounts locked now (lock state is derived from the chained events alone)."""
        _, changes = self.login_lock_changes(0)
        return {name for name, locked in changes.items() if locked}

    @staticmethod
    def _locked_in(session: Session, after_seq: int) -> tuple[int, dict[str, bool]]:
        last = session.scalar(select(func.max(EventRow.seq))) or 0
        rows = session.execute(
            select(EventRow.kind, EventRow.data)
            .where(EventRow.seq > after_seq, EventRow.seq <= last, EventRow.kind.in_(_LOCK_KINDS))
            .order_by(EventRow.seq)
        )
        changes: dict[str, bool] = {}
        for kind, data in rows:
            changes[json.loads(data)["username"]] = kind == "user.locked"
        return last, changes


_LOCK_KINDS = ("user.locked", "user.unlocked")
_MAX_LOGGED_NAME = 64


def _same_or_null(column: Any, value: Any) -> Any:
    """``column = value``, or ``column IS NULL`` when value is None (SQL's = never matches NULL)."""
    return column.is_(None) if value is None else column == value


def bounded_name(name: str) -> str:
    """``name`` as logged: at most 64 characters; a longer one is cut and tagged with its hash."""
    if len(name) <= _MAX_LOGGED_NAME:
        return name
    return f"{name[:16]}...sha256:{hashlib.sha256(name.encode('utf-8', 'replace')).hexdigest()[:16]}"


# PostgreSQL renders its timestamps in SQLite's stored layout (UTC), so both take the same fast
# text path in chain.verify_chain and no datetime objects are built for 100,000 rows.
_PG_TIME = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
_SELECT_EVENTS = "SELECT seq, kind, actor, {time}, data, prev_hash, hash FROM events ORDER BY seq"
_SELECT_CHECKPOINTS = "SELECT id, seq, head_hash, {time}, studio_did, signature, prev_signature FROM checkpoints"


def _select(template: str, *, postgres: bool) -> str:
    return template.format(time=_PG_TIME if postgres else "created_at")


CHECKPOINT_FILE_NAME = "ledger-checkpoint.txt"


def _pg_time(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"


# The state tables as ``state.first_difference`` compares them (key first), read raw in the snapshot.
_STATE_SELECTS = {
    "issuers": "SELECT did, {enrolled_at}, {withdrawn_at} FROM issuers",
    "credentials": "SELECT credential_id, issuer, document FROM credentials",
    "revocations": "SELECT credential_id, reason, revoked_by FROM revocations",
    "users": "SELECT username, password_hash, role, disabled FROM users",
}


def _fetch(raw: Any, template: str, *, postgres: bool) -> list[tuple[Any, ...]]:
    names = {c: _pg_time(c) if postgres else c for c in ("enrolled_at", "withdrawn_at")}
    cursor = raw.cursor()
    try:
        cursor.execute(template.format(**names))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _tap(rows: Iterator[tuple[Any, ...]], sink: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Pass event rows through, keeping the state-changing ones (only those get their JSON parsed)."""
    kinds = STATE_KINDS
    for row in rows:
        if row[1] in kinds:
            sink.append(row)
        yield row


def _stream(raw: Any, sql: str, *, postgres: bool) -> Generator[tuple[Any, ...], None, None]:
    """Rows of ``sql`` in batches (a server-side cursor on PostgreSQL keeps memory flat)."""
    cursor = raw.cursor(name="ledger_verify") if postgres else raw.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        cursor.close()


def _submitted_bytes(submitted: Mapping[str, Any] | bytes | str) -> bytes:
    """The bytes a refusal's digest covers: as received, or the canonical JSON of a parsed document."""
    if isinstance(submitted, bytes):
        return submitted
    if isinstance(submitted, str):
        return submitted.encode("utf-8", "surrogatepass")
    try:
        return canonical_data(dict(submitted)).encode("utf-8")
    except (TypeError, ValueError):
        return repr(submitted).encode("utf-8", "replace")[: 1024 * 1024]


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    database_path = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database_path in ("", ":memory:"):
        return False
    return not Path(database_path).exists()
