"""`avatar-studio audit inspect VIDEO`: the watermark, the C2PA manifest and the ledger record.

Exit codes are documented on the command (and in docs/provenance.md); see studio.audit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from studio.audit import EXIT_OURS, audit_video, format_report
from studio.commands._common import echo, get_config

app = typer.Typer(no_args_is_help=True, help="Inspect any video: watermark, C2PA manifest, ledger.")


@app.command("inspect")
def inspect_command(
    video: Path = typer.Argument(..., help="Any video file (MP4 for the manifest; any format for the watermark)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_frames: Optional[int] = typer.Option(
        None, "--max-frames", min=1, help="Search only the first N frames (default: all)."
    ),
) -> None:
    """Report a video's watermark and C2PA manifest, each with its status.

    Exit codes: 0 = ours (watermark found, manifest trusted and consistent);
    2 = bad input (not a video, empty, truncated);
    3 = watermark found, manifest missing (stripped);
    4 = watermark found, manifest invalid (tampered), someone else's, or inconsistent;
    5 = no watermark found (not ours, or no watermark key).
    """
    report = audit_video(video, config=get_config(), max_frames=max_frames)
    if as_json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in format_report(report):
            echo(line)
    if report.exit_code != EXIT_OURS:
        raise typer.Exit(report.exit_code)


