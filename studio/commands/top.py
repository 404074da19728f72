"""Top-level commands: ``serve``, ``render``, ``users``, ``demo`` (and wiring of ``db``)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from studio.commands._common import echo, get_config

if TYPE_CHECKING:  # pragma: no cover
    from studio.render.farm import Farm
    from studio.render.types import RenderRequest, RenderResult

users_app = typer.Typer(no_args_is_help=True, help="Studio accounts and roles.")


def serve(
    host: Optional[str] = typer.Option(None, help="Address to bind (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default 7860)."),
    demo: bool = typer.Option(False, "--demo/--no-demo", help="Create and print demo material and logins."),
) -> None:
    """Start the web studio (login required)."""
    from studio.render.pipeline import RenderPipeline
    from studio.web.app import build_app, launch

    config = get_config()
    pipeline = RenderPipeline.from_config(config)
    host = host or config.host
    port = port or config.port
    url = f"http://{host}:{port}"
    if demo:
        from studio.demo import describe, ensure_demo

        if not (config.home / "demo" / "demo.json").exists():
            echo("Making the demo material (first start only: credential, logins, a 7 s driving clip)...")
        echo(describe(ensure_demo(config, pipeline), url))
    if not pipeline.ledger.list_users():
        echo("No users yet: create one with `avatar-studio users add NAME --role admin`, or start with --demo.")
    if "fomm" not in pipeline.animator_names():
        echo("Animator: the weight-free landmark animator (set STUDIO_FOMM_CHECKPOINT to enable FOMM).")
    echo(f"Data folder: {config.home}\nServing on {url} (Ctrl+C to stop)")
    launch(build_app(pipeline), pipeline, host=host, port=port)


def render(
    credential: str = typer.Option(..., "--credential", help="Imported consent credential id."),
    photo: Path = typer.Option(..., "--photo", help="Photo of the consenting person."),
    driving: Path = typer.Option(..., "--driving", help="Driving video."),
    purpose: str = typer.Option(..., "--purpose", help="Purpose of this render (must be in the credential)."),
    project: str = typer.Option(..., "--project", help="Project (must match the credential)."),
    out: Path = typer.Option(..., "--out", help="Where to copy the rendered MP4."),
    animator: str = typer.Option("auto", help="auto | landmark | fomm"),
    absolute: bool = typer.Option(False, "--absolute", help="Absolute instead of relative motion."),
    paste_back: bool = typer.Option(True, "--paste-back/--no-paste-back", help="Blend the face back into the photo."),
    label: Optional[bool] = typer.Option(None, "--label/--no-label", help="Visible AI label (default: as the credential asks; --no-label is refused when the credential requires it)."),
    face_index: Optional[int] = typer.Option(None, help="Which face, when the photo shows several."),
    operator: Optional[str] = typer.Option(None, help="Operator name for the ledger (default: cli:<login>)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="On the render farm (STUDIO_BROKER_URL): wait for the worker, with progress (default), or print the queued render id and return."),
) -> None:
    """Render through the same consent-gated pipeline as the web studio (on the farm when one is configured)."""
    import shutil

    from models.animate import AnimationOptions
    from studio.render.pipeline import RenderPipeline, RenderRequest

    config = get_config()
    pipeline = RenderPipeline.from_config(config)
    request = RenderRequest(
        photo=photo,
        driving=driving,
        credential_id=credential,
        purpose=purpose,
        project=project,
        operator=operator or f"cli:{getpass.getuser()}",
        animator=animator,
        options=AnimationOptions(
            relative=not absolute, adapt_movement_scale=not absolute, paste_back=paste_back, face_index=face_index
        ),
        label_ai=label,
    )
    from studio.render.farm import Farm, dispatcher_for

    dispatcher = dispatcher_for(pipeline)
    if not wait:
        if not isinstance(dispatcher, Farm):
            raise typer.BadParameter("--no-wait needs the render farm (set STUDIO_BROKER_URL)")
        echo(f"queued render {dispatcher.submit(request)}")
        return
    with _Progress() as progress:
        if isinstance(dispatcher, Farm):
            result = _render_on_farm(dispatcher, request, progress)
        else:
            result = dispatcher.render(request, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.video_path, out)
    shutil.copyfile(result.receipt_path, out.with_suffix(".receipt.json"))
    echo(f"render {result.render_id}")
    echo(f"  video:    {out}")
    echo(f"  receipt:  {out.with_suffix('.receipt.json')}")
    echo(f"  watermark payload {result.receipt['watermark']['payload']}, C2PA {result.receipt['manifest']['status']}")


def _render_on_farm(farm: Farm, request: RenderRequest, progress: _Progress) -> RenderResult:
    """Queue ``request`` and wait for it. Ctrl+C asks the ledger to cancel the render, as the web
    page's Cancel does (a queued one is failed at once; a running one stops at its next batch
    of frames, delivering nothing), says so, and exits with code 130."""
    render_id = farm.submit(request, progress)
    try:
        return farm.wait(render_id, progress)
    except KeyboardInterrupt:
        outcome = farm.pipeline.ledger.request_cancel(render_id, actor=request.operator)
        typer.echo("", err=True)
        if outcome == "done":
            typer.echo(f"interrupted: render {render_id} had already ended; see `avatar-studio log`", err=True)
        else:
            typer.echo(f"interrupted: cancel {'done' if outcome == 'cancelled' else 'requested'} for render "
                       f"{render_id}; nothing will be delivered", err=True)
        raise typer.Exit(130) from None


class _Progress:
    """A terminal progress line per stage (frames when the total is known)."""

    def __init__(self) -> None:
        self._stage = ""

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        typer.echo("", err=True)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if total:
            width = 30
            filled = int(width * min(done, total) / total)
            line = f"\r{stage:<24} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            line = f"\r{stage:<24} ..." + " " * 40
        if stage != self._stage and self._stage:
            typer.echo("", err=True)
        self._stage = stage
        typer.echo(line, nl=False, err=True)


@users_app.command("add")
def users_add(
    username: str,
    role: str = typer.Option(..., help="operator | consent-officer | auditor | admin"),
    password_file: Optional[Path] = typer.Option(None, help="Read the password from this file (else prompt)."),
) -> None:
    """Create a studio account."""
    from studio.ledger import Ledger
    from studio.users import Role, create_user

    config = get_config()
    try:
        Role(role)
    except ValueError:
        raise typer.BadParameter(f"unknown role {role!r}; choose one of: {', '.join(r.value for r in Role)}") from None
    if password_file:
        password = password_file.read_text().strip()
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    ledger = Ledger.from_config(config)
    create_user(ledger, username, password, role, actor=f"cli:{getpass.getuser()}")
    echo(f"created {username} ({role})")


@users_app.command("list")
def users_list() -> None:
    """List studio accounts."""
    from studio.ledger import Ledger

    ledger = Ledger.from_config(get_config())
    locked = ledger.locked_users()
    for user in ledger.list_users():
        status = "disabled" if user.disabled else "locked" if user.username in locked else "active"
        echo(f"{user.username}\t{user.role}\t{status}")


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Lift the lock that repeated failed logins put on an account."""
    from studio.ledger import Ledger

    ledger = Ledger.from_config(get_config())
    if ledger.get_user(username) is None:
        raise typer.BadParameter(f"no account named {username!r}")
    if ledger.unlock_user(username, actor=f"cli:{getpass.getuser()}"):
        echo(f"unlocked {username}")
    else:
        echo(f"{username} was not locked")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("render")(render)
    app.add_typer(users_app, name="users")
    from studio.commands import db, farm

    farm.register(app)
    app.add_typer(db.app, name="db", help="Database migrations.")
