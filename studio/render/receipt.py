"""``Receipt``: a render's receipt, frozen in the one byte form that the ledger hashes.

The pipeline builds the receipt's fields, freezes them (RFC 8785 canonical JSON, UTF-8), hands
the frozen receipt to ``Ledger.render_finished`` (which stores and hashes exactly ``text``) and
writes exactly ``text`` to ``<render id>.receipt.json``. Nothing is added after the freeze, so
``sha256(file bytes)`` equals the ``receipt_sha256`` of the render's ``render.finished`` event.

>>> r = Receipt.freeze({"render_id": "ab", "frames": 3})
>>> r.text
b'{"frames":3,"render_id":"ab"}'
>>> Receipt.parse(r.text).sha256 == r.sha256
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from studio.errors import StudioError


class MalformedReceipt(StudioError):
    """A receipt file that is not a JSON object."""


@dataclass(frozen=True)
class Receipt:
    """The exact bytes of a receipt; ``fields`` parses them afresh on every call (a copy)."""

    text: bytes

    @classmethod
    def freeze(cls, fields: Mapping[str, Any]) -> Receipt:
        """Canonical form of ``fields`` (rejects NaN, infinities and integers above 2**53)."""
        return cls(rfc8785.dumps(dict(fields)))

    @classmethod
    def parse(cls, raw: bytes) -> Receipt:
        """A receipt as read from a file, its bytes kept exactly as they are (for hashing)."""
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise MalformedReceipt("the receipt is not valid JSON") from None
        if not isinstance(value, dict):
            raise MalformedReceipt("the receipt is not a JSON object")
        return cls(bytes(raw))

    @property
    def fields(self) -> dict[str, Any]:
        return json.loads(self.text)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)
