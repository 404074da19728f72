"""`avatar-studio consent ...`: enrol issuers, import, verify, revoke and list consent credentials.

Every change goes through the data folder's ledger, so it is logged. `consent issue` (signing a
credential with the subject's key) lives in ``consent_issue.py`` and is added by ``register``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from studio.commands._common import Invalid, echo, get_config

if TYPE_CHECKING:
    from consent.credential import LikenessConsent
    from studio.ledger import Ledger

app = typer.Typer(no_args_is_help=True, help="Issue, enrol, import, verify, revoke and list consent.")

_MAX_CREDENTIAL_BYTES = 1024 * 1024
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (recorded in the ledger).")]
CredentialFile = Annotated[Path, typer.Argument(help="A LikenessConsent credential (JSON).", show_default=False)]


def _ledger() -> Ledger:
    from studio.ledger import Ledger

    return Ledger.from_config(get_config())


def _read_bytes(path: Path) -> bytes:
    """A credential file's bytes, refusing anything over 1 MiB before reading it."""
    from consent.errors import CredentialTooLarge

    try:
        size = path.stat().st_size
        if size > _MAX_CREDENTIAL_BYTES:
            raise CredentialTooLarge(f"the credential file is {size} bytes; a credential is at most 1 MiB")
        with path.open("rb") as fp:
            return fp.read(_MAX_CREDENTIAL_BYTES + 1)
    except FileNotFoundError:
        raise Invalid(f"no such file: {path.name}") from None
    except OSError as exc:
        raise Invalid(f"cannot read {path.name} ({exc.strerror})") from None


def _read_logged(ledger: Ledger, path: Path, *, action: str, actor: str) -> bytes:
    """``_read_bytes``, logging an oversized file as a refused attempt."""
    from consent.errors import CredentialTooLarge

    try:
        return _read_bytes(path)
    except CredentialTooLarge as exc:
        ledger.record_credential_refused(action=action, error=exc, submitted=None, actor=actor)
        raise


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"--at must be an ISO 8601 date/time, got {text!r}") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@app.command("enroll")
def enroll(
    did: Annotated[str, typer.Argument(help="The issuer's did:key (subject, estate or guardian).")],
    name: Annotated[str, typer.Option("--name", help="Who this key belongs to (kept out of the log).")],
    actor: ActorOption = "cli",
) -> None:
    """Trust a consent issuer's key (after checking who they are)."""
    with _ledger() as ledger:
        ledger.enroll_issuer(did, name=name, actor=actor)
    echo(f"enrolled {did}")


@app.command("withdraw")
def withdraw(did: Annotated[str, typer.Argument(help="An enrolled did:key.")], actor: ActorOption = "cli") -> None:
    """Stop trusting an issuer: its credentials no longer verify for new renders."""
    with _ledger() as ledger:
        ledger.withdraw_issuer(did, actor=actor)
    echo(f"withdrew {did}")


@app.command("import")
def import_(
    file: CredentialFile,
    actor: ActorOption = "cli",
    photo: Annotated[
        Optional[Path],
        typer.Option("--photo", help="The reference photo: its face must match the credential's face template."),
    ] = None,
) -> None:
    """Check a credential (proof, enrolled issuer, face ceiling) and store it; refusals are logged."""
    from consent.verify import likeness_distance

    embedding = _embedding(photo) if photo is not None else None
    with _ledger() as ledger:
        raw = _read_logged(ledger, file, action="import", actor=actor)
        credential = ledger.import_credential(raw, actor=actor, reference_embedding=embedding)
    echo(f"imported {credential.credential_id} ({credential.project}, issuer {credential.issuer})")
    if embedding is not None:
        distance = likeness_distance(credential, embedding)
        echo(f"the reference photo matches the credential's face template (distance {distance:.3f})")


@app.command("verify")
def verify(
    file: CredentialFile,
    purpose: Annotated[str, typer.Option("--purpose", help="What the render is for, e.g. film.")],
    project: Annotated[str, typer.Option("--project", help="The project/production the render is for.")],
    duration: Annotated[
        Optional[float],
        typer.Option("--duration", help="Seconds of output requested (default: only report the credential's limit).", min=0),
    ] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Check as of this ISO time (default: now).")] = None,
    photo: Annotated[
        Optional[Path], typer.Option("--photo", help="Compare this photo's face with the consent's template.")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Would this credential allow this render? Checks enrolment and revocation in this data folder.

    A refusal is logged in the ledger (`credential.refused`, action verify) in bounded form.
    """
    from consent.errors import ConsentError
    from consent.proof import parse_json
    from consent.verify import ConsentRequest, verify_consent

    now = _parse_time(at)
    likeness = _embedding(photo) if photo is not None else None
    with _ledger() as ledger:
        raw = _read_logged(ledger, file, action="verify", actor=actor)
        document: Any = None
        try:
            document = parse_json(raw, max_bytes=_MAX_CREDENTIAL_BYTES)
            verified = verify_consent(
                document,
                request=ConsentRequest(purpose=purpose, project=project, duration_seconds=duration or 0.0),
                trust=ledger.trust(),
                status=ledger.revocation_status(),
                likeness=likeness,
                now=now,
                require_likeness=False,
                max_distance_ceiling=ledger.face_ceiling,
            )
        except ConsentError as exc:
            ledger.record_credential_refused(action="verify", error=exc, submitted=raw, document=document, actor=actor)
            raise Invalid(exc.user_message()) from None
    echo(_valid_line(verified.credential, purpose=purpose, project=project, duration=duration))
    if verified.likeness_distance is None:
        echo("likeness NOT checked: pass --photo to compare the face with the consent's template")
    else:
        echo(f"likeness matches (distance {verified.likeness_distance:.3f} <= {verified.credential.max_distance:g})")


def _valid_line(credential: LikenessConsent, *, purpose: str, project: str, duration: float | None) -> str:
    """What the credential allows: its own duration limit and end date, not the request's."""
    end = credential.valid_until
    until = f"{end.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if end is not None else "no end date"
    line = (
        f"consent valid: {credential.credential_id} covers {purpose} / {project}, "
        f"outputs up to {credential.max_duration_seconds:g} s, valid until {until}"
    )
    return line if duration is None else f"{line} (a {duration:g} s output is within it)"


def _embedding(photo: Path) -> list[float]:
    from models.face import FaceAnalyzer
    from studio import media

    face = FaceAnalyzer().analyze(media.read_image(photo))
    if face.embedding is None:
        raise Invalid("no face embedding could be computed for the photo")
    return [float(v) for v in face.embedding]


@app.command("revoke")
def revoke(
    credential_id: Annotated[str, typer.Argument(help="The credential's id (see `consent list`).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the ledger).")] = "revoked by the grantor",
    actor: ActorOption = "cli",
) -> None:
    """Revoke a credential for good."""
    with _ledger() as ledger:
        ledger.revoke(credential_id, reason=reason, actor=actor)
    echo(f"revoked {credential_id}")


@app.command("list")
def list_() -> None:
    """Imported credentials, one per line, with their revocation state."""
    with _ledger() as ledger:
        rows = ledger.list_credentials()
    if not rows:
        echo("no credentials imported")
    for row in rows:
        state = f"REVOKED {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        echo(f"{row.credential_id}\t{row.project}\t{row.subject_name}\t{state}")


def _register_issue() -> None:
    from studio.commands.consent_issue import register  # `consent issue` lives in its own module

    register(app)


_register_issue()
