"""Alembic environment for the ledger, driven from code (``studio.ledger.database.upgrade``).

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``; nothing
is read from an ini file or the current directory.
"""

from __future__ import annotations

from alembic import context

from studio.ledger.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations through `avatar-studio db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
