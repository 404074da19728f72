"""Streaming SHA-256 of files (inputs and outputs are recorded by digest in the ledger)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from studio.media.errors import MediaFileMissing

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (outputs can be gigabytes).

    Raises ``MediaFileMissing`` (a user-facing error) when the path is missing, a folder or
    unreadable: the render pipeline digests its inputs before anything else, and a vanished
    upload must end as a logged refusal with a clear message, not a traceback.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for piece in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(piece)
    except OSError as exc:
        raise MediaFileMissing(f"The file '{Path(path).name}' does not exist or cannot be read.") from exc
    return digest.hexdigest()
