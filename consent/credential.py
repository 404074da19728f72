"""The LikenessConsent credential: a W3C Verifiable Credential 2.0 that licenses one face.

The field names under ``credentialSubject`` are a contract with other issuers (see the
example in the project's shared consent notes); :meth:`LikenessConsent.from_document`
checks every one of them and names the offending field path in its error, because a
consent document that is "roughly right" must not be treated as consent.

>>> from datetime import datetime, timezone
>>> from consent.keys import generate_keypair, did_key_from_public
>>> key = generate_keypair()
>>> now = datetime(2026, 11, 30, tzinfo=timezone.utc)
>>> doc = issue_consent(issuer_key=key, subject_did=did_key_from_public(key.public_key()),
...     subject_name="Eileen M. Collins", grantor={"role": "self"}, grantee_name="Example Film Studio",
...     reference_image_sha256=["0" * 64], face_vector=[0.0] * 128, project="Orbit",
...     purposes=["film"], max_duration_seconds=120, valid_from=now, now=now)
>>> LikenessConsent.from_document(doc).purposes
('film',)
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent.errors import MalformedCredential
from consent.keys import did_key_from_public, verification_method_for
from consent.proof import add_proof, parse_json
from consent.timestamps import format_timestamp, parse_timestamp

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
LIKENESS_CONTEXT = "https://avatar-studio.invalid/ns/likeness-consent/v1"
CREDENTIAL_TYPE = "LikenessConsent"
DLIB_FACE_MODEL = "dlib_face_recognition_resnet_model_v1"
FACE_VECTOR_SIZE = 128
DISCLOSURE_LABEL = "label-as-ai-generated"  # outputs must be labelled as AI-generated
DISCLOSURE_NONE = "none"
GRANTOR_ROLES = ("self", "estate", "guardian")
AI_TRAINING_VALUES = ("allowed", "notAllowed")

_FACE_VECTOR_STRUCT = struct.Struct(f"<{FACE_VECTOR_SIZE}f")
_SHA256_REF = re.compile(r"sha256:[0-9a-f]{64}\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")  # scheme ":" and no whitespace
# VC 2.0 data model properties a credential may carry at the top level; anything else is
# refused, so a misspelt "validUntill" cannot silently turn into consent without an end date.
_TOP_LEVEL = frozenset(
    {
        "@context", "id", "type", "issuer", "validFrom", "validUntil", "credentialSubject", "proof",
        "credentialStatus", "name", "description", "evidence", "termsOfUse", "credentialSchema",
        "refreshService", "relatedResource", "renderMethod", "confidenceMethod",
    }
)  # fmt: skip
_SUBJECT_KEYS = frozenset({"id", "name", "grantor", "grantee", "likeness", "uses", "compensation", "representation"})
_GRANTOR_KEYS = frozenset({"role", "name", "represents", "chainOfTitle"})
_LIKENESS_KEYS = frozenset({"referenceImages", "faceTemplate"})
_TEMPLATE_KEYS = frozenset({"model", "vector", "maxDistance"})
_USES_KEYS = frozenset(
    {"project", "purposes", "media", "territory", "maxDurationSeconds", "prohibited", "aiTraining", "disclosure"}
)

__all__ = [
    "LikenessConsent",
    "decode_face_vector",
    "encode_face_vector",
    "issue_consent",
]


@dataclass(frozen=True)
class LikenessConsent:
    """A parsed, shape-checked LikenessConsent credential (its proof is *not* checked here).

    Build one with :meth:`from_document` / :meth:`from_json`; :func:`consent.verify.verify_consent`
    checks the proof and the policy. ``document`` is a private deep copy of the signed JSON.
    """

    credential_id: str
    issuer: str
    subject_id: str
    subject_name: str
    grantor_role: str
    grantor: dict[str, str]
    grantee_name: str
    reference_images: tuple[str, ...]
    face_model: str
    face_vector: tuple[float, ...]  # (128,)
    max_distance: float
    project: str
    purposes: tuple[str, ...]
    media: tuple[str, ...]
    territory: tuple[str, ...] | None
    max_duration_seconds: float
    prohibited: tuple[str, ...]
    ai_training: str
    disclosure: str
    disclosure_required: bool
    valid_from: datetime
    valid_until: datetime | None
    compensation: str | None
    representation: dict[str, str] | None
    document: dict[str, Any] = field(repr=False)

    def __hash__(self) -> int:  # dict fields are unhashable; the id and signature identify it
        proof = self.document.get("proof")
        return hash((self.credential_id, proof.get("proofValue") if isinstance(proof, dict) else None))

    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, Any]) -> LikenessConsent:
        """Parse strict I-JSON text, then :meth:`from_document` (a dict goes straight there)."""
        if isinstance(text, Mapping):
            return cls.from_document(text)
        return cls._from_owned(parse_json(text))

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> LikenessConsent:
        """Check every field of a LikenessConsent document; ``MalformedCredential`` names the path.

        The document is copied, so later changes to the caller's dict do not reach this object.
        """
        return cls._from_owned(_copy_json(_obj(doc, "credential")))

    @classmethod
    def _from_owned(cls, doc: Mapping[str, Any]) -> LikenessConsent:
        """:meth:`from_document` for a dict nobody else holds (freshly parsed): no copy."""
        doc = _obj(doc, "credential")
        _only(doc, _TOP_LEVEL, "credential")
        _check_context_and_type(doc)
        subject = _obj(doc.get("credentialSubject"), "credentialSubject")
        _only(subject, _SUBJECT_KEYS, "credentialSubject")
        grantor = _parse_grantor(subject.get("grantor"))
        grantee = _obj(subject.get("grantee"), "credentialSubject.grantee")
        _only(grantee, frozenset({"name"}), "credentialSubject.grantee")
        likeness = _obj(subject.get("likeness"), "credentialSubject.likeness")
        _only(likeness, _LIKENESS_KEYS, "credentialSubject.likeness")
        template = _obj(likeness.get("faceTemplate"), "credentialSubject.likeness.faceTemplate")
        _only(template, _TEMPLATE_KEYS, "credentialSubject.likeness.faceTemplate")
        uses = _obj(subject.get("uses"), "credentialSubject.uses")
        _only(uses, _USES_KEYS, "credentialSubject.uses")
        valid_from = parse_timestamp(_required(doc, "validFrom", "credential"), field="validFrom")
        valid_until = parse_timestamp(doc["validUntil"], field="validUntil") if "validUntil" in doc else None
        if valid_until is not None and valid_until <= valid_from:
            raise MalformedCredential("validUntil must be later than validFrom")
        disclosure = _choice(uses, "disclosure", (DISCLOSURE_LABEL, DISCLOSURE_NONE), "credentialSubject.uses")
        return cls(
            credential_id=_uri(_required(doc, "id", "credential"), "id"),
            issuer=_issuer(doc.get("issuer")),
            subject_id=_uri(_required(subject, "id", "credentialSubject"), "credentialSubject.id"),
            subject_name=_text(subject, "name", "credentialSubject"),
            grantor_role=grantor["role"],
            grantor=grantor,
            grantee_name=_text(grantee, "name", "credentialSubject.grantee"),
            reference_images=_sha256_list(likeness.get("referenceImages")),
            face_model=_text(template, "model", "credentialSubject.likeness.faceTemplate"),
            face_vector=_face_vector(template.get("vector")),
            max_distance=_positive(template, "maxDistance", "credentialSubject.likeness.faceTemplate"),
            project=_text(uses, "project", "credentialSubject.uses"),
            purposes=_text_list(uses, "purposes", "credentialSubject.uses"),
            media=_text_list(uses, "media", "credentialSubject.uses"),
            territory=_text_list(uses, "territory", "credentialSubject.uses") if "territory" in uses else None,
            max_duration_seconds=_positive(uses, "maxDurationSeconds", "credentialSubject.uses"),
            prohibited=_text_list(uses, "prohibited", "credentialSubject.uses", allow_empty=True)
            if "prohibited" in uses
            else (),
            ai_training=_choice(uses, "aiTraining", AI_TRAINING_VALUES, "credentialSubject.uses"),
            disclosure=disclosure,
            disclosure_required=disclosure == DISCLOSURE_LABEL,
            valid_from=valid_from,
            valid_until=valid_until,
            compensation=_text(subject, "compensation", "credentialSubject") if "compensation" in subject else None,
            representation=_parse_representation(subject["representation"]) if "representation" in subject else None,
            document=dict(doc),
        )


# --- issuing ---------------------------------------------------------------------------------


def issue_consent(
    *,
    issuer_key: Ed25519PrivateKey,
    subject_did: str,
    subject_name: str,
    grantor: Mapping[str, str],
    grantee_name: str,
    reference_image_sha256: Sequence[str],
    face_vector: Sequence[float],
    face_model: str = DLIB_FACE_MODEL,
    max_distance: float = 0.6,
    project: str,
    purposes: Sequence[str],
    media: Sequence[str] = ("video",),
    territory: Sequence[str] | None = None,
    max_duration_seconds: float,
    prohibited: Sequence[str] = (),
    ai_training: str = "notAllowed",
    disclosure: str = DISCLOSURE_LABEL,
    valid_from: datetime,
    valid_until: datetime | None = None,
    compensation: str | None = None,
    representation: Mapping[str, str] | None = None,
    credential_id: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """Build and sign a LikenessConsent credential; the issuer is the did:key of ``issuer_key``.

    ``reference_image_sha256`` takes hex digests (with or without the ``sha256:`` prefix).
    The result is checked with :meth:`LikenessConsent.from_document` before it is returned,
    so an issued credential always parses.
    """
    issuer = did_key_from_public(issuer_key.public_key())
    uses: dict[str, Any] = {
        "project": project,
        "purposes": list(purposes),
        "media": list(media),
        "maxDurationSeconds": _json_number(max_duration_seconds),
        "aiTraining": ai_training,
        "disclosure": disclosure,
    }
    if territory is not None:
        uses["territory"] = list(territory)
    if prohibited:
        uses["prohibited"] = list(prohibited)
    subject: dict[str, Any] = {
        "id": subject_did,
        "name": subject_name,
        "grantor": dict(grantor),
        "grantee": {"name": grantee_name},
        "likeness": {
            "referenceImages": [_sha256_ref(digest) for digest in reference_image_sha256],
            "faceTemplate": {
                "model": face_model,
                "vector": encode_face_vector(face_vector),
                "maxDistance": _json_number(max_distance),
            },
        },
        "uses": uses,
    }
    if compensation is not None:
        subject["compensation"] = compensation
    if representation is not None:
        subject["representation"] = dict(representation)
    document: dict[str, Any] = {
        "@context": [VC_CONTEXT, LIKENESS_CONTEXT],
        "id": credential_id or f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": format_timestamp(valid_from),
    }
    if valid_until is not None:
        document["validUntil"] = format_timestamp(valid_until)
    document["credentialSubject"] = subject
    LikenessConsent.from_document({**document, "proof": {}})  # fail before signing, with the field path
    return add_proof(document, issuer_key, verification_method=verification_method_for(issuer), created=now)


def encode_face_vector(vector: Sequence[float]) -> str:
    """Base64 of 128 little-endian float32 values (the credential's faceTemplate.vector)."""
    values = [float(v) for v in vector]
    if len(values) != FACE_VECTOR_SIZE or not all(math.isfinite(v) for v in values):
        raise ValueError(f"a face vector has {FACE_VECTOR_SIZE} finite numbers")
    return base64.b64encode(_FACE_VECTOR_STRUCT.pack(*values)).decode("ascii")


def decode_face_vector(text: str) -> tuple[float, ...]:
    """Inverse of :func:`encode_face_vector`; ``MalformedCredential`` for anything else."""
    path = "credentialSubject.likeness.faceTemplate.vector"
    if not isinstance(text, str):
        raise MalformedCredential(f"{path} must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCredential(f"{path} is not valid base64") from None
    if len(raw) != _FACE_VECTOR_STRUCT.size:
        raise MalformedCredential(f"{path} must hold {FACE_VECTOR_SIZE} float32 values")
    values = _FACE_VECTOR_STRUCT.unpack(raw)
    if not math.isfinite(sum(values)):  # float32 values cannot overflow a float64 sum; NaN/inf propagate
        raise MalformedCredential(f"{path} holds a non-finite value")
    return values


# --- field checks (each names the path of the offending field) --------------------------------


def _check_context_and_type(doc: Mapping[str, Any]) -> None:
    context = doc.get("@context")
    if not isinstance(context, list) or not context or context[0] != VC_CONTEXT:
        raise MalformedCredential(f"@context must be a list starting with {VC_CONTEXT}")
    if LIKENESS_CONTEXT not in context:
        raise MalformedCredential(f"@context must include {LIKENESS_CONTEXT}")
    types = doc.get("type")
    if not isinstance(types, list) or "VerifiableCredential" not in types or CREDENTIAL_TYPE not in types:
        raise MalformedCredential(f"type must list VerifiableCredential and {CREDENTIAL_TYPE}")


def _parse_grantor(value: object) -> dict[str, str]:
    path = "credentialSubject.grantor"
    grantor = _obj(value, path)
    _only(grantor, _GRANTOR_KEYS, path)
    role = _choice(grantor, "role", GRANTOR_ROLES, path)
    if role in ("estate", "guardian"):
        _text(grantor, "name", path)
        _text(grantor, "represents", path)
    if role == "estate":
        if not isinstance(grantor.get("chainOfTitle"), str) or not _SHA256_REF.match(grantor["chainOfTitle"]):
            raise MalformedCredential(f"{path}.chainOfTitle must be 'sha256:' and 64 lowercase hex digits")
    for name, item in grantor.items():
        if not isinstance(item, str) or not item.strip():
            raise MalformedCredential(f"{path}.{name} must be a non-empty string")
    return dict(grantor)


def _parse_representation(value: object) -> dict[str, str]:
    path = "credentialSubject.representation"
    representation = _obj(value, path)
    _only(representation, frozenset({"type", "reference"}), path)
    return {"type": _text(representation, "type", path), "reference": _text(representation, "reference", path)}


def _issuer(value: object) -> str:
    if isinstance(value, Mapping):  # VC 2.0 also allows {"id": ..., "name": ...}
        value = value.get("id")
    if not isinstance(value, str) or not value.startswith("did:key:"):
        raise MalformedCredential("issuer must be a did:key DID")
    return value


def _obj(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedCredential(f"{path} must be an object" if value is not None else f"{path} is missing")
    return value


def _only(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise MalformedCredential(f"{path}.{unknown[0]} is not a known field")


def _required(obj: Mapping[str, Any], name: str, path: str) -> Any:
    if name not in obj:
        raise MalformedCredential(f"{path}.{name} is missing")
    return obj[name]


def _text(obj: Mapping[str, Any], name: str, path: str) -> str:
    value = _required(obj, name, path)
    if not isinstance(value, str) or not value.strip():
        raise MalformedCredential(f"{path}.{name} must be a non-empty string")
    return value


def _uri(value: object, path: str) -> str:
    if not isinstance(value, str) or not _URI.match(value):
        raise MalformedCredential(f"{path} must be a URI (e.g. urn:uuid:... or did:key:...)")
    return value


def _choice(obj: Mapping[str, Any], name: str, allowed: tuple[str, ...], path: str) -> str:
    value = _required(obj, name, path)
    if value not in allowed:
        raise MalformedCredential(f"{path}.{name} must be one of {', '.join(allowed)}")
    return str(value)


def _text_list(obj: Mapping[str, Any], name: str, path: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    value = _required(obj, name, path)
    if not isinstance(value, list) or (not value and not allow_empty):
        raise MalformedCredential(f"{path}.{name} must be a non-empty list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise MalformedCredential(f"{path}.{name}[{index}] must be a non-empty string")
    return tuple(value)


def _positive(obj: Mapping[str, Any], name: str, path: str) -> float:
    value = _required(obj, name, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise MalformedCredential(f"{path}.{name} must be a positive number")
    return float(value)


def _sha256_list(value: object) -> tuple[str, ...]:
    path = "credentialSubject.likeness.referenceImages"
    if not isinstance(value, list) or not value:
        raise MalformedCredential(f"{path} must be a non-empty list")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _SHA256_REF.match(item):
            raise MalformedCredential(f"{path}[{index}] must be 'sha256:' and 64 lowercase hex digits")
    return tuple(value)


def _face_vector(value: object) -> tuple[float, ...]:
    if value is None:
        raise MalformedCredential("credentialSubject.likeness.faceTemplate.vector is missing")
    return decode_face_vector(value)  # type: ignore[arg-type]


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars); several times faster than copy.deepcopy."""
    if isinstance(value, dict) or (not isinstance(value, (str, int, float, list)) and isinstance(value, Mapping)):
        return {name: _copy_json(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_json(item) for item in value]
    return value


def _sha256_ref(digest: str) -> str:
    text = digest.lower()
    return text if text.startswith("sha256:") else f"sha256:{text}"


def _json_number(value: float) -> int | float:
    """Whole numbers as JSON integers (``120``, not ``120.0``), so JCS bytes are what people expect."""
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
