"""Ed25519 keys: generation, encrypted PEM files, did:key and the W3C multibase key forms.

A consent credential names its issuer as ``did:key:z6Mk...``: the public key itself, so a
verifier needs no registry to check a proof (trust is a separate question, answered by
enrolment). Private keys live in PKCS#8 PEM files, encrypted with the best scheme
``cryptography`` offers and created with mode 0600 so other local users cannot read them.

>>> from consent.keys import generate_keypair, did_key_from_public, public_key_from_did
>>> key = generate_keypair()
>>> did = did_key_from_public(key.public_key())
>>> did.startswith("did:key:z6Mk")
True
>>> public_key_from_did(did) == key.public_key()
True
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consent.errors import (
    InvalidDid,
    KeyFileError,
    PassphraseRequired,
    UnsupportedKeyType,
    WrongPassphrase,
)
from consent.multibase import ED25519_PRIV_CODEC, ED25519_PUB_CODEC, decode_multibase, encode_multibase

_DID_KEY = "did:key:"
_KEY_SIZE = 32
_MAX_KEY_FILE_BYTES = 64 * 1024
_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

__all__ = [
    "did_key_from_public",
    "generate_keypair",
    "load_private_key",
    "private_key_from_multibase",
    "private_key_to_multibase",
    "public_key_from_did",
    "public_key_from_multibase",
    "public_key_to_multibase",
    "save_private_key",
    "verification_method_for",
]


def generate_keypair() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key (its public key is ``key.public_key()``)."""
    return Ed25519PrivateKey.generate()


# --- PEM files -----------------------------------------------------------------------------


def save_private_key(
    key: Ed25519PrivateKey, path: str | os.PathLike[str], *, passphrase: str | None, overwrite: bool = False
) -> None:
    """Write ``key`` as PKCS#8 PEM with mode 0600, encrypted unless ``passphrase`` is None.

    The file is created with 0600 from the start (not chmod-ed afterwards), so there is no
    moment where it is readable by others. An existing file is refused unless ``overwrite``:
    losing a signing key by a typo is worse than an extra flag.
    """
    if passphrase is not None and not passphrase:
        raise KeyFileError("the passphrase must not be empty (use no passphrase instead)")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase is not None
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(os.fspath(path), flags, 0o600)
    except FileExistsError:
        raise KeyFileError("a key file already exists there; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyFileError(f"the key file cannot be written ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # also when overwriting a file that had a wider mode
        handle.write(pem)


def load_private_key(path: str | os.PathLike[str], *, passphrase: str | None) -> Ed25519PrivateKey:
    """Read an Ed25519 PKCS#8 PEM file written by :func:`save_private_key` (or openssl).

    Raises ``PassphraseRequired`` / ``WrongPassphrase`` for the passphrase, ``UnsupportedKeyType``
    for a key of another algorithm and ``KeyFileError`` for anything else.
    """
    pem = _read_key_file(Path(path))
    encrypted = pem.lstrip().startswith(_ENCRYPTED_PEM)
    if encrypted and passphrase is None:
        raise PassphraseRequired("the key file is encrypted; a passphrase is needed")
    password = passphrase.encode("utf-8") if (encrypted and passphrase is not None) else None
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except ValueError:
        if encrypted:
            raise WrongPassphrase("the passphrase does not decrypt the key file") from None
        raise KeyFileError("the key file is not a PEM private key") from None
    except (TypeError, UnsupportedAlgorithm):
        raise KeyFileError("the key file is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UnsupportedKeyType("the key file holds a non-Ed25519 key; consent keys are Ed25519")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError("the key file does not exist") from None
    except IsADirectoryError:
        raise KeyFileError("the key file is a directory") from None
    except OSError as exc:
        raise KeyFileError(f"the key file cannot be read ({exc.strerror})") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError("the key file is too large to be a PEM private key")
    return data


# --- did:key and multibase -------------------------------------------------------------------


def public_key_to_multibase(public_key: Ed25519PublicKey) -> str:
    """``z6Mk...``: base58btc of 0xed01 + the 32 raw public key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return encode_multibase(ED25519_PUB_CODEC + raw)


def public_key_from_multibase(value: str) -> Ed25519PublicKey:
    """Inverse of :func:`public_key_to_multibase`; ``UnsupportedKeyType`` for another multicodec."""
    try:
        data = decode_multibase(value)
    except ValueError:
        raise InvalidDid("the public key is not base58btc multibase") from None
    if not data.startswith(ED25519_PUB_CODEC):
        raise UnsupportedKeyType("the key is not an Ed25519 public key (multicodec 0xed)")
    if len(data) != len(ED25519_PUB_CODEC) + _KEY_SIZE:
        raise InvalidDid("the Ed25519 public key does not have 32 bytes")
    return Ed25519PublicKey.from_public_bytes(data[len(ED25519_PUB_CODEC) :])


def private_key_to_multibase(key: Ed25519PrivateKey) -> str:
    """``z3u2...``: base58btc of 0x8026 + the 32-byte seed (the W3C ``privateKeyMultibase``)."""
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return encode_multibase(ED25519_PRIV_CODEC + seed)


def private_key_from_multibase(value: str) -> Ed25519PrivateKey:
    """Inverse of :func:`private_key_to_multibase` (reads the W3C vectors' ``keyPair.json``)."""
    try:
        data = decode_multibase(value)
    except ValueError:
        raise KeyFileError("the private key is not base58btc multibase") from None
    if not data.startswith(ED25519_PRIV_CODEC):
        raise UnsupportedKeyType("the key is not an Ed25519 private key (multicodec 0x1300)")
    if len(data) != len(ED25519_PRIV_CODEC) + _KEY_SIZE:
        raise KeyFileError("the Ed25519 private key does not have 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(data[len(ED25519_PRIV_CODEC) :])


def did_key_from_public(public_key: Ed25519PublicKey) -> str:
    """The did:key DID of an Ed25519 public key: ``did:key:z6Mk...``."""
    return _DID_KEY + public_key_to_multibase(public_key)


def verification_method_for(did: str) -> str:
    """The verification method id of a did:key: ``did:key:z6Mk...#z6Mk...``."""
    identifier = _did_key_identifier(did)
    public_key_from_multibase(identifier)  # refuse a method id for a key we could not verify with
    return f"{_DID_KEY}{identifier}#{identifier}"


def public_key_from_did(did: str) -> Ed25519PublicKey:
    """The Ed25519 public key named by a did:key DID or verification method id.

    Accepts ``did:key:z...`` and ``did:key:z...#z...`` (the fragment must repeat the key, as
    did:key defines). Other DID methods and other key types raise ``UnsupportedKeyType``.
    """
    return public_key_from_multibase(_did_key_identifier(did))


def _did_key_identifier(did: str) -> str:
    if not isinstance(did, str):
        raise InvalidDid("a DID must be a string")
    if not did.startswith(_DID_KEY):
        if did.startswith("did:"):
            raise UnsupportedKeyType("only did:key DIDs are supported")
        raise InvalidDid("not a DID")
    identifier, hash_sign, fragment = did[len(_DID_KEY) :].partition("#")
    if hash_sign and fragment != identifier:
        raise InvalidDid("the did:key fragment does not repeat the key")
    if not identifier.startswith("z"):
        raise InvalidDid("the did:key identifier is not base58btc multibase")
    return identifier
