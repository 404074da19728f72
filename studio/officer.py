"""The consent officer's questions to the ledger, as plain functions the web page and CLI print.

* ``preview_credential``: what a credential file grants, and whether the studio would accept
  it, read before anything is stored (the import itself is ``Ledger.import_credential``, which
  checks everything again and logs a refusal);
* ``expiring_credentials``: the active credentials whose ``validUntil`` falls within N days;
* ``renders_under``: every render attempt made under one credential, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consent.credential import LikenessConsent
    from studio.ledger import Ledger
    from studio.ledger.records import RenderRecord

__all__ = ["CredentialTerms", "ExpiringCredential", "expiring_credentials", "preview_credential", "renders_under"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _days(delta: timedelta) -> int:
    return int(delta.total_seconds() // 86400)


@dataclass(frozen=True, kw_only=True)
class CredentialTerms:
    """A credential's terms in words, and the problems that would make the studio refuse it.

    ``problems`` empty means an import now would pass every check the ledger makes (signature,
    issuer enrolled, face threshold, not imported before); the import checks them again.
    """

    credential: LikenessConsent
    issuer_name: str | None  # the enrolled name of the issuer; None when not enrolled now
    signature_ok: bool
    problems: list[str] = field(default_factory=list)
    checked_at: datetime

    @property
    def acceptable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        c = self.credential
        until = c.valid_until
        return {
            "credential_id": c.credential_id,
            "issuer": c.issuer,
            "issuer_name": self.issuer_name,
            "signature_ok": self.signature_ok,
            "subject": {"id": c.subject_id, "name": c.subject_name},
            "grantor": dict(c.grantor),
            "grantee": c.grantee_name,
            "project": c.project,
            "purposes": list(c.purposes),
            "media": list(c.media),
            "territory": None if c.territory is None else list(c.territory),
            "max_duration_seconds": c.max_duration_seconds,
            "prohibited": list(c.prohibited),
            "ai_training": c.ai_training,
            "label_required": c.disclosure_required,
            "valid_from": c.valid_from.isoformat(),
            "valid_until": None if until is None else until.isoformat(),
            "days_left": None if until is None else _days(until - self.checked_at),
            "compensation": c.compensation,
            "representation": None if c.representation is None else dict(c.representation),
            "reference_images": len(c.reference_images),
            "face_model": c.face_model,
            "max_distance": c.max_distance,
            "problems": list(self.problems),
            "acceptable": self.acceptable,
        }

    def lines(self) -> list[tuple[str, str]]:
        """The terms as (label, plain-language value) rows, in the order an officer reads them."""
        c = self.credential
        grantor = c.grantor.get("role", "")
        if c.grantor.get("name"):
            grantor += f": {c.grantor['name']}"
        if c.grantor.get("represents"):
            grantor += f" (for {c.grantor['represents']})"
        issuer = f"{self.issuer_name} ({c.issuer})" if self.issuer_name else f"{c.issuer} (NOT enrolled)"
        if c.valid_until is None:
            until = "no end date"
        else:
            left = _days(c.valid_until - self.checked_at)
            until = c.valid_until.isoformat() + (f" (in {left} days)" if left >= 0 else " (EXPIRED)")
        rows = [
            ("Subject", f"{c.subject_name} ({c.subject_id})"),
            ("Granted by", grantor),
            ("Granted to", c.grantee_name),
            ("Issuer", issuer),
            ("Signature", "valid (eddsa-jcs-2022, the issuer's own key)" if self.signature_ok else "INVALID"),
            ("Project", c.project),
            ("Purposes", ", ".join(c.purposes)),
            ("Media", ", ".join(c.media)),
            ("Territory", "worldwide" if c.territory is None else ", ".join(c.territory)),
            ("Longest output", f"{c.max_duration_seconds:g} s"),
            ("Prohibited", ", ".join(c.prohibited) or "nothing listed"),
            ("AI training", "allowed" if c.ai_training == "allowed" else "not allowed"),
            ("AI label", "required on every frame" if c.disclosure_required else "not required"),
            ("Valid from", c.valid_from.isoformat()),
            ("Valid until", until),
            ("Face match", f"{c.face_model}, distance at most {c.max_distance:g}; "
                           f"{len(c.reference_images)} reference photo(s)"),
        ]
        if c.compensation:
            rows.append(("Compensation", c.compensation))
        if c.representation:
            rows.append(("Representation", ", ".join(f"{k}: {v}" for k, v in sorted(c.representation.items()))))
        rows.append(("Credential id", c.credential_id))
        return rows


def preview_credential(submitted: bytes | str, *, ledger: Ledger, now: datetime | None = None) -> CredentialTerms:
    """Parse and check a credential file without storing or logging anything.

    A document that is not a well-formed LikenessConsent raises its ``MalformedCredential``
    (there are no terms to show); every other reason the import would refuse it (bad proof,
    issuer not enrolled, face threshold above the studio's ceiling, already imported) is listed
    in ``problems`` beside the terms, so the officer sees what it says and what is wrong.
    ``now`` dates the expiry check and the days left; enrolment is checked at the real now.
    """
    from consent.credential import LikenessConsent
    from consent.errors import ConsentError
    from consent.proof import parse_json, verify_proof
    from consent.verify import check_face_ceiling
    from studio.ledger.errors import UnknownCredential

    now = now or _utcnow()
    credential = LikenessConsent.from_document(parse_json(submitted))
    problems: list[str] = []
    signature_ok = False
    try:
        signature_ok = verify_proof(credential.document).controller == credential.issuer
        if not signature_ok:
            problems.append("the credential was not signed with its issuer's key")
    except ConsentError as exc:
        problems.append(f"the signature does not verify: {exc.user_message()}")
    enrolled = {i.did: i.name for i in ledger.list_issuers() if i.withdrawn_at is None}
    if not ledger.trust().is_trusted(credential.issuer, now=_utcnow()):  # as the import will ask: now
        problems.append("its issuer is not enrolled with this studio: check the issuer's identity and enrol it first")
    try:
        check_face_ceiling(credential, ledger.face_ceiling)
    except ConsentError as exc:
        problems.append(exc.user_message())
    try:
        ledger.get_credential(credential.credential_id)
        problems.append("a credential with this id was already imported")
    except UnknownCredential:
        pass
    if credential.valid_until is not None and credential.valid_until <= now:
        problems.append("it has already expired: no render can use it")
    return CredentialTerms(credential=credential, issuer_name=enrolled.get(credential.issuer),
                           signature_ok=signature_ok, problems=problems, checked_at=now)


@dataclass(frozen=True, kw_only=True)
class ExpiringCredential:
    credential_id: str
    subject_name: str
    project: str
    valid_until: datetime
    days_left: int
    renders: int  # render attempts made under it so far


def expiring_credentials(
    ledger: Ledger, *, within_days: int = 30, now: datetime | None = None
) -> list[ExpiringCredential]:
    """Active (not revoked, not yet expired) credentials that expire within ``within_days``, soonest first.

    The end date is read from the stored document, which ``get_credential`` checks against the
    log (a tampered document raises ``LedgerTampered`` rather than being listed with a false date).
    """
    now = now or _utcnow()
    horizon = now + timedelta(days=within_days)
    found: list[ExpiringCredential] = []
    for summary in ledger.list_credentials():
        if summary.revoked:
            continue
        until = ledger.get_credential(summary.credential_id).valid_until
        if until is None or not now < until <= horizon:
            continue
        found.append(ExpiringCredential(
            credential_id=summary.credential_id, subject_name=summary.subject_name, project=summary.project,
            valid_until=until, days_left=_days(until - now),
            renders=len(ledger.list_renders(credential_id=summary.credential_id, limit=10_000)),
        ))
    return sorted(found, key=lambda e: (e.valid_until, e.credential_id))


def renders_under(ledger: Ledger, credential_id: str, *, limit: int = 1000) -> list[RenderRecord]:
    """Every render attempt under ``credential_id`` (finished, failed, refused, lost...), newest first.

    ``UnknownCredential`` when no credential with this id was imported.
    """
    from studio.ledger.errors import UnknownCredential

    if not any(c.credential_id == credential_id for c in ledger.list_credentials()):
        raise UnknownCredential("no credential with this id was imported")
    return ledger.list_renders(credential_id=credential_id, limit=limit)
