"""The ``avatar-studio`` command line: thin commands over the packages.

``main(argv)`` is the only place that turns user-facing errors into a one-line message and a
non-zero exit code (2); ``Invalid`` gives exit code 1 (a verified "no"). Anything else is a bug
and propagates with its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click
import typer

try:  # typer >= 0.20 vendors its own click; its exceptions are not click's
    from typer import _click as _typer_click

    _CLICK_MODULES = (click, _typer_click)
except ImportError:  # pragma: no cover
    _CLICK_MODULES = (click,)

_ABORT = (click.exceptions.Abort, typer.Abort)
_CLICK_ERROR = tuple(m.exceptions.ClickException for m in _CLICK_MODULES)
_EXIT = (click.exceptions.Exit, typer.Exit)

from studio.commands import _common, audit, consent, keys, log, models, top, vc
from studio.errors import USER_FACING

app = typer.Typer(
    name="avatar-studio",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Consent-gated avatar studio: verified consent, watermark, provenance and a tamper-evident log.",
)


@app.callback()
def _root(
    home: Optional[Path] = typer.Option(
        None, "--home", help="Data folder (ledger, keys, outputs). Default: $STUDIO_HOME or ~/.avatar-studio"
    ),
) -> None:
    _common.set_home(home)


app.add_typer(keys.app, name="keys", help="Ed25519 key pairs (did:key).")
app.add_typer(vc.app, name="vc", help="Sign and verify any eddsa-jcs-2022 document.")
app.add_typer(consent.app, name="consent", help="Issue, enrol, import, verify, revoke and list consent.")
app.add_typer(log.app, name="log", help="The tamper-evident ledger.")
app.add_typer(models.app, name="models", help="Motion model checkpoints.")
app.add_typer(audit.app, name="audit", help="Inspect any video: watermark, C2PA manifest, ledger.")


# serve and render live in their own module so the CLI starts without importing gradio.
top.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    try:
        rc = app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False, prog_name="avatar-studio")
    except _common.Invalid as exc:
        typer.echo(f"invalid: {exc}", err=True)
        return 1
    except USER_FACING as exc:  # type: ignore[misc]
        typer.echo(f"error: {exc.user_message()}", err=True)
        return 2
    except _ABORT:
        typer.echo("aborted", err=True)
        return 130
    except _CLICK_ERROR as exc:
        exc.show()
        return exc.exit_code
    except _EXIT as exc:
        return exc.exit_code
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
