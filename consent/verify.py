"""The consent decision: may this render go ahead under this credential, right now?

``verify_consent`` is the only way to obtain a :class:`VerifiedConsent`, and the animators
demand one, so no motion can be rendered without a positive decision. The checks run in a
fixed order and the first failure raises its own ``ConsentError`` leaf:

1. parse (strict I-JSON, every field shape-checked)
2. proof: eddsa-jcs-2022 signature, made by the issuer's own did:key;
   faceTemplate.maxDistance within the verifier's ceiling (the studio sets it, not the credential)
3. issuer trusted (enrolled and not withdrawn) at ``now``
4. credential not revoked
5. validFrom <= now < validUntil
6. media, purpose and project covered; requested duration <= maxDurationSeconds
7. likeness: L2 distance of the photo's face embedding to the template <= maxDistance

>>> from datetime import datetime, timezone
>>> from consent.credential import issue_consent
>>> from consent.keys import generate_keypair, did_key_from_public
>>> key = generate_keypair(); did = did_key_from_public(key.public_key())
>>> now = datetime(2026, 11, 30, tzinfo=timezone.utc)
>>> doc = issue_consent(issuer_key=key, subject_did=did, subject_name="Eileen M. Collins",
...     grantor={"role": "self"}, grantee_name="Example Film Studio", reference_image_sha256=["0" * 64],
...     face_vector=[0.0] * 128, project="Orbit", purposes=["film"], max_duration_seconds=120,
...     valid_from=now, now=now)
>>> verified = verify_consent(doc, request=ConsentRequest(purpose="film", project="Orbit", duration_seconds=10),
...     trust=TrustList([did]), status=RevocationList([]), likeness=[0.01] * 128, now=now)
>>> round(verified.likeness_distance, 3)
0.113
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from consent.credential import FACE_VECTOR_SIZE, LikenessConsent
from consent.errors import (
    ConsentExpired,
    ConsentNotYetValid,
    ConsentRevoked,
    DurationExceeded,
    FaceThresholdAboveCeiling,
    LikenessMismatch,
    LikenessNotChecked,
    MediaNotCovered,
    ProjectNotCovered,
    PurposeNotCovered,
    ReferencePhotoMismatch,
    UnknownIssuer,
    VerificationMethodMismatch,
)
from consent.proof import verify_proof

__all__ = [
    "DEFAULT_MAX_DISTANCE_CEILING",
    "ConsentRequest",
    "IssuerTrust",
    "RevocationList",
    "RevocationStatus",
    "TrustList",
    "VerifiedConsent",
    "check_face_ceiling",
    "check_policy",
    "check_reference_face",
    "verify_consent",
]


@dataclass(frozen=True)
class ConsentRequest:
    """The facts of one render that the consent must cover."""

    purpose: str
    project: str
    duration_seconds: float
    media: str = "video"

    def __post_init__(self) -> None:
        if not math.isfinite(self.duration_seconds) or self.duration_seconds < 0:
            raise ValueError("duration_seconds must be a finite number >= 0")


class IssuerTrust(Protocol):
    """Answers whether an issuer DID is enrolled (and not withdrawn) at a moment."""

    def is_trusted(self, did: str, *, now: datetime) -> bool: ...


class RevocationStatus(Protocol):
    """Answers, live, whether a credential id has been revoked."""

    def is_revoked(self, credential_id: str) -> bool: ...


class TrustList:
    """In-memory :class:`IssuerTrust`: a fixed set of trusted issuer DIDs."""

    def __init__(self, dids: Iterable[str]) -> None:
        self._dids = frozenset(dids)

    def is_trusted(self, did: str, *, now: datetime) -> bool:
        return did in self._dids


class RevocationList:
    """In-memory :class:`RevocationStatus`: a set of revoked credential ids (can grow)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids = set(ids)

    def revoke(self, credential_id: str) -> None:
        self._ids.add(credential_id)

    def is_revoked(self, credential_id: str) -> bool:
        return credential_id in self._ids


