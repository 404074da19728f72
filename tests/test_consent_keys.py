"""Ed25519 key files, did:key and multibase."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from consent.errors import InvalidDid, KeyFileError, PassphraseRequired, UnsupportedKeyType, WrongPassphrase
from consent.keys import (
    did_key_from_public,
    generate_keypair,
    load_private_key,
    private_key_from_multibase,
    private_key_to_multibase,
    public_key_from_did,
    public_key_from_multibase,
    public_key_to_multibase,
    save_private_key,
    verification_method_for,
)
from consent.multibase import b58decode, b58encode, encode_multibase


def _raw_public(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # type: ignore[attr-defined]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- base58btc -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [  # examples from the IETF base58 draft (draft-msporny-base58)
        (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
        (b"The quick brown fox jumps over the lazy dog.", "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"),
        (bytes.fromhex("0000287fb4cd"), "11233QC4"),
        (b"", ""),
    ],
)
def test_base58btc_known_answers(data: bytes, text: str) -> None:
    assert b58encode(data) == text
    assert b58decode(text) == data


def test_base58btc_rejects_characters_outside_alphabet() -> None:
    for bad in ("0", "O", "I", "l", "+"):
        with pytest.raises(ValueError):
            b58decode("2NEp" + bad)


# --- did:key ---------------------------------------------------------------------------------------


def test_did_key_round_trip() -> None:
    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    assert did.startswith("did:key:z6Mk")
    assert _raw_public(public_key_from_did(did)) == _raw_public(key.public_key())
    method = verification_method_for(did)
    assert method == f"{did}#{did.removeprefix('did:key:')}"
    assert _raw_public(public_key_from_did(method)) == _raw_public(key.public_key())
    assert verification_method_for(method) == method


def test_private_multibase_round_trip() -> None:
    key = generate_keypair()
    text = private_key_to_multibase(key)
    assert text.startswith("z3u2")  # 0x8026 prefix
    assert _raw_public(private_key_from_multibase(text).public_key()) == _raw_public(key.public_key())
    assert public_key_from_multibase(public_key_to_multibase(key.public_key())) == key.public_key()


def test_rejects_other_multicodecs() -> None:
    secp256k1 = encode_multibase(b"\xe7\x01" + b"\x02" * 33)  # a secp256k1-pub did:key
    with pytest.raises(UnsupportedKeyType, match="Ed25519"):
        public_key_from_did(f"did:key:{secp256k1}")
    with pytest.raises(UnsupportedKeyType):
        private_key_from_multibase(encode_multibase(b"\x81\x26" + b"\0" * 32))
    public = encode_multibase(b"\xed\x01" + b"\0" * 32)
    with pytest.raises(UnsupportedKeyType):
        private_key_from_multibase(public)


@pytest.mark.parametrize(
    ("did", "error"),
    [
        ("did:web:example.com", UnsupportedKeyType),
        ("did:example:123", UnsupportedKeyType),
        ("https://example.com/key", InvalidDid),
        ("did:key:6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2", InvalidDid),  # no multibase prefix
        ("did:key:" + encode_multibase(b"\xed\x01" + b"\x01" * 31), InvalidDid),  # 31-byte key
        ("did:key:z6Mk0000", InvalidDid),  # '0' is not base58
        (
            "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH",
            InvalidDid,
        ),  # fragment names another key
    ],
)
def test_public_key_from_did_rejects(did: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        public_key_from_did(did)


# --- key files --------------------------------------------------------------------------------------


def test_encrypted_key_file_round_trip(tmp_path: Path) -> None:
    key = generate_keypair()
    path = tmp_path / "issuer.pem"
    save_private_key(key, path, passphrase="correct horse")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert _mode(path) == 0o600
    loaded = load_private_key(path, passphrase="correct horse")
    assert _raw_public(loaded.public_key()) == _raw_public(key.public_key())


def test_unencrypted_key_file_is_still_private(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        path = tmp_path / "plain.pem"
        save_private_key(generate_keypair(), path, passphrase=None)
    finally:
        os.umask(old)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _mode(path) == 0o600
    assert load_private_key(path, passphrase=None)


def test_wrong_and_missing_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_private_key(generate_keypair(), path, passphrase="right")
    with pytest.raises(WrongPassphrase, match="does not decrypt") as caught:
        load_private_key(path, passphrase="wrong")
    assert "right" not in caught.value.user_message()
    with pytest.raises(PassphraseRequired):
        load_private_key(path, passphrase=None)


def test_save_refuses_overwrite_and_empty_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = generate_keypair()
    save_private_key(first, path, passphrase=None)
    with pytest.raises(KeyFileError, match="already exists"):
        save_private_key(generate_keypair(), path, passphrase=None)
    assert _raw_public(load_private_key(path, passphrase=None).public_key()) == _raw_public(first.public_key())
    path.chmod(0o644)
    save_private_key(generate_keypair(), path, passphrase=None, overwrite=True)
    assert _mode(path) == 0o600
    with pytest.raises(KeyFileError, match="empty"):
        save_private_key(generate_keypair(), tmp_path / "e.pem", passphrase="")


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist") as caught:
        load_private_key(tmp_path / "missing.pem", passphrase=None)
    assert str(tmp_path) not in caught.value.user_message()
    with pytest.raises(KeyFileError, match="directory"):
        load_private_key(tmp_path, passphrase=None)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(garbage, passphrase=None)
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"A" * (65 * 1024))
    with pytest.raises(KeyFileError, match="too large"):
        load_private_key(huge, passphrase=None)


def test_load_rejects_non_ed25519_key(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "p256.pem"
    path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UnsupportedKeyType, match="non-Ed25519"):
        load_private_key(path, passphrase=None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_load_reports_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.pem"
    save_private_key(generate_keypair(), path, passphrase=None)
    path.chmod(0)
    with pytest.raises(KeyFileError, match="cannot be read"):
        load_private_key(path, passphrase=None)
