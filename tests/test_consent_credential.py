"""LikenessConsent: issuing, strict parsing (each required field), the face-vector encoding."""

from __future__ import annotations

import base64
import copy
import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from consent.credential import (
    DISCLOSURE_NONE,
    LikenessConsent,
    decode_face_vector,
    encode_face_vector,
    issue_consent,
)
from consent.errors import MalformedCredential, NotIJson
from consent.keys import did_key_from_public, generate_keypair
from consent.proof import verify_proof

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
VECTOR = [math.sin(i) / 8 for i in range(128)]


@pytest.fixture(scope="module")
def key() -> Any:
    return generate_keypair()


def _issue(key: Any, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        issuer_key=key,
        subject_did=did_key_from_public(key.public_key()),
        subject_name="Eileen M. Collins",
        grantor={"role": "self"},
        grantee_name="Example Film Studio",
        reference_image_sha256=["ab" * 32],
        face_vector=VECTOR,
        project="Orbit (documentary, 2027)",
        purposes=["film", "education"],
        territory=["worldwide"],
        max_duration_seconds=120,
        prohibited=["political endorsement"],
        valid_from=NOW,
        valid_until=NOW + timedelta(days=365),
        compensation="contract ORB-2027-114",
        representation={"type": "union", "reference": "SAG-AFTRA TV/Theatrical 2023"},
        credential_id="urn:uuid:6f1c2a9e-3d4b-4c55-9e0a-1b2c3d4e5f60",
        now=NOW,
    )
    args.update(overrides)
    return issue_consent(**args)


@pytest.fixture(scope="module")
def document(key: Any) -> dict[str, Any]:
    return _issue(key)


def test_issued_credential_has_the_contract_shape(key: Any, document: dict[str, Any]) -> None:
    did = did_key_from_public(key.public_key())
    assert document["type"] == ["VerifiableCredential", "LikenessConsent"]
    assert document["issuer"] == did
    subject = document["credentialSubject"]
    assert subject["likeness"]["referenceImages"] == ["sha256:" + "ab" * 32]
    assert subject["likeness"]["faceTemplate"]["maxDistance"] == 0.6
    assert subject["uses"]["maxDurationSeconds"] == 120 and isinstance(subject["uses"]["maxDurationSeconds"], int)
    assert document["proof"]["verificationMethod"] == f"{did}#{did.removeprefix('did:key:')}"
    assert verify_proof(document).controller == did


def test_from_document_reads_every_field(key: Any, document: dict[str, Any]) -> None:
    consent = LikenessConsent.from_document(document)
    assert consent.credential_id == "urn:uuid:6f1c2a9e-3d4b-4c55-9e0a-1b2c3d4e5f60"
    assert consent.issuer == consent.subject_id == did_key_from_public(key.public_key())
    assert consent.subject_name == "Eileen M. Collins"
    assert (consent.grantor_role, consent.grantor) == ("self", {"role": "self"})
    assert consent.grantee_name == "Example Film Studio"
    assert consent.reference_images == ("sha256:" + "ab" * 32,)
    assert consent.face_model == "dlib_face_recognition_resnet_model_v1"
    assert len(consent.face_vector) == 128
    assert max(abs(a - b) for a, b in zip(consent.face_vector, VECTOR)) < 1e-7  # float32 precision
    assert consent.max_distance == 0.6
    assert consent.project == "Orbit (documentary, 2027)"
    assert consent.purposes == ("film", "education")
    assert consent.media == ("video",)
    assert consent.territory == ("worldwide",)
    assert consent.max_duration_seconds == 120
    assert consent.prohibited == ("political endorsement",)
    assert consent.ai_training == "notAllowed"
    assert (consent.disclosure, consent.disclosure_required) == ("label-as-ai-generated", True)
    assert consent.valid_from == NOW and consent.valid_until == NOW + timedelta(days=365)
    assert consent.compensation == "contract ORB-2027-114"
    assert consent.representation == {"type": "union", "reference": "SAG-AFTRA TV/Theatrical 2023"}
    assert consent.document == document and consent.document is not document
    assert hash(consent) == hash(LikenessConsent.from_document(document))


def test_from_json_round_trip(document: dict[str, Any]) -> None:
    assert LikenessConsent.from_json(json.dumps(document)) == LikenessConsent.from_document(document)
    assert LikenessConsent.from_json(json.dumps(document).encode()) == LikenessConsent.from_json(document)
    with pytest.raises(NotIJson):
        LikenessConsent.from_json('{"id": "a", "id": "b"}')


def test_optional_fields_may_be_absent(key: Any) -> None:
    minimal = _issue(
        key, territory=None, prohibited=(), valid_until=None, compensation=None, representation=None,
        disclosure=DISCLOSURE_NONE,
    )  # fmt: skip
    consent = LikenessConsent.from_document(minimal)
    assert consent.territory is None and consent.prohibited == () and consent.valid_until is None
    assert consent.compensation is None and consent.representation is None
    assert consent.disclosure_required is False


