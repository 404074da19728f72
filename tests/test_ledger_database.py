"""Opening the ledger: migrations, unmigrated and unreachable databases, the studio's key files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.config import StudioConfig
from studio.identity import StudioKeyError, load_or_create_studio_key, load_or_create_watermark_key
from studio.ledger import Ledger, LedgerNotMigrated, LedgerUnavailable
from studio.ledger.database import alembic_config, head_revision

TABLES = {"events", "checkpoints", "issuers", "credentials", "revocations", "renders", "users", "alembic_version"}


def test_upgrade_creates_every_table_once(backend_url: str) -> None:  # noqa: F811
    assert Ledger.upgrade(backend_url) is True
    assert Ledger.upgrade(backend_url) is False  # idempotent
    engine = create_engine(backend_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_database_without_migrations_is_refused(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    if backend_url.startswith("sqlite"):
        sqlite3.connect(backend_url.removeprefix("sqlite:///")).close()  # an empty database file
    with pytest.raises(LedgerNotMigrated) as caught:
        Ledger.open(backend_url, studio_key=studio_key, upgrade=False)
    assert "avatar-studio db upgrade" in caught.value.user_message()
    with Ledger.open(backend_url, studio_key=studio_key, upgrade=True) as ledger:
        assert ledger.verify().ok


def test_schema_behind_head_is_refused(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    Ledger.upgrade(backend_url)
    engine = create_engine(backend_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
    finally:
        engine.dispose()
    with pytest.raises(LedgerNotMigrated):
        Ledger.open(backend_url, studio_key=studio_key, upgrade=False)
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:  # upgrade=True repairs it
        ledger.append("note", {}, actor="a")
        assert ledger.verify().ok
    assert head_revision() == "0003"


def test_missing_sqlite_file_is_not_created_without_upgrade(tmp_path: Path, studio_key: Any) -> None:  # noqa: F811
    path = tmp_path / "absent.sqlite3"
    with pytest.raises(LedgerNotMigrated):
        Ledger.open(f"sqlite:///{path}", studio_key=studio_key, upgrade=False)
    assert not path.exists()


def test_garbage_file_is_unavailable(tmp_path: Path, studio_key: Any) -> None:  # noqa: F811
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger.open(f"sqlite:///{path}", studio_key=studio_key)
    assert str(tmp_path) not in caught.value.user_message()


def test_missing_folder_is_unavailable(tmp_path: Path, studio_key: Any) -> None:  # noqa: F811
    with pytest.raises(LedgerUnavailable):
        Ledger.open(f"sqlite:///{tmp_path / 'no' / 'such' / 'ledger.sqlite3'}", studio_key=studio_key)


@pytest.mark.postgres
def test_unreachable_server_is_unavailable(postgres_url: str, studio_key: Any) -> None:  # noqa: F811
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://studio:secret-pw@127.0.0.1:{port}/nothing"
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger.open(url, studio_key=studio_key)
    assert "secret-pw" not in caught.value.user_message()


def test_studio_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    config = StudioConfig(home=tmp_path / "home")
    key = load_or_create_studio_key(config)
    path = config.keys_dir / "studio-ed25519.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.keys_dir.stat().st_mode) == 0o700
    again = load_or_create_studio_key(config)
    assert again.private_bytes_raw() == key.private_bytes_raw()
    assert b"ENCRYPTED" not in path.read_bytes()


def test_studio_key_is_encrypted_with_the_passphrase(tmp_path: Path) -> None:
    from consent.errors import WrongPassphrase

    config = StudioConfig(home=tmp_path, key_passphrase="correct horse")
    key = load_or_create_studio_key(config)
    assert b"ENCRYPTED PRIVATE KEY" in (config.keys_dir / "studio-ed25519.pem").read_bytes()
    assert load_or_create_studio_key(config).private_bytes_raw() == key.private_bytes_raw()
    with pytest.raises(WrongPassphrase):
        load_or_create_studio_key(StudioConfig(home=tmp_path, key_passphrase="wrong"))


def test_watermark_key_is_32_random_bytes_kept(tmp_path: Path) -> None:
    config = StudioConfig(home=tmp_path)
    key = load_or_create_watermark_key(config)
    path = config.keys_dir / "watermark.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_watermark_key(config) == key
    assert load_or_create_watermark_key(StudioConfig(home=tmp_path / "other")) != key
    path.write_bytes(b"short")
    with pytest.raises(StudioKeyError):
        load_or_create_watermark_key(config)


def test_from_config_uses_the_data_folder(tmp_path: Path) -> None:
    config = StudioConfig(home=tmp_path / "fresh")
    with Ledger.from_config(config) as ledger:
        ledger.append("note", {}, actor="a")
        assert ledger.studio_did.startswith("did:key:z6Mk")
    assert (config.home / "ledger.sqlite3").exists()
    with Ledger.from_config(config, upgrade=False) as ledger:
        assert ledger.verify().ok and ledger.verify().events_checked == 1
