"""The studio's own secrets: its Ed25519 signing key and its watermark key.

Both live in ``config.keys_dir`` (mode 0700), each file mode 0600 and created exclusively, so
two processes starting at once agree on one key instead of overwriting each other's.
The signing key signs ledger checkpoints (and is the studio's ``did:key``); it is encrypted
with ``config.key_passphrase`` when one is set.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from studio.errors import StudioError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from studio.config import StudioConfig

STUDIO_KEY_FILE = "studio-ed25519.pem"
WATERMARK_KEY_FILE = "watermark.key"
_WATERMARK_KEY_BYTES = 32


class StudioKeyError(StudioError):
    """A studio key file exists but is unusable (wrong size, unreadable)."""


def _keys_dir(config: StudioConfig) -> Path:
    config.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return config.keys_dir


def load_or_create_studio_key(config: StudioConfig) -> Ed25519PrivateKey:
    """The studio's signing key, generated on first use."""
    from consent.errors import KeyFileError
    from consent.keys import generate_keypair, load_private_key, save_private_key

    path = _keys_dir(config) / STUDIO_KEY_FILE
    if not path.exists():
        key = generate_keypair()
        try:
            save_private_key(key, path, passphrase=config.key_passphrase)
            return key
        except KeyFileError:
            if not path.exists():
                raise
            # another process created it first: use theirs
    return load_private_key(path, passphrase=config.key_passphrase)


def load_or_create_watermark_key(config: StudioConfig) -> bytes:
    """The 32-byte secret that keys the watermark, generated on first use."""
    path = _keys_dir(config) / WATERMARK_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_watermark_key(path)
    key = secrets.token_bytes(_WATERMARK_KEY_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _read_watermark_key(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StudioKeyError(f"the watermark key cannot be read ({exc.strerror})") from None
    if len(data) != _WATERMARK_KEY_BYTES:
        raise StudioKeyError(f"the watermark key file must hold exactly {_WATERMARK_KEY_BYTES} bytes")
    return data
