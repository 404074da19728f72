"""`avatar-studio log ...` and `db upgrade`, in-process, on SQLite and PostgreSQL data folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ledger_support import backend_url  # noqa: F401  (fixture)
from studio.config import StudioConfig
from studio.ledger import Ledger
from studio_support import run_cli as _run


@pytest.fixture()
def home(studio_home: Path, backend_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    if not backend_url.startswith("sqlite"):
        monkeypatch.setenv("DATABASE_URL", backend_url)
    return studio_home


def _seed(count: int) -> str:
    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        for i in range(count):
            ledger.append("note", {"i": i}, actor="seed")
        return str(ledger.engine.url.render_as_string(hide_password=False))


def test_log_verify_checkpoint_export(home: Path, tmp_path: Path, capsys: Any) -> None:
    _seed(5)
    rc, out, _ = _run(capsys, "log", "verify")
    assert rc == 0 and "chain intact: 5 events, 0 checkpoints" in out and "not yet covered" in out

    rc, out, _ = _run(capsys, "log", "checkpoint")
    assert rc == 0 and "checkpoint at seq 5" in out
    rc, out, _ = _run(capsys, "log", "verify")
    assert rc == 0 and out.strip() == "chain intact: 5 events, 1 checkpoints"

    target = tmp_path / "export.jsonl"
    rc, out, _ = _run(capsys, "log", "export", "--out", str(target))
    assert rc == 0 and "exported 6 lines" in out
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["event"] * 5 + ["checkpoint"]
    rc, out, _ = _run(capsys, "log", "export")
    assert rc == 0 and [json.loads(line) for line in out.splitlines()] == lines


def test_log_verify_names_the_tampered_row(home: Path, capsys: Any) -> None:
    url = _seed(6)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE seq = 4"))
    engine.dispose()
    rc, out, err = _run(capsys, "log", "verify")
    assert rc == 1 and out == ""
    assert err.strip() == "invalid: chain broken at seq 4: hash does not match the row's contents (row edited)"


def test_log_verify_without_a_ledger_says_how_to_create_it(home: Path, capsys: Any) -> None:
    rc, _, err = _run(capsys, "log", "verify")
    assert rc == 2 and "avatar-studio db upgrade" in err and "Traceback" not in err


def test_log_checkpoint_on_an_empty_ledger(home: Path, capsys: Any) -> None:
    rc, _, err = _run(capsys, "log", "checkpoint")
    assert rc == 2 and "no events" in err


def test_db_upgrade_command(home: Path) -> None:
    from typer.testing import CliRunner

    from studio.commands import db

    runner = CliRunner()
    first = runner.invoke(db.app, ["upgrade"])
    assert first.exit_code == 0 and "upgraded" in first.output
    second = runner.invoke(db.app, ["upgrade"])
    assert second.exit_code == 0 and "already up to date" in second.output
