"""Initial ledger schema: events, checkpoints, issuers, credentials, revocations, renders, users.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _when("created_at"),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        _when("created_at"),
        sa.Column("studio_did", sa.String(200), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("prev_signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_checkpoints_seq", "checkpoints", ["seq"])
    op.create_table(
        "issuers",
        sa.Column("did", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _when("enrolled_at"),
        _when("withdrawn_at", nullable=True),
        sa.PrimaryKeyConstraint("did"),
    )
    op.create_table(
        "credentials",
        sa.Column("credential_id", sa.String(500), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("subject_name", sa.String(300), nullable=False),
        sa.Column("project", sa.String(300), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        _when("imported_at"),
        sa.Column("imported_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("credential_id"),
    )
    op.create_index("ix_credentials_issuer", "credentials", ["issuer"])
    op.create_table(
        "revocations",
        sa.Column("credential_id", sa.String(500), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.String(200), nullable=False),
        _when("revoked_at"),
        sa.ForeignKeyConstraint(["credential_id"], ["credentials.credential_id"]),
        sa.PrimaryKeyConstraint("credential_id"),
    )
    op.create_table(
        "renders",
        sa.Column("render_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credential_id", sa.String(500), nullable=True),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=True),
        sa.Column("project", sa.String(300), nullable=True),
        _when("created_at"),
        _when("finished_at", nullable=True),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("output_sha256", sa.String(64), nullable=True),
        sa.Column("watermark_payload", sa.BigInteger(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("render_id"),
    )
    op.create_index("ix_renders_status", "renders", ["status"])
    op.create_index("ix_renders_credential_id", "renders", ["credential_id"])
    op.create_index("ix_renders_watermark_payload", "renders", ["watermark_payload"])
    op.create_table(
        "users",
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        _when("created_at"),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _when("last_login_at", nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )


def downgrade() -> None:
    for name in ("users", "renders", "revocations", "credentials", "issuers", "checkpoints", "events"):
        op.drop_table(name)
