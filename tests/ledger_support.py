"""Helpers shared by the ledger tests: a fresh database per test on SQLite and PostgreSQL.

Imported by tests/test_ledger_*.py; fixtures defined here are re-exported by those modules
with ``from ledger_support import ...``. The test credential is ``studio_support.issue_credential``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def create_pg_database(server_url: str) -> tuple[str, str]:
    """Create a uniquely named database on the test server; returns (sqlalchemy url, name)."""
    import psycopg

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(server_url: str, name: str) -> None:
    import psycopg

    admin = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_url")
    url, name = create_pg_database(server)
    try:
        yield url
    finally:
        drop_pg_database(server, name)


@pytest.fixture()
def studio_key() -> Any:
    from consent.keys import generate_keypair

    return generate_keypair()


def append_worker(url: str, key_pem: bytes, writer: int, count: int, checkpoint_every: int, pause: float = 0.0) -> list[int]:
    """Run in a separate process: open the ledger and append ``count`` events, ``pause`` s apart."""
    import time

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from studio.ledger import Ledger

    key = load_pem_private_key(key_pem, password=None)
    seqs = []
    with Ledger.open(url, studio_key=key, checkpoint_every=checkpoint_every, upgrade=False, busy_timeout=60) as ledger:
        for i in range(count):
            seqs.append(ledger.append("note", {"writer": writer, "i": i}, actor=f"proc{writer}").seq)
            time.sleep(pause)
    return seqs


def key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
