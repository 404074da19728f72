"""The 48-bit payload, its CRC-24 and the keyed whitening that binds both to the studio key.

The info word is ``payload (48 bits, MSB first) || CRC-24/OPENPGP(payload)`` XOR-ed with a
72-bit mask derived from the key. The CRC bounds false payloads: a decoder fed noise outputs
an essentially random 72-bit word, which passes the check with probability 2**-24. The mask
matters because noise is not the only input a detector sees: on a constant frame every soft
score is zero and the decoder returns all zeros, and plain CRC(0) == 0 would "detect"
payload 0. With the mask, the all-zero word is as unlikely to pass as any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watermark.errors import PayloadOutOfRange

PAYLOAD_BITS = 48
CRC_BITS = 24
INFO_BITS = PAYLOAD_BITS + CRC_BITS

_CRC24_POLY = 0x864CFB  # CRC-24/OPENPGP (RFC 4880 section 6.1)
_CRC24_INIT = 0xB704CE


def crc24(value: int, nbits: int = PAYLOAD_BITS) -> int:
    """CRC-24/OPENPGP of the ``nbits``-bit big-endian integer ``value``."""
    crc = _CRC24_INIT
    for i in range(nbits - 1, -1, -1):
        bit = (value >> i) & 1
        top = (crc >> 23) & 1
        crc = (crc << 1) & 0xFFFFFF
        if bit ^ top:
            crc ^= _CRC24_POLY
    return crc


def int_to_bits(value: int, nbits: int) -> NDArray[Any]:
    """Big-endian bits of ``value`` as a uint8 array of length ``nbits``."""
    return np.array([(value >> (nbits - 1 - i)) & 1 for i in range(nbits)], dtype=np.uint8)


def bits_to_int(bits: NDArray[Any]) -> int:
    """Inverse of :func:`int_to_bits`."""
    out = 0
    for b in np.asarray(bits, dtype=np.uint8).tolist():
        out = (out << 1) | int(b)
    return out


@dataclass(frozen=True)
class WatermarkPayload:
    """A render id of at most 48 bits, the value the watermark carries."""

    value: int

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, np.integer)):
            raise PayloadOutOfRange(f"watermark payload must be an integer, got {type(self.value).__name__}")
        if not 0 <= int(self.value) < 2**PAYLOAD_BITS:
            raise PayloadOutOfRange(f"watermark payload must be in [0, 2**{PAYLOAD_BITS})")
        object.__setattr__(self, "value", int(self.value))

    def to_info_bits(self, mask: NDArray[Any]) -> NDArray[Any]:
        """The 72 whitened info bits (payload || CRC) XOR ``mask``; uint8 (72,)."""
        word = (self.value << CRC_BITS) | crc24(self.value)
        bits: NDArray[Any] = int_to_bits(word, INFO_BITS) ^ mask
        return bits

    @classmethod
    def from_info_bits(cls, bits: NDArray[Any], mask: NDArray[Any]) -> WatermarkPayload | None:
        """Undo the mask and check the CRC; None when the check fails."""
        word = bits_to_int(np.asarray(bits, dtype=np.uint8) ^ mask)
        value, crc = word >> CRC_BITS, word & 0xFFFFFF
        if crc24(value) != crc:
            return None
        return cls(value)
