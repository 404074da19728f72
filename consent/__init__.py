"""Consent credentials: keys, did:key, eddsa-jcs-2022 Data Integrity proofs, the LikenessConsent
credential and its verification policy. Pure Python (cryptography + rfc8785); never reads the clock.

>>> from datetime import datetime, timezone
>>> import consent
>>> key = consent.generate_keypair()
>>> did = consent.did_key_from_public(key.public_key())
>>> now = datetime(2026, 11, 30, tzinfo=timezone.utc)
>>> signed = consent.issue_consent(issuer_key=key, subject_did=did, subject_name="Eileen M. Collins",
...     grantor={"role": "self"}, grantee_name="Example Film Studio", reference_image_sha256=["0" * 64],
...     face_vector=[0.0] * 128, project="Orbit", purposes=["film"], max_duration_seconds=120,
...     valid_from=now, now=now)
>>> request = consent.ConsentRequest(purpose="film", project="Orbit", duration_seconds=30)
>>> verified = consent.verify_consent(signed, request=request, trust=consent.TrustList([did]),
...     status=consent.RevocationList(), likeness=[0.0] * 128, now=now)
>>> verified.credential.subject_name
'Eileen M. Collins'
"""

from consent.credential import LikenessConsent, decode_face_vector, encode_face_vector, issue_consent
from consent.errors import ConsentError
from consent.keys import (
    did_key_from_public,
    generate_keypair,
    load_private_key,
    public_key_from_did,
    save_private_key,
    verification_method_for,
)
from consent.proof import ProofInfo, add_proof, canonicalize, parse_json, verify_proof
from consent.verify import (
    ConsentRequest,
    IssuerTrust,
    RevocationList,
    RevocationStatus,
    TrustList,
    VerifiedConsent,
    check_policy,
    verify_consent,
)

__all__ = [
    "ConsentError",
    "ConsentRequest",
    "IssuerTrust",
    "LikenessConsent",
    "ProofInfo",
    "RevocationList",
    "RevocationStatus",
    "TrustList",
    "VerifiedConsent",
    "add_proof",
    "canonicalize",
    "check_policy",
    "decode_face_vector",
    "did_key_from_public",
    "encode_face_vector",
    "generate_keypair",
    "issue_consent",
    "load_private_key",
    "parse_json",
    "public_key_from_did",
    "save_private_key",
    "verification_method_for",
    "verify_consent",
    "verify_proof",
]
