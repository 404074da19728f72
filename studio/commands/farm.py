"""Render farm commands: ``worker`` runs renders from the queue; ``queue status`` shows it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Optional

import typer

from studio.commands._common import echo, get_config

queue_app = typer.Typer(no_args_is_help=True, help="The render queue (STUDIO_BROKER_URL).")


def worker(
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Renders at once (1: in this process)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda for the FOMM animator (default: cuda when present)."),
    name: Optional[str] = typer.Option(None, "--name", help="Worker name in the ledger's claims (default worker-PID@HOST)."),
    loglevel: str = typer.Option("INFO", "--loglevel", help="Celery log level."),
) -> None:
    """Run a render worker: claims queued renders in the ledger, verifies consent again, renders."""
    from studio.render.farm import QueueUnavailable, run_worker

    config = get_config()
    if not config.broker_url:
        raise QueueUnavailable("no render queue is configured: set STUDIO_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    if device is not None:
        if device not in ("cpu", "cuda"):
            raise typer.BadParameter("--device is cpu or cuda")
        config = replace(config, device=device)
    run_worker(config, concurrency=concurrency, name=name, loglevel=loglevel)


@queue_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Renders waiting in the queue, running (with their lease) and done, per worker."""
    from studio.render.farm import QueueUnavailable, queue_status
    from studio.render.pipeline import RenderPipeline

    config = get_config()
    if not config.broker_url:
        raise QueueUnavailable("no render queue is configured: set STUDIO_BROKER_URL")
    report = queue_status(config, RenderPipeline.from_config(config))
    if as_json:
        echo(json.dumps(report, indent=2, sort_keys=True))
        return
    echo(f"waiting in the queue: {report['broker_waiting']}   admitted, not yet claimed: {report['admitted_not_claimed']}"
         f"   of which not in Redis: {report['admitted_not_in_broker']}")
    for item in report["running"]:
        echo(f"running  {item['render_id']}  on {item['host']} pid {item['pid']}  heartbeat {item['heartbeat_at']}")
    for worker_name, counts in sorted(report["per_worker"].items()):
        echo(f"worker {worker_name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@queue_app.command("reap")
def reap(
    older_than: float = typer.Option(300.0, "--older-than", min=0, help="Only renders admitted at least this many seconds ago."),
) -> None:
    """Fail (with the reason) admitted renders that Redis no longer holds and no worker took."""
    from studio.render.farm import QueueUnavailable, reap_lost
    from studio.render.pipeline import RenderPipeline

    config = get_config()
    if not config.broker_url:
        raise QueueUnavailable("no render queue is configured: set STUDIO_BROKER_URL")
    lost = reap_lost(config, RenderPipeline.from_config(config), older_than_seconds=older_than)
    for render_id in lost:
        echo(f"failed {render_id}: lost from the queue")
    echo(f"{len(lost)} render(s) lost from the queue were failed in the ledger")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.add_typer(queue_app, name="queue")
