"""verify_consent: one test per refusal, the order of checks, and VerifiedConsent's guard."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from consent.credential import LikenessConsent, issue_consent
from consent.errors import (
    ConsentError,
    ConsentExpired,
    ConsentNotYetValid,
    ConsentRevoked,
    CredentialTooLarge,
    DurationExceeded,
    LikenessMismatch,
    LikenessNotChecked,
    MalformedCredential,
    MediaNotCovered,
    NotIJson,
    ProjectNotCovered,
    PurposeNotCovered,
    SignatureInvalid,
    UnknownIssuer,
    UnsupportedCryptosuite,
    UnsupportedKeyType,
    VerificationMethodMismatch,
)
from consent.keys import did_key_from_public, generate_keypair, verification_method_for
from consent.proof import add_proof
from consent.verify import (
    ConsentRequest,
    RevocationList,
    TrustList,
    VerifiedConsent,
    check_policy,
    verify_consent,
)

ISSUED = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
VALID_FROM = datetime(2026, 12, 1, tzinfo=timezone.utc)
VALID_UNTIL = datetime(2027, 12, 1, tzinfo=timezone.utc)
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
TEMPLATE = [math.cos(i) / 10 for i in range(128)]
REQUEST = ConsentRequest(purpose="film", project="Orbit (documentary, 2027)", duration_seconds=42.0)


def _near(vector: list[float], distance: float) -> list[float]:
    """A vector exactly ``distance`` away from ``vector`` (along the first axis)."""
    return [vector[0] + distance, *vector[1:]]


@pytest.fixture(scope="module")
def key() -> Any:
    return generate_keypair()


@pytest.fixture(scope="module")
def did(key: Any) -> str:
    return did_key_from_public(key.public_key())


def _document(key: Any, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        issuer_key=key,
        subject_did=did_key_from_public(key.public_key()),
        subject_name="Eileen M. Collins",
        grantor={"role": "self"},
        grantee_name="Example Film Studio",
        reference_image_sha256=["cd" * 32],
        face_vector=TEMPLATE,
        max_distance=0.5,
        project="Orbit (documentary, 2027)",
        purposes=["film", "education"],
        max_duration_seconds=120,
        valid_from=VALID_FROM,
        valid_until=VALID_UNTIL,
        credential_id="urn:uuid:11111111-2222-4333-8444-555555555555",
        now=ISSUED,
    )
    args.update(overrides)
    return issue_consent(**args)


@pytest.fixture(scope="module")
def document(key: Any) -> dict[str, Any]:
    return _document(key)


def _verify(credential: Any, did: str, **overrides: Any) -> VerifiedConsent:
    args: dict[str, Any] = dict(
        request=REQUEST,
        trust=TrustList([did]),
        status=RevocationList(),
        likeness=_near(TEMPLATE, 0.25),
        now=NOW,
    )
    args.update(overrides)
    return verify_consent(credential, **args)


# --- success ---------------------------------------------------------------------------------------


def test_accepts_covered_request(document: dict[str, Any], did: str) -> None:
    verified = _verify(document, did)
    assert verified.credential == LikenessConsent.from_document(document)
    assert verified.request == REQUEST
    assert verified.verified_at == NOW
    assert verified.likeness_distance == pytest.approx(0.25, abs=1e-6)
    assert verified.likeness_checked


@pytest.mark.parametrize("form", ["dict", "str", "bytes", "LikenessConsent"])
def test_accepts_every_input_form(document: dict[str, Any], did: str, form: str) -> None:
    credential: Any = {
        "dict": document,
        "str": json.dumps(document),
        "bytes": json.dumps(document).encode(),
        "LikenessConsent": LikenessConsent.from_document(document),
    }[form]
    assert _verify(credential, did).credential.credential_id == document["id"]


def test_matching_is_case_and_space_insensitive(document: dict[str, Any], did: str) -> None:
    request = ConsentRequest(purpose="Film", project="  orbit  (Documentary, 2027) ", duration_seconds=1, media="Video")
    assert _verify(document, did, request=request).request == request


def test_boundaries_are_inclusive_where_the_consent_says_so(document: dict[str, Any], did: str) -> None:
    request = dataclasses.replace(REQUEST, duration_seconds=120)
    verified = _verify(document, did, request=request, now=VALID_FROM, likeness=_near(TEMPLATE, 0.4999))
    assert verified.likeness_distance is not None and verified.likeness_distance <= 0.5


def test_without_likeness_when_not_required(document: dict[str, Any], did: str) -> None:
    verified = _verify(document, did, likeness=None, require_likeness=False)
    assert verified.likeness_distance is None and not verified.likeness_checked


def test_given_likeness_is_checked_even_when_not_required(document: dict[str, Any], did: str) -> None:
    with pytest.raises(LikenessMismatch):
        _verify(document, did, likeness=_near(TEMPLATE, 0.9), require_likeness=False)


# --- one refusal per condition --------------------------------------------------------------------


def test_rejects_malformed_credential(document: dict[str, Any], did: str) -> None:
    broken = copy.deepcopy(document)
    del broken["credentialSubject"]["uses"]["purposes"]
    with pytest.raises(MalformedCredential, match="uses.purposes is missing"):
        _verify(broken, did)
    with pytest.raises(MalformedCredential, match="not valid JSON"):
        _verify("{not json", did)


def test_rejects_duplicate_names(document: dict[str, Any], did: str) -> None:
    text = json.dumps(document)
    duplicated = text.replace('"project": ', '"project": "Other", "project": ', 1)
    with pytest.raises(NotIJson, match="appears twice"):
        _verify(duplicated, did)


def test_rejects_oversized_credential(document: dict[str, Any], did: str) -> None:
    padded = json.dumps({**document, "description": "x" * (1024 * 1024)})
    with pytest.raises(CredentialTooLarge):
        _verify(padded, did)


def test_rejects_other_cryptosuite(document: dict[str, Any], did: str) -> None:
    changed = {**document, "proof": {**document["proof"], "cryptosuite": "eddsa-rdfc-2022"}}
    with pytest.raises(UnsupportedCryptosuite):
        _verify(changed, did)


def test_rejects_non_did_key_method(document: dict[str, Any], did: str) -> None:
    changed = {**document, "proof": {**document["proof"], "verificationMethod": "did:web:studio.example#key-1"}}
    with pytest.raises(UnsupportedKeyType):
        _verify(changed, did)


def test_rejects_missing_proof(document: dict[str, Any], did: str) -> None:
    with pytest.raises(MalformedCredential, match="no proof"):
        _verify({k: v for k, v in document.items() if k != "proof"}, did)


def test_rejects_tampered_terms(document: dict[str, Any], did: str) -> None:
    tampered = copy.deepcopy(document)
    tampered["credentialSubject"]["uses"]["maxDurationSeconds"] = 7200
    with pytest.raises(SignatureInvalid):
        _verify(tampered, did, request=dataclasses.replace(REQUEST, duration_seconds=3600))


def test_rejects_proof_by_another_key(key: Any, did: str, document: dict[str, Any]) -> None:
    """Mallory signs a credential that names the subject as issuer: a valid proof, the wrong key."""
    mallory = generate_keypair()
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    forged = add_proof(
        unsigned,
        mallory,
        verification_method=verification_method_for(did_key_from_public(mallory.public_key())),
        created=ISSUED,
    )
    with pytest.raises(VerificationMethodMismatch, match="issuer's key"):
        _verify(forged, did, trust=TrustList([did, did_key_from_public(mallory.public_key())]))


def test_rejects_unknown_issuer(document: dict[str, Any]) -> None:
    other = did_key_from_public(generate_keypair().public_key())
    with pytest.raises(UnknownIssuer, match="not enrolled"):
        _verify(document, other)


def test_trust_is_asked_about_the_issuer_at_now(document: dict[str, Any], did: str) -> None:
    class Withdrawn:
        """Enrolled until the end of 2026; trust is answered for the moment given."""

        def __init__(self) -> None:
            self.asked: list[tuple[str, datetime]] = []

        def is_trusted(self, candidate: str, *, now: datetime) -> bool:
            self.asked.append((candidate, now))
            return candidate == did and now < datetime(2027, 1, 1, tzinfo=timezone.utc)

    trust = Withdrawn()
    assert _verify(document, did, trust=trust, now=datetime(2026, 12, 15, tzinfo=timezone.utc))
    with pytest.raises(UnknownIssuer):
        _verify(document, did, trust=trust)
    assert trust.asked == [(did, datetime(2026, 12, 15, tzinfo=timezone.utc)), (did, NOW)]


def test_rejects_revoked_consent_from_then_on(document: dict[str, Any], did: str) -> None:
    status = RevocationList()
    assert _verify(document, did, status=status)
    status.revoke(document["id"])
    with pytest.raises(ConsentRevoked):
        _verify(document, did, status=status)
    with pytest.raises(ConsentRevoked):  # and again later, whatever else changes
        _verify(document, did, status=status, now=NOW + timedelta(days=1))


def test_rejects_expired_consent(document: dict[str, Any], did: str) -> None:
    with pytest.raises(ConsentExpired):
        _verify(document, did, now=VALID_UNTIL)  # validUntil itself is already outside


def test_rejects_consent_not_yet_valid(document: dict[str, Any], did: str) -> None:
    with pytest.raises(ConsentNotYetValid):
        _verify(document, did, now=VALID_FROM - timedelta(seconds=1))


def test_rejects_uncovered_media(document: dict[str, Any], did: str) -> None:
    with pytest.raises(MediaNotCovered, match="audio"):
        _verify(document, did, request=dataclasses.replace(REQUEST, media="audio"))


def test_rejects_uncovered_purpose(document: dict[str, Any], did: str) -> None:
    with pytest.raises(PurposeNotCovered, match="advertising"):
        _verify(document, did, request=dataclasses.replace(REQUEST, purpose="advertising"))


def test_rejects_uncovered_project(document: dict[str, Any], did: str) -> None:
    with pytest.raises(ProjectNotCovered, match="Sequel"):
        _verify(document, did, request=dataclasses.replace(REQUEST, project="Orbit II: Sequel"))


def test_rejects_too_long_output(document: dict[str, Any], did: str) -> None:
    with pytest.raises(DurationExceeded, match="120"):
        _verify(document, did, request=dataclasses.replace(REQUEST, duration_seconds=120.5))


def test_rejects_other_face(document: dict[str, Any], did: str) -> None:
    with pytest.raises(LikenessMismatch):
        _verify(document, did, likeness=_near(TEMPLATE, 0.5001))


def test_rejects_unchecked_likeness(document: dict[str, Any], did: str) -> None:
    with pytest.raises(LikenessNotChecked):
        _verify(document, did, likeness=None)


def test_bad_embedding_shape_is_a_programming_error(document: dict[str, Any], did: str) -> None:
    with pytest.raises(ValueError, match="128"):
        _verify(document, did, likeness=TEMPLATE[:64])


def test_messages_carry_no_key_material(document: dict[str, Any], did: str) -> None:
    for kwargs in ({"trust": TrustList([])}, {"now": VALID_UNTIL}, {"likeness": _near(TEMPLATE, 2.0)}):
        with pytest.raises(ConsentError) as caught:
            _verify(document, did, **kwargs)
        message = caught.value.user_message()
        assert did.removeprefix("did:key:") not in message and document["proof"]["proofValue"] not in message


# --- order of checks -------------------------------------------------------------------------------


def test_signature_is_checked_before_trust(document: dict[str, Any]) -> None:
    tampered = copy.deepcopy(document)
    tampered["credentialSubject"]["name"] = "Someone Else"
    with pytest.raises(SignatureInvalid):
        _verify(tampered, "did:key:z6MkNotTrustedAnyway")


def test_revocation_is_checked_before_validity_and_use(document: dict[str, Any], did: str) -> None:
    status = RevocationList([document["id"]])
    request = dataclasses.replace(REQUEST, purpose="advertising", duration_seconds=9999)
    with pytest.raises(ConsentRevoked):
        _verify(document, did, status=status, now=VALID_UNTIL + timedelta(days=1), request=request)


def test_use_is_checked_before_likeness(document: dict[str, Any], did: str) -> None:
    with pytest.raises(PurposeNotCovered):
        _verify(document, did, request=dataclasses.replace(REQUEST, purpose="games"), likeness=None)


def test_fields_come_from_the_signed_document(document: dict[str, Any], did: str) -> None:
    """A LikenessConsent edited by hand does not widen what the signed document allows."""
    widened = dataclasses.replace(LikenessConsent.from_document(document), project="Anything", purposes=("games",))
    with pytest.raises(ProjectNotCovered):
        _verify(widened, did, request=dataclasses.replace(REQUEST, project="Anything"))


def test_check_policy_alone(document: dict[str, Any]) -> None:
    credential = LikenessConsent.from_document(document)
    check_policy(credential, REQUEST, now=NOW)
    with pytest.raises(ConsentExpired):
        check_policy(credential, REQUEST, now=VALID_UNTIL + timedelta(days=1))


def test_requires_aware_now(document: dict[str, Any], did: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _verify(document, did, now=datetime(2027, 3, 1))


def test_request_rejects_bad_duration() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            ConsentRequest(purpose="film", project="x", duration_seconds=bad)


# --- VerifiedConsent cannot be made any other way --------------------------------------------------


def test_verified_consent_cannot_be_constructed(document: dict[str, Any]) -> None:
    credential = LikenessConsent.from_document(document)
    with pytest.raises(TypeError, match="verify_consent"):
        VerifiedConsent(credential, REQUEST, NOW, 0.1, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VerifiedConsent(credential, REQUEST, NOW, 0.1)  # type: ignore[call-arg]


def test_verified_consent_cannot_be_replaced_or_copied(document: dict[str, Any], did: str) -> None:
    verified = _verify(document, did)
    with pytest.raises(TypeError, match="verify_consent"):
        dataclasses.replace(verified, request=dataclasses.replace(REQUEST, purpose="games"))
    with pytest.raises(TypeError, match="verify_consent"):  # reusing its spent seal
        VerifiedConsent(verified.credential, REQUEST, NOW, 0.1, verified._seal)
    for clone in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            clone(verified)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.likeness_distance = 0.0  # type: ignore[misc]


def test_is_fast_enough_to_run_per_render(document: dict[str, Any], did: str) -> None:
    """A loose guard only (shared CI CPU); benchmarks/consent_verify.py measures properly."""
    import time

    text = json.dumps(document)
    start = time.perf_counter()
    for _ in range(20):
        _verify(text, did)
    assert (time.perf_counter() - start) / 20 < 0.05


# --- real faces (once models.face is available) ------------------------------------------------


@pytest.mark.slow
def test_real_faces_match_and_mismatch(key: Any, did: str, astronaut: Any, grace_hopper: Any) -> None:
    """The template from one photo accepts a resized copy of it and refuses another person."""
    face = pytest.importorskip("models.face", reason="models.face (face embeddings) is not available")
    import numpy as np
    from PIL import Image

    analyzer = face.FaceAnalyzer()
    template = [float(v) for v in analyzer.analyze(astronaut).embedding]
    document = _document(key, face_vector=template, max_distance=0.6)
    smaller = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.BICUBIC))  # (384, 384, 3)
    same = _verify(document, did, likeness=analyzer.analyze(smaller).embedding)
    assert same.likeness_distance is not None and same.likeness_distance < 0.6
    with pytest.raises(LikenessMismatch):
        _verify(document, did, likeness=analyzer.analyze(grace_hopper).embedding)


def _mutate(ch: str) -> str:
    if ch.isdigit():
        return str((int(ch) + 1) % 10)
    if ch.isalpha() and ch.isascii():
        base = "a" if ch.islower() else "A"
        return chr(ord(base) + (ord(ch) - ord(base) + 1) % 26)
    return "x" if ch != "x" else "y"


def test_every_field_of_the_credential_is_signed(document: dict[str, Any], did: str) -> None:
    """One-character changes across the whole credential (every third position) are all refused."""
    compact = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    assert _verify(compact, did)
    refused: dict[str, int] = {}
    for i in range(0, len(compact), 3):
        tampered = compact[:i] + _mutate(compact[i]) + compact[i + 1 :]
        with pytest.raises(ConsentError) as caught:
            _verify(tampered, did)
        refused[type(caught.value).__name__] = refused.get(type(caught.value).__name__, 0) + 1
    assert refused["SignatureInvalid"] > sum(refused.values()) // 2
