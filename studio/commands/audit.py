"""`avatar-studio audit inspect [VIDEO] [--receipt FILE]`: watermark, C2PA manifest, ledger, receipt.

Exit codes are documented on the command (and in docs/provenance.md); see studio.audit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from studio.audit import (
    EXIT_NO_RECORD,
    EXIT_OURS,
    audit_video,
    format_report,
    open_existing_ledger,
    receipt_lines,
    verify_receipt,
)
from studio.commands._common import echo, get_config

_REPORT_FORMATS = {".json": "json", ".html": "html", ".htm": "html"}

app = typer.Typer(no_args_is_help=True, help="Inspect any video: watermark, C2PA manifest, ledger.")


@app.command("inspect")
def inspect_command(
    video: Optional[Path] = typer.Argument(
        None, help="Any video file (MP4 for the manifest; any format for the watermark)."
    ),
    receipt: Optional[Path] = typer.Option(
        None, "--receipt", help="A render's receipt (<id>.receipt.json) to verify against the ledger."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_frames: Optional[int] = typer.Option(
        None, "--max-frames", min=1, help="Search only the first N frames (default: all)."
    ),
    report_file: Optional[Path] = typer.Option(
        None, "--report", help="Also write the audit report to this file: .json (canonical JSON) or .html (one page)."
    ),
) -> None:
    """Report a video's watermark, C2PA manifest and ledger record; or verify a receipt.

    Exit codes: 0 = ours (watermark found, manifest trusted and consistent, ledger record
    found and agreeing; with --receipt alone: the receipt is the one the ledger hashed);
    2 = bad input (not a video, empty, truncated);
    3 = watermark found, manifest missing (stripped);
    4 = watermark found, manifest invalid (tampered), someone else's, or inconsistent;
    5 = no watermark found (not ours, or no watermark key);
    6 = watermark found (or receipt given) but the ledger has no record of the render;
    7 = records disagree: receipt not the one the ledger hashed, output hash differs, a
    label the credential required is absent, the ledger says the render was never delivered,
    or the ledger was rolled back below the checkpoint the manifest or receipt carries.
    """
    if video is None and receipt is None:
        raise typer.BadParameter("give a VIDEO, a --receipt FILE, or both")
    if report_file is not None and (video is None or report_file.suffix.lower() not in _REPORT_FORMATS):
        raise typer.BadParameter("--report needs a VIDEO and a file name ending in .json or .html")
    config = get_config()
    if video is None:
        assert receipt is not None
        ledger = open_existing_ledger(config)
        if ledger is None:
            echo("receipt:    no ledger in this data folder to check it against")
            raise typer.Exit(EXIT_NO_RECORD)
        check = verify_receipt(receipt, ledger=ledger)
        if as_json:
            echo(json.dumps(check.to_dict(), indent=2))
        else:
            for line in receipt_lines(check):
                echo(line)
        if check.exit_code != EXIT_OURS:
            raise typer.Exit(check.exit_code)
        return
    report = audit_video(video, config=config, max_frames=max_frames, receipt_path=receipt)
    if report_file is not None:
        text = report.to_json() if _REPORT_FORMATS[report_file.suffix.lower()] == "json" else report.to_html()
        report_file.write_text(text, encoding="utf-8")
    if as_json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in format_report(report):
            echo(line)
    if report.exit_code != EXIT_OURS:
        raise typer.Exit(report.exit_code)