def test_estate_grantor(key: Any) -> None:
    grantor = {
        "role": "estate",
        "name": "Estate of Grace Hopper",
        "represents": "Grace Hopper",
        "chainOfTitle": "sha256:" + "0f" * 32,
    }
    consent = LikenessConsent.from_document(_issue(key, grantor=grantor, subject_did="urn:uuid:1234"))
    assert consent.grantor_role == "estate" and consent.grantor == grantor
    with pytest.raises(MalformedCredential, match="chainOfTitle"):
        _issue(key, grantor={**grantor, "chainOfTitle": "not a digest"})
    with pytest.raises(MalformedCredential, match="grantor.represents"):
        _issue(key, grantor={k: v for k, v in grantor.items() if k != "represents"})


REQUIRED_PATHS = [
    ("@context",),
    ("id",),
    ("type",),
    ("issuer",),
    ("validFrom",),
    ("credentialSubject",),
    ("credentialSubject", "id"),
    ("credentialSubject", "name"),
    ("credentialSubject", "grantor"),
    ("credentialSubject", "grantor", "role"),
    ("credentialSubject", "grantee"),
    ("credentialSubject", "grantee", "name"),
    ("credentialSubject", "likeness"),
    ("credentialSubject", "likeness", "referenceImages"),
    ("credentialSubject", "likeness", "faceTemplate"),
    ("credentialSubject", "likeness", "faceTemplate", "model"),
    ("credentialSubject", "likeness", "faceTemplate", "vector"),
    ("credentialSubject", "likeness", "faceTemplate", "maxDistance"),
    ("credentialSubject", "uses"),
    ("credentialSubject", "uses", "project"),
    ("credentialSubject", "uses", "purposes"),
    ("credentialSubject", "uses", "media"),
    ("credentialSubject", "uses", "maxDurationSeconds"),
    ("credentialSubject", "uses", "aiTraining"),
    ("credentialSubject", "uses", "disclosure"),
]


@pytest.mark.parametrize("path", REQUIRED_PATHS, ids=".".join)
def test_each_required_field_is_required(document: dict[str, Any], path: tuple[str, ...]) -> None:
    broken = copy.deepcopy(document)
    parent = broken
    for name in path[:-1]:
        parent = parent[name]
    del parent[path[-1]]
    with pytest.raises(MalformedCredential) as caught:
        LikenessConsent.from_document(broken)
    message = caught.value.user_message()
    assert path[-1] in message or ".".join(path[:-1]) in message, message


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(document)
    names = path.split(".")
    parent = broken
    for name in names[:-1]:
        parent = parent[name]
    parent[names[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("type", ["VerifiableCredential"], "LikenessConsent"),
        ("@context", ["https://www.w3.org/ns/credentials/v2"], "likeness-consent"),
        ("@context", "https://www.w3.org/ns/credentials/v2", "@context"),
        ("issuer", "https://example.com/issuer", "issuer"),
        ("id", "not a uri", "id"),
        ("validFrom", "2026-12-01", "validFrom"),
        ("validFrom", "2026-12-01T00:00:00", "time zone"),
        ("validUntil", "2026-11-30T10:00:00Z", "later than validFrom"),
        ("validUntill", "2030-01-01T00:00:00Z", "validUntill is not a known field"),
        ("credentialSubject.grantor.role", "friend", "grantor.role"),
        ("credentialSubject.likeness.referenceImages", [], "referenceImages"),
        ("credentialSubject.likeness.referenceImages", ["sha256:ABC"], r"referenceImages\[0\]"),
        ("credentialSubject.likeness.faceTemplate.vector", "AAAA", "128 float32"),
        ("credentialSubject.likeness.faceTemplate.vector", "not base64!", "base64"),
        ("credentialSubject.likeness.faceTemplate.maxDistance", -0.1, "maxDistance"),
        ("credentialSubject.likeness.faceTemplate.maxDistance", True, "maxDistance"),
        ("credentialSubject.uses.purposes", [], "purposes"),
        ("credentialSubject.uses.purposes", ["film", 3], r"purposes\[1\]"),
        ("credentialSubject.uses.maxDurationSeconds", "120", "maxDurationSeconds"),
        ("credentialSubject.uses.maxDurationSeconds", 0, "maxDurationSeconds"),
        ("credentialSubject.uses.aiTraining", "maybe", "aiTraining"),
        ("credentialSubject.uses.disclosure", "later", "disclosure"),
        ("credentialSubject.uses.maxDuration", 5, "uses.maxDuration is not a known field"),
        ("credentialSubject.representation", {"type": "union"}, "representation.reference"),
        ("credentialSubject.name", "  ", "credentialSubject.name"),
    ],
)
def test_rejects_bad_field_values(document: dict[str, Any], path: str, value: Any, match: str) -> None:
    with pytest.raises(MalformedCredential, match=match):
        LikenessConsent.from_document(_set(document, path, value))


def test_face_vector_encoding_round_trip() -> None:
    text = encode_face_vector(VECTOR)
    assert len(text) == 684  # base64 of 512 bytes
    decoded = decode_face_vector(text)
    assert decoded == tuple(float(x) for x in np.asarray(VECTOR, dtype="<f4"))
    with pytest.raises(ValueError):
        encode_face_vector(VECTOR[:-1])
    with pytest.raises(ValueError):
        encode_face_vector([float("nan")] * 128)
    nan_vector = base64.b64encode(b"\x00\x00\xc0\x7f" * 128).decode()
    with pytest.raises(MalformedCredential, match="non-finite"):
        decode_face_vector(nan_vector)
