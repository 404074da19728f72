"""Signed checkpoints as text notes, after C2SP tlog-checkpoint and C2SP signed-note.

A note is the log's size and root hash, signed by the studio key, in a form that can leave the
database (a receipt, an auditor's file, the data folder) and later prove that the log still
extends it::

    avatar-studio/ledger/did:key:z6Mk...        <- origin: names the log and the studio key
    1234                                        <- size: number of events
    q6V0...=                                    <- root hash, base64 (the chain head at seq = size)
                                                <- blank line
    — avatar-studio/ledger/did:key:z6Mk... AAAA...  <- key name, base64(key id || Ed25519 signature)

The root hash is the hash-chain head (``events.hash`` at seq = size; 32 zero bytes for an empty
log): every event hash commits to the previous one, so the head commits to the whole prefix. The
signature covers the note body (the first three lines with their newlines). As in signed-note,
the key id is the first 4 bytes of SHA-256(key name || "\\n" || 0x01 || the 32-byte public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from studio.ledger.chain import GENESIS_HASH
from studio.ledger.errors import CheckpointInvalid

ORIGIN_PREFIX = "avatar-studio/ledger/"
MAX_NOTE_BYTES = 4096
_DASH = "\u2014"
_ED25519 = b"\x01"


def origin_for(studio_did: str) -> str:
    return ORIGIN_PREFIX + studio_did


def _key_id(name: str, key: Ed25519PublicKey) -> bytes:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _ED25519 + raw).digest()[:4]


@dataclass(frozen=True)
class SignedCheckpoint:
    """The log's ``size`` and ``root_hash`` (hex) signed by the studio whose DID is in ``origin``."""

    origin: str
    size: int
    root_hash: str
    key_id: bytes
    signature: bytes

    @property
    def studio_did(self) -> str:
        return self.origin.removeprefix(ORIGIN_PREFIX)

    def body(self) -> str:
        root = base64.b64encode(bytes.fromhex(self.root_hash)).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root}\n"

    def to_note(self) -> str:
        signature = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{self.body()}\n{_DASH} {self.origin} {signature}\n"

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, *, studio_did: str, size: int, root_hash: str) -> SignedCheckpoint:
        origin = origin_for(studio_did)
        unsigned = cls(origin, size, root_hash, _key_id(origin, key.public_key()), b"")
        return cls(origin, size, root_hash, unsigned.key_id, key.sign(unsigned.body().encode("utf-8")))

    @classmethod
    def from_note(cls, text: str) -> SignedCheckpoint:
        """Parse a note (its signature is checked by ``verify`` / ``Ledger.verify_extends``)."""
        if len(text.encode("utf-8", "replace")) > MAX_NOTE_BYTES:
            raise CheckpointInvalid("the checkpoint note is too large")
        body, sep, signatures = text.partition("\n\n")
        lines = body.split("\n")
        if not sep or len(lines) != 3 or not lines[0].startswith(ORIGIN_PREFIX):
            raise CheckpointInvalid("this is not an avatar-studio ledger checkpoint note")
        origin, size_text, root_text = lines
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise CheckpointInvalid("the checkpoint note's size line is not a number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            root = b""
        if len(root) != 32:
            raise CheckpointInvalid("the checkpoint note's root hash is not 32 bytes of base64")
        for line in signatures.split("\n"):
            parts = line.split(" ")
            if len(parts) == 3 and parts[0] == _DASH and parts[1] == origin:
                try:
                    blob = base64.b64decode(parts[2], validate=True)
                except (binascii.Error, ValueError):
                    continue
                if len(blob) == 68:
                    return cls(origin, int(size_text), root.hex(), blob[:4], blob[4:])
        raise CheckpointInvalid("the checkpoint note carries no signature by its origin's key")

    def verify(self, key: Ed25519PublicKey, *, studio_did: str) -> None:
        """Raise ``CheckpointInvalid`` unless this studio's key signed exactly this note."""
        if self.origin != origin_for(studio_did):
            raise CheckpointInvalid("the checkpoint was signed by another studio key (it is not this ledger's)")
        try:
            if self.key_id != _key_id(self.origin, key):
                raise InvalidSignature
            key.verify(self.signature, self.body().encode("utf-8"))
        except InvalidSignature:
            raise CheckpointInvalid("the checkpoint note's signature is invalid (edited or forged)") from None
        if self.size == 0 and self.root_hash != GENESIS_HASH:
            raise CheckpointInvalid("an empty log's checkpoint must have the all-zero root")
