"""Shared state for CLI commands: the data folder chosen with ``--home`` / ``STUDIO_HOME``."""

from __future__ import annotations

from pathlib import Path

import typer

from studio.config import StudioConfig

_home_override: Path | None = None


def set_home(home: Path | None) -> None:
    global _home_override
    _home_override = home


def get_config() -> StudioConfig:
    """The configuration for this CLI invocation (``--home`` wins over ``STUDIO_HOME``)."""
    return StudioConfig.from_env(home=_home_override)


def echo(message: str) -> None:
    typer.echo(message)


class Invalid(Exception):
    """Raised by a command to exit 1 with a one-line reason (e.g. ``vc verify`` of a bad document)."""
