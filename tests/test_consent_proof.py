"""eddsa-jcs-2022 proofs: the W3C test vectors, tampering, strict I-JSON parsing."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from consent.errors import (
    ConsentError,
    CredentialTooLarge,
    MalformedCredential,
    NotIJson,
    SignatureInvalid,
    UnsupportedCryptosuite,
    UnsupportedKeyType,
    VerificationMethodMismatch,
)
from consent.keys import (
    did_key_from_public,
    generate_keypair,
    private_key_from_multibase,
    public_key_to_multibase,
    verification_method_for,
)
from consent.proof import add_proof, canonicalize, parse_json, verify_proof
from consent.timestamps import parse_timestamp

# The W3C Data Integrity EdDSA test vectors (tests/data/README.md says where they come from).
VECTORS = Path(__file__).resolve().parent / "data" / "vectors"
JCS = VECTORS / "eddsa-jcs-2022"
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def vectors() -> Path:
    return JCS


@pytest.fixture(scope="module")
def signed_vector(vectors: Path) -> dict[str, Any]:
    return parse_json((vectors / "signedJCS.json").read_bytes())


@pytest.fixture(scope="module")
def vector_key(vectors: Path) -> Any:
    pair = json.loads((VECTORS / "keyPair.json").read_text())
    key = private_key_from_multibase(pair["privateKeyMultibase"])
    assert public_key_to_multibase(key.public_key()) == pair["publicKeyMultibase"]
    return key


def _text(path: Path) -> str:
    return path.read_text().strip()


# --- W3C vectors ---------------------------------------------------------------------------------


def test_verifies_w3c_signed_vector(signed_vector: dict[str, Any]) -> None:
    info = verify_proof(signed_vector)
    assert info.verification_method == signed_vector["proof"]["verificationMethod"]
    assert info.controller == signed_vector["proof"]["verificationMethod"].partition("#")[0]
    assert info.created == datetime(2023, 2, 24, 23, 36, 38, tzinfo=timezone.utc)
    assert info.cryptosuite == "eddsa-jcs-2022"
    assert info.proof_purpose == "assertionMethod"


def test_canonical_forms_and_hashes_match_vectors(vectors: Path, signed_vector: dict[str, Any]) -> None:
    unsecured = {k: v for k, v in signed_vector.items() if k != "proof"}
    proof_config = {k: v for k, v in signed_vector["proof"].items() if k != "proofValue"}
    assert proof_config == json.loads((vectors / "proofConfigJCS.json").read_text())
    canon_doc = canonicalize(unsecured)
    canon_proof = canonicalize(proof_config)
    assert canon_doc.decode() == _text(vectors / "canonDocJCS.txt")
    assert canon_proof.decode() == _text(vectors / "proofCanonJCS.txt")
    doc_hash = hashlib.sha256(canon_doc).hexdigest()
    proof_hash = hashlib.sha256(canon_proof).hexdigest()
    assert doc_hash == _text(vectors / "docHashJCS.txt")
    assert proof_hash == _text(vectors / "proofHashJCS.txt")
    assert proof_hash + doc_hash == _text(vectors / "combinedHashJCS.txt")


def test_reproduces_w3c_proof_value_from_key_pair(
    vectors: Path, signed_vector: dict[str, Any], vector_key: Any
) -> None:
    unsecured = {k: v for k, v in signed_vector.items() if k != "proof"}
    proof = signed_vector["proof"]
    signed = add_proof(
        unsecured,
        vector_key,
        verification_method=proof["verificationMethod"],
        created=parse_timestamp(proof["created"], field="created"),
    )
    assert signed["proof"]["proofValue"] == _text(vectors / "sigBTC58JCS.txt")
    assert signed["proof"] == proof
    assert signed == signed_vector


def _mutate(ch: str) -> str:
    """A different character of the same kind, so most edits keep the JSON well-formed."""
    if ch.isdigit():
        return str((int(ch) + 1) % 10)
    if ch.isalpha() and ch.isascii():
        base = "a" if ch.islower() else "A"
        return chr(ord(base) + (ord(ch) - ord(base) + 1) % 26)
    return "x" if ch != "x" else "y"


def _assert_every_change_rejected(text: str, positions: range) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for i in positions:
        tampered = text[:i] + _mutate(text[i]) + text[i + 1 :]
        with pytest.raises(ConsentError) as caught:
            verify_proof(parse_json(tampered))
        kinds[type(caught.value).__name__] = kinds.get(type(caught.value).__name__, 0) + 1
    return kinds


def test_rejects_every_one_character_change_of_w3c_vector(signed_vector: dict[str, Any]) -> None:
    compact = json.dumps(signed_vector, separators=(",", ":"), ensure_ascii=False)
    kinds = _assert_every_change_rejected(compact, range(len(compact)))
    # Most edits reach the signature check; the others fail earlier for their own reason.
    assert kinds["SignatureInvalid"] > len(compact) // 2


# --- round trips and refusals --------------------------------------------------------------------


@pytest.fixture()
def key_and_method() -> tuple[Any, str]:
    key = generate_keypair()
    return key, verification_method_for(did_key_from_public(key.public_key()))


def test_sign_verify_round_trip_without_context(key_and_method: tuple[Any, str]) -> None:
    key, method = key_and_method
    signed = add_proof({"b": [1, 2.5, "é"], "a": {"z": None, "y": True}}, key, verification_method=method, created=NOW)
    assert "@context" not in signed["proof"]
    assert verify_proof(signed).verification_method == method
    reparsed = parse_json(json.dumps(signed, indent=3, sort_keys=True))  # layout does not matter
    assert verify_proof(reparsed).created == NOW


def test_add_proof_does_not_modify_input(key_and_method: tuple[Any, str]) -> None:
    key, method = key_and_method
    document = {"@context": ["https://www.w3.org/ns/credentials/v2"], "x": {"y": 1}}
    before = json.dumps(document)
    signed = add_proof(document, key, verification_method=method, created=NOW)
    signed["x"]["y"] = 2
    assert json.dumps(document) == before


def test_add_proof_refuses_foreign_verification_method(key_and_method: tuple[Any, str]) -> None:
    key, _ = key_and_method
    other = verification_method_for(did_key_from_public(generate_keypair().public_key()))
    with pytest.raises(VerificationMethodMismatch):
        add_proof({"a": 1}, key, verification_method=other, created=NOW)


def test_add_proof_refuses_document_with_proof(key_and_method: tuple[Any, str]) -> None:
    key, method = key_and_method
    with pytest.raises(MalformedCredential, match="already has a proof"):
        add_proof({"a": 1, "proof": {}}, key, verification_method=method, created=NOW)


def test_add_proof_requires_aware_time(key_and_method: tuple[Any, str]) -> None:
    key, method = key_and_method
    with pytest.raises(ValueError, match="timezone-aware"):
        add_proof({"a": 1}, key, verification_method=method, created=datetime(2026, 1, 1))


@pytest.fixture()
def signed(key_and_method: tuple[Any, str]) -> dict[str, Any]:
    key, method = key_and_method
    return add_proof(
        {"@context": ["https://www.w3.org/ns/credentials/v2"], "claim": "x"}, key, verification_method=method, created=NOW
    )


def _with_proof(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    proof = {**document["proof"], **changes}
    return {**document, "proof": {k: v for k, v in proof.items() if v is not None}}


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"cryptosuite": "ecdsa-jcs-2019"}, UnsupportedCryptosuite, "eddsa-jcs-2022"),
        ({"type": "Ed25519Signature2020"}, UnsupportedCryptosuite, "DataIntegrityProof"),
        ({"expires": "2030-01-01T00:00:00Z"}, MalformedCredential, "expires"),
        ({"proofPurpose": "authentication"}, SignatureInvalid, "purpose"),
        ({"verificationMethod": "did:web:example.com#key-1"}, UnsupportedKeyType, "did:key"),
        ({"verificationMethod": 7}, MalformedCredential, "verificationMethod"),
        ({"created": "2026-11-30 10:00:00"}, MalformedCredential, "proof.created"),
        ({"proofValue": "uAAAA"}, SignatureInvalid, "multibase"),
        ({"proofValue": "z2Hn"}, SignatureInvalid, "64-byte"),
        ({"@context": ["https://www.w3.org/ns/credentials/v2", "https://x.invalid"]}, SignatureInvalid, "@context"),
        ({"created": "2026-11-30T10:00:01Z"}, SignatureInvalid, "does not match"),
    ],
)
def test_verify_refuses_bad_proof(
    signed: dict[str, Any], changes: dict[str, Any], error: type[ConsentError], match: str
) -> None:
    with pytest.raises(error, match=match):
        verify_proof(_with_proof(signed, **changes))


def test_verify_refuses_missing_or_multiple_proofs(signed: dict[str, Any]) -> None:
    with pytest.raises(MalformedCredential, match="no proof"):
        verify_proof({k: v for k, v in signed.items() if k != "proof"})
    with pytest.raises(MalformedCredential, match="exactly one proof"):
        verify_proof({**signed, "proof": [signed["proof"]]})
    with pytest.raises(MalformedCredential, match="object"):
        verify_proof({**signed, "proof": "z123"})


def test_verify_refuses_added_member(signed: dict[str, Any]) -> None:
    with pytest.raises(SignatureInvalid):
        verify_proof({**signed, "extra": "x"})


# --- I-JSON ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"a": 1, "a": 2}', "appears twice"),
        ('{"o": {"k": 1, "k": 1}}', "appears twice"),
        ('{"a": NaN}', "NaN"),
        ('{"a": -Infinity}', "Infinity"),
        ('{"a": 1e400}', "overflows"),
        ('{"a": 9007199254740992}', "2\\*\\*53"),
        ('{"a": -9007199254740992}', "2\\*\\*53"),
        ('{"a": ["ok", ["\\ud800"]]}', "surrogate"),
        ('{"\\udc00": 1}', "surrogate"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
    ],
)
def test_parse_json_rejects_non_i_json(text: str | bytes, match: str) -> None:
    with pytest.raises(NotIJson, match=match):
        parse_json(text)


def test_parse_json_accepts_edge_values() -> None:
    value = parse_json('{"a": 9007199254740991, "b": -9007199254740991, "c": "\\ud83d\\ude00", "d": 1e300}')
    assert value == {"a": 2**53 - 1, "b": -(2**53 - 1), "c": "\U0001f600", "d": 1e300}


@pytest.mark.parametrize("text", ["[1, 2]", '"x"', "{", '{"a": }', "", "[" * 50000])
def test_parse_json_rejects_malformed(text: str) -> None:
    with pytest.raises(MalformedCredential):
        parse_json(text)


def test_parse_json_size_limit() -> None:
    text = json.dumps({"pad": "x" * 2000})
    assert parse_json(text, max_bytes=len(text))["pad"]
    with pytest.raises(CredentialTooLarge):
        parse_json(text, max_bytes=len(text) - 1)


@pytest.mark.parametrize("value", [{"a": float("nan")}, {"a": float("inf")}, {"a": 2**53}, {"a": "\ud800"}, {1: "x"}])
def test_canonicalize_rejects_non_i_json(value: Any) -> None:
    with pytest.raises(NotIJson):
        canonicalize(value)


def test_canonicalize_sorts_keys_and_formats_numbers() -> None:
    # RFC 8785 section 3.2.3 example ordering and ES6 number forms
    assert canonicalize({"b": 1.0, "a": [1e21, 0.1, -0.0], "\u20ac": "\u00e9"}) == (
        '{"a":[1e+21,0.1,0],"b":1,"\u20ac":"\u00e9"}'.encode()
    )
