"""Streaming SHA-256 of files (inputs and outputs are recorded by digest in the ledger)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (outputs can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(piece)
    return digest.hexdigest()
