"""`avatar-studio log ...`: verify, export and checkpoint the tamper-evident ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from studio.commands._common import Invalid, echo, get_config

app = typer.Typer(no_args_is_help=True, help="The tamper-evident ledger.")


@app.command("verify")
def verify() -> None:
    """Recompute every hash and checkpoint signature; exit 1 naming the first bad row."""
    from studio.ledger import Ledger

    with Ledger.from_config(get_config(), upgrade=False) as ledger:
        report = ledger.verify()
    if not report.ok:
        raise Invalid(report.summary())
    echo(report.summary())
    if report.unprotected_tail:
        echo(
            f"note: the last {report.unprotected_tail} events are not yet covered by a signed checkpoint "
            "(run `avatar-studio log checkpoint`)"
        )


@app.command("export")
def export(
    out: Optional[Path] = typer.Option(None, "--out", help="Write JSON lines here instead of standard output."),
) -> None:
    """Every event and checkpoint as JSON lines (enough to re-verify the chain elsewhere)."""
    import sys

    from studio.ledger import Ledger

    with Ledger.from_config(get_config(), upgrade=False) as ledger:
        if out is None:
            ledger.export_jsonl(sys.stdout)
            return
        try:
            with out.open("w", encoding="utf-8") as fp:
                count = ledger.export_jsonl(fp)
        except OSError as exc:
            raise Invalid(f"cannot write the export file ({exc.strerror})") from None
    echo(f"exported {count} lines")


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign the current head with the studio key now."""
    from studio.ledger import Ledger

    with Ledger.from_config(get_config()) as ledger:
        made = ledger.checkpoint()
    echo(f"checkpoint at seq {made.seq}: {made.head_hash}")
