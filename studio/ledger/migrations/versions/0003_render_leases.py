"""Render leases: owner pid, host and heartbeat of a running render, and when it was delivered.

Several processes may share one data folder (a server and CLI renders). A render's owner and
its heartbeat let a starting process tell an abandoned render (owner gone) from a live one;
``delivered_at`` marks the move into outputs/ after the ledger commit, so a crash between the
two can be found and settled. Renders finished before this revision count as delivered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("renders", sa.Column("owner_pid", sa.Integer(), nullable=True))
    op.add_column("renders", sa.Column("owner_host", sa.String(255), nullable=True))
    op.add_column("renders", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("renders", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE renders SET delivered_at = finished_at WHERE status = 'finished'")


def downgrade() -> None:
    with op.batch_alter_table("renders") as batch:
        for column in ("delivered_at", "heartbeat_at", "owner_host", "owner_pid"):
            batch.drop_column(column)
