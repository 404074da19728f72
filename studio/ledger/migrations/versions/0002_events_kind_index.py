"""Index events by kind: render decisions look up the chained events of a few kinds (revocations,
enrolments, credential imports, user changes) on every call, so that a deleted or edited state row
cannot change a decision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_kind", "events", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_events_kind", table_name="events")
