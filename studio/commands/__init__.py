"""CLI command groups; each module defines ``app: typer.Typer`` and imports heavy packages lazily."""