# --- the proof of a positive decision --------------------------------------------------------


class _Seal:
    """A one-use ticket: ``verify_consent`` mints one per decision, the constructor spends it."""

    __slots__ = ()


_UNSPENT: set[_Seal] = set()


@dataclass(frozen=True)
class VerifiedConsent:
    """A consent decision that passed every check. Only :func:`verify_consent` can make one.

    Direct construction, ``dataclasses.replace`` and copying raise ``TypeError``: each
    instance spends a seal minted by ``verify_consent`` for that one decision. (Python code
    can always reach around this with ``object.__new__``; the guard stops accidents and
    shortcuts, not a hostile process.)
    """

    credential: LikenessConsent
    request: ConsentRequest
    verified_at: datetime
    likeness_distance: float | None  # None only when verified with require_likeness=False
    _seal: _Seal = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            _UNSPENT.remove(self._seal)
        except (KeyError, TypeError):
            raise TypeError("a VerifiedConsent can only be made by consent.verify_consent") from None

    def __reduce__(self) -> Any:
        raise TypeError("a VerifiedConsent cannot be copied or pickled; verify the credential again")

    @property
    def likeness_checked(self) -> bool:
        return self.likeness_distance is not None


# --- policy ----------------------------------------------------------------------------------


def _normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


class _Check(Protocol):
    def __call__(self, credential: LikenessConsent, request: ConsentRequest, now: datetime) -> None: ...


def _check_validity(credential: LikenessConsent, request: ConsentRequest, now: datetime) -> None:
    if now < credential.valid_from:
        raise ConsentNotYetValid("the consent is not valid yet")
    if credential.valid_until is not None and now >= credential.valid_until:
        raise ConsentExpired("the consent has expired")


def _check_media(credential: LikenessConsent, request: ConsentRequest, now: datetime) -> None:
    if _normalized(request.media) not in {_normalized(m) for m in credential.media}:
        raise MediaNotCovered(f"the consent does not cover the medium {request.media!r}")


def _check_purpose(credential: LikenessConsent, request: ConsentRequest, now: datetime) -> None:
    if _normalized(request.purpose) not in {_normalized(p) for p in credential.purposes}:
        raise PurposeNotCovered(f"the consent does not cover the purpose {request.purpose!r}")


def _check_project(credential: LikenessConsent, request: ConsentRequest, now: datetime) -> None:
    if _normalized(request.project) != _normalized(credential.project):
        raise ProjectNotCovered(f"the consent does not cover the project {request.project!r}")


def _check_duration(credential: LikenessConsent, request: ConsentRequest, now: datetime) -> None:
    if request.duration_seconds > credential.max_duration_seconds:
        raise DurationExceeded(
            f"the output would last {request.duration_seconds:g} s; the consent allows at most "
            f"{credential.max_duration_seconds:g} s"
        )


POLICY: tuple[_Check, ...] = (_check_validity, _check_media, _check_purpose, _check_project, _check_duration)


def check_policy(credential: LikenessConsent, request: ConsentRequest, *, now: datetime) -> None:
    """Run the time and use checks (steps 5-6) in order; the first failure raises."""
    for check in POLICY:
        check(credential, request, now)


def likeness_distance(credential: LikenessConsent, likeness: Sequence[float]) -> float:
    """L2 distance between a face embedding (128,) and the credential's template (128,)."""
    values = [float(v) for v in likeness]
    if len(values) != FACE_VECTOR_SIZE or not all(math.isfinite(v) for v in values):
        raise ValueError(f"a face embedding has {FACE_VECTOR_SIZE} finite numbers")
    return math.dist(values, credential.face_vector)


DEFAULT_MAX_DISTANCE_CEILING = 0.6
"""dlib's ResNet face model: two photos of one person lie within 0.6 (its published threshold)."""


