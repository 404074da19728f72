"""Data Integrity proofs with the ``eddsa-jcs-2022`` cryptosuite, and strict I-JSON parsing.

Implements W3C "Data Integrity EdDSA Cryptosuites v1.0", section 3.3 (eddsa-jcs-2022):
the signature is Ed25519 over ``SHA-256(JCS(proof config)) || SHA-256(JCS(document))``,
where JCS is RFC 8785 canonical JSON and the proof config is the proof without
``proofValue`` (carrying the document's ``@context``). ``proofValue`` is base58btc multibase.

Two deliberate tightenings over the spec, both failing closed: the document's ``@context``
must *equal* the proof's (the spec allows contexts appended after signing), and proof
options this verifier cannot evaluate without more input (``expires``, ``domain``,
``challenge``, ``previousProof``) are refused rather than ignored.

>>> from datetime import datetime, timezone
>>> from consent.keys import generate_keypair, did_key_from_public, verification_method_for
>>> key = generate_keypair()
>>> vm = verification_method_for(did_key_from_public(key.public_key()))
>>> signed = add_proof({"hello": "world"}, key, verification_method=vm,
...                    created=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> verify_proof(signed).verification_method == vm
True
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent.errors import (
    CredentialTooLarge,
    MalformedCredential,
    NotIJson,
    SignatureInvalid,
    UnsupportedCryptosuite,
    VerificationMethodMismatch,
)
from consent.keys import public_key_from_did
from consent.multibase import decode_multibase, encode_multibase
from consent.timestamps import format_timestamp, parse_timestamp

CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_TYPE = "DataIntegrityProof"
MAX_DOCUMENT_BYTES = 1024 * 1024
_SIGNATURE_SIZE = 64
_MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON (RFC 7493 section 2.2)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_UNSUPPORTED_PROOF_OPTIONS = ("expires", "domain", "challenge", "previousProof")

__all__ = [
    "CRYPTOSUITE",
    "MAX_DOCUMENT_BYTES",
    "PROOF_TYPE",
    "ProofInfo",
    "add_proof",
    "canonicalize",
    "parse_json",
    "verify_proof",
]


@dataclass(frozen=True)
class ProofInfo:
    """What a verified proof establishes: which key signed, for what purpose, when it says."""

    verification_method: str
    controller: str  # the did:key DID that controls verification_method
    created: datetime | None
    cryptosuite: str
    proof_purpose: str


# --- JSON ------------------------------------------------------------------------------------


def canonicalize(obj: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``obj``; ``NotIJson`` for NaN/Infinity, unsafe integers, lone surrogates."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise NotIJson(f"the document cannot be canonicalized: {exc}") from None


def parse_json(text: str | bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """Parse a JSON object strictly as I-JSON (RFC 7493).

    Refused with ``NotIJson``: duplicate member names (which JCS would silently collapse, so
    two verifiers could read different documents), NaN/Infinity, integers beyond +/-(2**53-1),
    numbers that overflow a double, invalid UTF-8 and lone surrogates. ``CredentialTooLarge``
    above ``max_bytes``; ``MalformedCredential`` for invalid JSON or a non-object top level.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > max_bytes:
        raise CredentialTooLarge(f"the document is larger than {max_bytes} bytes")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise NotIJson("the document starts with a byte order mark")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotIJson("the document is not valid UTF-8") from None
    try:
        value = json.loads(
            decoded,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_safe_int,
            parse_float=_parse_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise MalformedCredential(f"the document is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise MalformedCredential("the document is nested too deeply") from None
    if not isinstance(value, dict):
        raise MalformedCredential("the document must be a JSON object")
    if _SURROGATE_ESCAPE.search(decoded):  # only \\uD800-\\uDFFF escapes can produce surrogates
        _reject_lone_surrogates(value)
    return value


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise NotIJson(f"the member name {_short(name)!r} appears twice in one object")
        result[name] = value
    return result


def _reject_lone_surrogates(value: Any) -> None:
    """Walk the parsed value; a str that cannot be UTF-8 encoded holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise NotIJson("the document contains a lone surrogate (\\uD800-\\uDFFF) in a string") from None


def _reject_constant(name: str) -> Any:
    raise NotIJson(f"{name} is not allowed in I-JSON")


def _parse_safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_SAFE_INTEGER:
        raise NotIJson("an integer is outside the I-JSON range +/-(2**53-1)")
    return value


def _parse_finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NotIJson("a number overflows a double")
    return value


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


# --- proofs ----------------------------------------------------------------------------------


def add_proof(
    document: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    *,
    verification_method: str,
    created: datetime,
    proof_purpose: str = "assertionMethod",
) -> dict[str, Any]:
    """Return a copy of ``document`` secured with an eddsa-jcs-2022 DataIntegrityProof.

    ``verification_method`` must be the did:key method of ``private_key`` (checked, so a
    typo cannot produce a proof that names someone else's key).
    """
    if "proof" in document:
        raise MalformedCredential("the document already has a proof")
    if public_key_from_did(verification_method) != private_key.public_key():
        raise VerificationMethodMismatch("the verification method does not name the signing key")
    unsecured = copy.deepcopy(dict(document))
    proof_config: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": format_timestamp(created),
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    if "@context" in unsecured:
        proof_config["@context"] = copy.deepcopy(unsecured["@context"])
    signature = private_key.sign(_hash_data(proof_config, unsecured))
    unsecured["proof"] = {**proof_config, "proofValue": encode_multibase(signature)}
    return unsecured


def verify_proof(document: Mapping[str, Any], *, expected_proof_purpose: str = "assertionMethod") -> ProofInfo:
    """Verify the document's eddsa-jcs-2022 proof; return what it proves or raise a ConsentError leaf.

    Raises ``MalformedCredential`` (no proof, bad shapes), ``UnsupportedCryptosuite``,
    ``UnsupportedKeyType`` / ``InvalidDid`` (verification method not an Ed25519 did:key),
    ``NotIJson`` and ``SignatureInvalid``.
    """
    proof = _single_proof(document)
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise UnsupportedCryptosuite(f"the proof is not a {PROOF_TYPE} with the {CRYPTOSUITE} cryptosuite")
    for option in _UNSUPPORTED_PROOF_OPTIONS:
        if option in proof:
            raise MalformedCredential(f"the proof option {option!r} is not supported")
    purpose = proof.get("proofPurpose")
    if purpose != expected_proof_purpose:
        raise SignatureInvalid(f"the proof purpose is not {expected_proof_purpose}")
    method = proof.get("verificationMethod")
    if not isinstance(method, str):
        raise MalformedCredential("proof.verificationMethod must be a string")
    public_key = public_key_from_did(method)
    created = parse_timestamp(proof["created"], field="proof.created") if "created" in proof else None
    signature = _signature_bytes(proof.get("proofValue"))

    unsecured = {name: value for name, value in document.items() if name != "proof"}
    proof_config = {name: value for name, value in proof.items() if name != "proofValue"}
    if "@context" in proof_config and proof_config["@context"] != unsecured.get("@context"):
        raise SignatureInvalid("the proof's @context differs from the document's")
    try:
        public_key.verify(signature, _hash_data(proof_config, unsecured))
    except InvalidSignature:
        raise SignatureInvalid("the signature does not match the document") from None
    return ProofInfo(
        verification_method=method,
        controller=method.partition("#")[0],
        created=created,
        cryptosuite=CRYPTOSUITE,
        proof_purpose=purpose,
    )


def _single_proof(document: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise MalformedCredential("the document must be a JSON object")
    proof = document.get("proof")
    if proof is None:
        raise MalformedCredential("the document has no proof")
    if isinstance(proof, list):
        raise MalformedCredential("proof sets are not supported; the document must carry exactly one proof")
    if not isinstance(proof, Mapping):
        raise MalformedCredential("proof must be an object")
    return proof


def _signature_bytes(proof_value: object) -> bytes:
    try:
        signature = decode_multibase(proof_value)  # type: ignore[arg-type]
    except ValueError:
        raise SignatureInvalid("proof.proofValue is not base58btc multibase") from None
    if len(signature) != _SIGNATURE_SIZE:
        raise SignatureInvalid("proof.proofValue is not a 64-byte Ed25519 signature")
    return signature


def _hash_data(proof_config: Mapping[str, Any], unsecured: Mapping[str, Any]) -> bytes:
    """SHA-256(JCS(proof config)) || SHA-256(JCS(unsecured document)), the bytes that are signed."""
    return hashlib.sha256(canonicalize(proof_config)).digest() + hashlib.sha256(canonicalize(unsecured)).digest()
