"""Multibase base58btc (the ``z`` prefix) and the multicodec prefixes used by did:key.

did:key and the W3C Data Integrity proofs write keys and signatures as base58btc text:
a multicodec varint prefix (0xed01 Ed25519 public key, 0x8026 Ed25519 private key) followed
by the raw key bytes. The encoder is the Bitcoin alphabet, leading zero bytes as ``1``.
"""

from __future__ import annotations

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {ch: i for i, ch in enumerate(_ALPHABET)}

BASE58BTC_PREFIX = "z"
ED25519_PUB_CODEC = b"\xed\x01"  # multicodec 0xed, unsigned varint
ED25519_PRIV_CODEC = b"\x80\x26"  # multicodec 0x1300, unsigned varint


def b58encode(data: bytes) -> str:
    """Base58btc text of ``data`` (no multibase prefix)."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Bytes of base58btc ``text``; ``ValueError`` for a character outside the alphabet."""
    number = 0
    for ch in text:
        digit = _INDEX.get(ch)
        if digit is None:
            raise ValueError("not base58btc")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def encode_multibase(data: bytes) -> str:
    """``z`` + base58btc(data)."""
    return BASE58BTC_PREFIX + b58encode(data)


def decode_multibase(text: str) -> bytes:
    """Bytes of a ``z``-prefixed multibase string; ``ValueError`` for any other base or bad text."""
    if not isinstance(text, str) or not text.startswith(BASE58BTC_PREFIX) or len(text) < 2:
        raise ValueError("not a base58btc multibase value")
    return b58decode(text[1:])