def _ceiling(value: float) -> float:
    ceiling = float(value)
    if not math.isfinite(ceiling) or not 0 < ceiling <= DEFAULT_MAX_DISTANCE_CEILING:
        raise ValueError(f"a face-match ceiling lies in (0, {DEFAULT_MAX_DISTANCE_CEILING}]; stricter only")
    return ceiling


def check_face_ceiling(credential: LikenessConsent, ceiling: float = DEFAULT_MAX_DISTANCE_CEILING) -> None:
    """Refuse a credential whose own match threshold is looser than the verifier's ceiling."""
    limit = _ceiling(ceiling)
    if credential.max_distance > limit:
        raise FaceThresholdAboveCeiling(
            f"the credential's face-match threshold (maxDistance {credential.max_distance:g}) is above this "
            f"studio's ceiling of {limit:g}, so any face could pass it"
        )


def check_reference_face(
    credential: LikenessConsent, embedding: Sequence[float], ceiling: float = DEFAULT_MAX_DISTANCE_CEILING
) -> float:
    """The template must belong to the pictured face: distance <= the stricter of both thresholds."""
    limit = min(_ceiling(ceiling), credential.max_distance)
    distance = likeness_distance(credential, embedding)
    if distance > limit:
        raise ReferencePhotoMismatch(
            f"the reference photo's face does not match the credential's face template "
            f"(distance {distance:.3f} > {limit:g}); the template must describe the pictured face"
        )
    return distance


# --- the decision ----------------------------------------------------------------------------


def verify_consent(
    credential: LikenessConsent | Mapping[str, Any] | str | bytes,
    *,
    request: ConsentRequest,
    trust: IssuerTrust,
    status: RevocationStatus,
    likeness: Sequence[float] | None,
    now: datetime,
    require_likeness: bool = True,
    max_distance_ceiling: float = DEFAULT_MAX_DISTANCE_CEILING,
) -> VerifiedConsent:
    """Decide whether ``request`` is covered by ``credential`` at ``now``; raise the first failure.

    ``likeness`` is the 128-d embedding of the face in the photo being animated. With
    ``require_likeness=False`` a missing embedding is allowed and the result says so
    (``likeness_distance is None``); a given embedding is always checked.
    ``max_distance_ceiling`` is the verifier's policy: a credential whose ``maxDistance`` is
    looser is refused whatever face is shown (it may only be set stricter than dlib's 0.6).
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    ceiling = _ceiling(max_distance_ceiling)
    parsed = _parse(credential)
    proof = verify_proof(parsed.document)
    if proof.controller != parsed.issuer:
        raise VerificationMethodMismatch("the consent was not signed with the issuer's key")
    check_face_ceiling(parsed, ceiling)
    if not trust.is_trusted(parsed.issuer, now=now):
        raise UnknownIssuer("the consent's issuer is not enrolled with this studio")
    if status.is_revoked(parsed.credential_id):
        raise ConsentRevoked("the consent has been revoked")
    check_policy(parsed, request, now=now)
    distance: float | None = None
    if likeness is not None:
        distance = likeness_distance(parsed, likeness)
        if distance > parsed.max_distance:
            raise LikenessMismatch("the face in the photo does not match the face the consent was given for")
    elif require_likeness:
        raise LikenessNotChecked("the photo's face was not compared with the consent's face template")
    seal = _Seal()
    _UNSPENT.add(seal)
    return VerifiedConsent(parsed, request, now, distance, seal)


def _parse(credential: LikenessConsent | Mapping[str, Any] | str | bytes) -> LikenessConsent:
    # A LikenessConsent is re-parsed from its own document so that its fields are exactly
    # what was signed, even if someone constructed one by hand.
    if isinstance(credential, LikenessConsent):
        return LikenessConsent.from_document(credential.document)
    if isinstance(credential, (str, bytes)):
        return LikenessConsent.from_json(credential)
    return LikenessConsent.from_document(credential)
