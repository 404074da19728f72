"""`avatar-studio log ...`: verify, export and checkpoint the tamper-evident ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from studio.commands._common import Invalid, echo, get_config

app = typer.Typer(no_args_is_help=True, help="The tamper-evident ledger.")


def _read_note(path: Path) -> str:
    """A checkpoint note, from a note file or from a render receipt's ``ledger_checkpoint``."""
    import json

    try:
        with path.open("r", encoding="utf-8", errors="replace") as fp:
            text = fp.read(1024 * 1024)
    except FileNotFoundError:
        raise Invalid(f"no such file: {path.name}") from None
    except OSError as exc:
        raise Invalid(f"cannot read {path.name} ({exc.strerror})") from None
    if text.lstrip().startswith("{"):
        try:
            note = json.loads(text).get("ledger_checkpoint")
        except (ValueError, AttributeError):
            note = None
        if not isinstance(note, str):
            raise Invalid(f"{path.name} is JSON but not a receipt with a ledger_checkpoint")
        return note
    return text


@app.command("verify")
def verify(
    since: Optional[Path] = typer.Option(
        None,
        "--since",
        help="A checkpoint note (`log checkpoint --out`) or a render receipt: prove the log extends it.",
    ),
) -> None:
    """Recompute every hash, checkpoint signature and state table; exit 1 naming the first bad row.

    Also proves the log extends the checkpoint kept in the data folder, and the one given with --since.
    """
    from studio.ledger import CheckpointInvalid, Ledger, SignedCheckpoint

    note = SignedCheckpoint.from_note(_read_note(since)) if since is not None else None
    with Ledger.from_config(get_config(), upgrade=False) as ledger:
        report = ledger.verify()
        if report.ok and note is not None:
            try:
                report = ledger.verify_extends(note)
            except CheckpointInvalid as exc:
                raise Invalid(f"{since.name}: {exc.user_message()}") from None
    if not report.ok:
        raise Invalid(report.summary())
    echo(report.summary())
    if note is not None:
        echo(f"the log extends the checkpoint of size {note.size} in {since.name}")
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
def checkpoint(
    out: Optional[Path] = typer.Option(
        None, "--out", help="Also write the signed checkpoint note here (keep it: `log verify --since` uses it)."
    ),
) -> None:
    """Sign the current head with the studio key now."""
    from studio.ledger import Ledger

    with Ledger.from_config(get_config()) as ledger:
        made = ledger.checkpoint()
        note = ledger.signed_checkpoint() if out is not None else None
    echo(f"checkpoint at seq {made.seq}: {made.head_hash}")
    if note is not None and out is not None:
        try:
            out.write_text(note.to_note(), encoding="utf-8")
        except OSError as exc:
            raise Invalid(f"cannot write the checkpoint note ({exc.strerror})") from None
        echo(f"wrote the signed checkpoint note (size {note.size}) to {out.name}")
