"""`avatar-studio db ...`: schema migrations of the ledger database."""

from __future__ import annotations

import typer

from studio.commands._common import echo, get_config

app = typer.Typer(no_args_is_help=True, help="The ledger database.")


@app.callback()
def _group() -> None:
    """The ledger database (a group, so that `db upgrade` keeps its name with one command)."""


@app.command("upgrade")
def upgrade() -> None:
    """Create or migrate the ledger's tables to this version of the studio."""
    from studio.identity import secure_home
    from studio.ledger import Ledger

    config = get_config()
    secure_home(config, create_database=True)
    applied = Ledger.upgrade(config.sqlalchemy_url)
    echo("ledger schema upgraded" if applied else "ledger schema already up to date")
