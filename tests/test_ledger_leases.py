"""Render leases in the ledger (migration 0003): owner, heartbeat, delivery, loss; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import create_engine, text

from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.ledger import Ledger
from studio.ledger.database import alembic_config


def _start(ledger: Ledger, render_id: str, **owner: Any) -> None:
    ledger.render_started(render_id=render_id, credential_id="c", operator="o", purpose="p", project="q",
                          inputs={}, **owner)


def test_leases_cover_started_and_undelivered_renders_only(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        for render_id in ("running", "committed", "delivered", "lost"):
            _start(ledger, render_id, owner_pid=4242, owner_host="h")
        for render_id in ("committed", "delivered", "lost"):
            ledger.render_finished(render_id=render_id, receipt={"output_sha256": "ab" * 32, "watermark_payload": 7})
        ledger.render_delivered(render_id="delivered")
        ledger.render_lost(render_id="lost", reason="gone before delivery")

        leases = {lease.render_id: lease for lease in ledger.render_leases()}
        assert set(leases) == {"running", "committed"}
        assert leases["running"].owner_pid == 4242 and leases["running"].owner_host == "h"
        before = leases["running"].heartbeat_at
        ledger.heartbeat("running")
        assert {x.render_id: x for x in ledger.render_leases()}["running"].heartbeat_at >= before
        assert ledger.find_render("lost").status == "lost"
        assert [e.data for e in ledger.events() if e.kind == "render.lost"] == [
            {"render_id": "lost", "reason": "gone before delivery"}
        ]
        assert ledger.mark_interrupted_renders(render_ids=[]) == 0
        assert ledger.mark_interrupted_renders(render_ids=["committed", "running"]) == 1  # only started ones
        assert ledger.verify().ok


def test_renders_finished_before_leases_existed_count_as_delivered(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        _start(ledger, "old")
        ledger.render_finished(render_id="old", receipt={"output_sha256": "ab" * 32, "watermark_payload": 7})
    engine = create_engine(backend_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with engine.connect() as conn:
            delivered = conn.execute(text("SELECT delivered_at FROM renders WHERE render_id = 'old'")).scalar()
    finally:
        engine.dispose()
    assert delivered is not None
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        assert ledger.render_leases() == []
