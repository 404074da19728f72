"""The data folder is private however it is created: by the CLI, by a render, or left wide open
by an older version (folders 0700; the SQLite ledger, its WAL files and the keys 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from studio.cli import main

_FOLDERS = ("", "keys", "outputs", "work", "references", "c2pa")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_private(home: Path) -> None:
    for name in ("", "keys"):
        assert _mode(home / name) == 0o700, name or "the data folder"
    for secret in [*(home / "keys").iterdir(), *home.glob("ledger.sqlite3*")]:
        assert _mode(secret) == 0o600, secret.name
    assert (home / "ledger.sqlite3").is_file()


def test_a_data_folder_made_by_the_cli_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    home = tmp_path / "fresh"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    previous = os.umask(0o022)
    try:
        password = tmp_path / "pw"
        password.write_text("a long enough password\n")
        assert main(["users", "add", "alice", "--role", "admin", "--password-file", str(password)]) == 0
    finally:
        os.umask(previous)
    capsys.readouterr()
    _assert_private(home)
    assert list(home.glob("ledger.sqlite3-wal")), "SQLite's WAL file is covered too"


def test_a_render_pipeline_narrows_a_folder_left_open_by_an_older_version(tmp_path: Path) -> None:
    from studio_support import small_pipeline

    home = tmp_path / "old"
    small_pipeline(home).ledger.close()
    for name in _FOLDERS:
        (home / name).mkdir(exist_ok=True)
        os.chmod(home / name, 0o755)
    for file in home.glob("ledger.sqlite3*"):
        os.chmod(file, 0o644)
    pipeline = small_pipeline(home)
    for name in _FOLDERS:
        assert _mode(home / name) == 0o700, name or "the data folder"
    for file in home.glob("ledger.sqlite3*"):
        assert _mode(file) == 0o600, file.name
    pipeline.ledger.close()
