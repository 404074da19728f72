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
from typing import TYPE_CHECKING, Any

from studio.errors import StudioError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from studio.config import StudioConfig

STUDIO_KEY_FILE = "studio-ed25519.pem"
WATERMARK_KEY_FILE = "watermark.key"
_WATERMARK_KEY_BYTES = 32


class StudioKeyError(StudioError):
    """A studio key file exists but is unusable (wrong size, unreadable)."""


# Folders of the data folder that hold personal data or secrets: owner-only (0700).
_PRIVATE_FOLDERS = ("keys", "outputs", "work", "uploads", "references", "c2pa", "demo", "exports")
# The SQLite ledger (password hashes, face templates) and the files SQLite keeps beside it.
_DATABASE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def secure_home(config: StudioConfig, *, create_database: bool = False) -> None:
    """Make the data folder private: the folder and its private subfolders 0700, the SQLite
    ledger 0600. Creates what is missing (so no process ever creates them wider) and narrows
    what an older version left at 0755/0644. SQLite gives its -wal/-shm files the mode of the
    database file, which is why ``create_database`` creates it here, empty, before SQLite
    opens it (an empty file is an empty SQLite database)."""
    for folder in (config.home, *(config.home / name for name in _PRIVATE_FOLDERS)):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _narrow(folder, 0o700)
    database = config.sqlite_path
    if database is None:
        return
    if create_database and database.parent.is_dir():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    for suffix in _DATABASE_SUFFIXES:
        _narrow(database.with_name(database.name + suffix), 0o600)


def _narrow(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` if it exists and is ours (a folder shared on purpose is left)."""
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass


def _keys_dir(config: StudioConfig) -> Path:
    secure_home(config)
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


def load_c2pa_signer(config: StudioConfig) -> Any:
    """The studio's C2PA signer (``watermark.certs.StudioSigner``) from ``<home>/c2pa``, made on
    first use. Only a process that signs calls this: a farm's web machine needs no C2PA key.
    An exclusive lock on the folder makes workers that start together agree on one key."""
    import fcntl

    from watermark.certs import StudioSigner

    folder = config.home / "c2pa"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return StudioSigner.load_or_create(folder)
    finally:
        os.close(fd)  # closing releases the lock
