"""Handlers of the Render and Users tabs and of the page load. They only translate between
widgets and the pipeline or ledger; ``guarded`` checks the role and reports refusals."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr

from models.animate import AnimationOptions
from studio.render.pipeline import RenderRequest
from studio.users import Role, User, create_user, new_password
from studio.web.context import WebContext
from studio.web.guard import guarded

RENDER_REFUSED = "Refused: {}. Nothing was rendered; the refusal is recorded in the ledger."
LABEL_LOCKED = "Required by this credential (disclosure: label-as-ai-generated): it cannot be turned off."

# The tab each role lands on (admins land on Users: the work only they can do).
HOME_TAB = {Role.OPERATOR: "render", Role.CONSENT_OFFICER: "consent", Role.AUDITOR: "audit", Role.ADMIN: "users"}


# The stages a render shows; the per-frame pass animates, labels, watermarks and encodes each batch.
STAGES = ("verify", "animate", "watermark", "encode", "sign", "log")


def stages_of(message: str) -> tuple[str, ...] | None:
    """Which of ``STAGES`` a pipeline progress message belongs to: () while queued, None if unknown."""
    text = message.lower()
    if "animat" in text:
        return ("animate", "watermark", "encode")
    # the read-back of the mark from the encoded file closes the encode stage
    for word, stage in (("queue", None), ("again", "animate"), ("confirm", "encode"), ("watermark", "watermark"),
                        ("encod", "encode"), ("sign", "sign"), ("deliver", "log"), ("ledger", "log"),
                        ("done", "log"), ("read", "verify"), ("analys", "verify"), ("verif", "verify"),
                        ("consent", "verify")):
        if word in text:
            return (stage,) if stage else ()
    return None


class RenderProgress:
    """Turns the pipeline's ``report(stage, done, total)`` into the page's progress line: the six
    stages (done, running, to come), frames done / total and the time left at the current pace."""

    def __init__(self, progress: Callable[..., Any], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._progress = progress
        self._clock = clock
        self._frames_since: tuple[float, int] | None = None  # (time, frames) of the first frame report
        self._active: tuple[str, ...] = ("verify",)  # a message this page does not know keeps the last stage

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        self._progress(done / total if total else None, desc=self.describe(stage, done, total))

    def describe(self, stage: str, done: int, total: int | None) -> str:
        known = stages_of(stage)
        active = self._active = self._active if known is None else known
        if not active:
            return f"{stage} (waiting for a render worker)"
        first = STAGES.index(active[0])
        marks = ("✓" if i < first else "▶" if name in active else "·" for i, name in enumerate(STAGES))
        track = " ".join(mark + name for mark, name in zip(marks, STAGES))
        if "animate" not in active or not total:
            return f"{track} — {stage}"
        return f"{track} — frame {done}/{total}{self._time_left(done, total)}"

    def _time_left(self, done: int, total: int) -> str:
        now = self._clock()
        if self._frames_since is None or done < self._frames_since[1]:
            self._frames_since = (now, done)  # the first frames (or a fresh attempt) start the clock
            return ""
        started, first = self._frames_since
        if done <= first or now <= started:
            return ""
        left = (total - done) * (now - started) / (done - first)
        return f", ~{left:.0f} s left" if left < 120 else f", ~{left / 60:.0f} min left"


@dataclass(eq=False)
class _Run:
    """A render this process is waiting for, so that a cancel asked before its ledger record
    exists still reaches it (see ``RenderHandlers.cancel``)."""

    operator: str
    since: datetime
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_sent: bool = False


def manifest_words(status: str) -> str:
    """'trusted' means: chains to the configured trust anchor, this studio's own root CA."""
    return "trusted (by this studio's root CA)" if status == "trusted" else status


def credential_choices(ctx: WebContext) -> list[tuple[str, str]]:
    return [(f"{c.subject_name} — {c.project} ({c.credential_id[-8:]})", c.credential_id)
            for c in ctx.ledger.list_credentials()]


def describe_credential(ctx: WebContext, credential_id: str | None) -> str:
    """The credential's terms as markdown, for the operator's and the officer's screens."""
    if not credential_id:
        return "_No credential selected._"
    c = ctx.ledger.get_credential(credential_id)
    revoked = ctx.ledger.revocation_status().is_revoked(c.credential_id)
    until = f"{c.valid_until:%Y-%m-%d %H:%M} UTC" if c.valid_until else "no end date"
    lines = [
        f"**Subject:** {c.subject_name} (grantor: {c.grantor_role})",
        f"**Project:** {c.project}",
        f"**Purposes:** {', '.join(c.purposes)} · **Media:** {', '.join(c.media)}",
        f"**Valid:** {c.valid_from:%Y-%m-%d %H:%M} UTC → {until} · **Max duration:** {c.max_duration_seconds:g} s",
        f"**Disclosure:** {c.disclosure} · **AI training:** {c.ai_training}",
        f"**Status:** {'REVOKED' if revoked else 'active'} · `{c.credential_id}`",
    ]
    return "\n\n".join(lines)


class RenderHandlers:
    """The operator's Render tab."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._runs_lock = threading.Lock()
        self._runs: set[_Run] = set()

    def credentials_update(self) -> Any:
        choices = credential_choices(self.ctx)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    @guarded(Role.OPERATOR, Role.CONSENT_OFFICER)
    def refresh_credentials(self, request: gr.Request, *, user: User) -> Any:
        return self.credentials_update()

    @guarded(Role.OPERATOR, Role.CONSENT_OFFICER)
    def pick_credential(self, credential_id: str | None, request: gr.Request, *, user: User) -> Any:
        if not credential_id:
            return describe_credential(self.ctx, None), gr.update(), "", gr.update()
        c = self.ctx.ledger.get_credential(credential_id)
        return (
            describe_credential(self.ctx, credential_id),
            gr.update(choices=list(c.purposes), value=c.purposes[0]),
            c.project,
            # A label the credential requires is locked on (the pipeline refuses a render without it).
            gr.update(value=True, interactive=False, info=LABEL_LOCKED)
            if c.disclosure_required
            else gr.update(value=False, interactive=True, info=None),
        )

    @guarded(Role.OPERATOR)
    def photo_preview(self, photo_file: str | None, request: gr.Request, *, user: User) -> Any:
        from studio.errors import USER_FACING
        from studio.media.image import read_preview

        if not photo_file:
            return None
        try:
            return read_preview(photo_file)
        except USER_FACING as exc:
            gr.Warning(exc.user_message())  # the render refuses it (and logs that); here only a hint
            return None

    @guarded(Role.OPERATOR, consent_format=RENDER_REFUSED)
    def render(
        self,
        credential_id: str | None,
        photo: str | None,
        use_reference: bool,
        driving: str | None,
        purpose: str | None,
        project: str,
        animator: str,
        relative: bool,
        paste_back: bool,
        label_ai: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
        *,
        user: User,
    ) -> Any:
        janitor = self.ctx.janitor
        claims: list[str] = []
        try:
            if not credential_id:
                raise gr.Error("Choose a consent credential first.")
            if use_reference:
                photo = str(self._reference_photo(credential_id))
            if not photo:
                raise gr.Error("Upload a photo (or tick 'use the credential's reference photo').")
            if not driving:
                raise gr.Error("Upload a driving video.")
            if not use_reference:
                janitor.claim(photo, claims)
            janitor.claim(driving, claims)
            req = RenderRequest(
                photo=Path(photo),
                driving=Path(driving),
                credential_id=credential_id,
                purpose=purpose or "",
                project=project or "",
                operator=user.username,
                animator=animator,
                options=AnimationOptions(relative=relative, adapt_movement_scale=relative, paste_back=paste_back),
                label_ai=label_ai,
            )

            shown = RenderProgress(progress)
            run = _Run(user.username, datetime.now(timezone.utc))

            def report(stage: str, done: int, total: int | None) -> None:
                if run.cancel.is_set() and not run.cancel_sent:
                    self._cancel_started(run)
                shown(stage, done, total)

            with self._runs_lock:
                self._runs.add(run)
            try:
                result = self.ctx.dispatcher.render(req, progress=report)
            finally:
                with self._runs_lock:
                    self._runs.discard(run)
        finally:
            if not use_reference:
                janitor.release(photo, claims)
            janitor.release(driving, claims)
        summary = (
            f"**Render {result.render_id}** — watermark `{result.receipt['watermark']['payload']}`, "
            f"C2PA manifest {manifest_words(result.receipt['manifest']['status'])}, logged in the ledger."
        )
        return str(result.video_path), str(result.receipt_path), summary

    @guarded(Role.OPERATOR)
    def cancel(self, request: gr.Request, *, user: User) -> str:
        """Cancel this operator's open renders (queued ones at once, running ones within a second or
        so). One still being checked has no ledger record yet: it is cancelled as soon as it has."""
        ledger = self.ctx.ledger
        mine = [r.render_id for r in ledger.list_renders(limit=500)
                if r.status == "started" and r.operator == user.username]
        outcomes = [ledger.request_cancel(render_id, actor=user.username) for render_id in mine]
        with self._runs_lock:
            waiting = [run for run in self._runs if run.operator == user.username]
        for run in waiting:
            run.cancel.set()
        done = max(sum(outcome != "done" for outcome in outcomes), len(waiting))
        return (f"Cancelled {done} render(s) in progress: each stops within a second or so and delivers nothing "
                "(one already past its ledger commit still finishes); the cancel is in the ledger.")

    def _cancel_started(self, run: _Run) -> None:
        """Ask the ledger to cancel ``run``'s render once it is recorded as started (once)."""
        ledger = self.ctx.ledger
        since = run.since - timedelta(seconds=1)  # the ledger's clock may read a little behind ours
        for record in ledger.list_renders(limit=50):
            if record.status == "started" and record.operator == run.operator and record.created_at >= since:
                if ledger.cancel_requested(record.render_id) is None:
                    ledger.request_cancel(record.render_id, actor=run.operator)
                run.cancel_sent = True

    def _reference_photo(self, credential_id: str) -> Path:
        c = self.ctx.ledger.get_credential(credential_id)
        for digest in c.reference_images:
            for candidate in (self.ctx.config.home / "references").glob(f"{digest.removeprefix('sha256:')}.*"):
                return candidate
        raise gr.Error("This credential's reference photo is not stored in the studio; upload the photo instead.")


class UserHandlers:
    """The admin's Users tab."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def table(self) -> list[list[str]]:
        ledger = self.ctx.ledger
        locked = ledger.locked_users()
        return [
            [u.username, u.role, "disabled" if u.disabled else "locked" if u.username in locked else "active"]
            for u in ledger.list_users()
        ]

    @guarded(Role.ADMIN)
    def list_users(self, request: gr.Request, *, user: User) -> list[list[str]]:
        return self.table()

    @guarded(Role.ADMIN)
    def add_user(self, username: str, role: str, password: str, request: gr.Request, *, user: User) -> Any:
        password = password or new_password()
        create_user(self.ctx.ledger, username.strip(), password, role, actor=user.username)
        return f"Created **{username.strip()}** ({role}). Password: `{password}` (shown once).", self.table()

    @guarded(Role.ADMIN)
    def unlock_user(self, username: str, request: gr.Request, *, user: User) -> Any:
        unlocked = self.ctx.ledger.unlock_user(username.strip(), actor=user.username)
        message = f"Unlocked **{username.strip()}**." if unlocked else f"**{username.strip()}** was not locked."
        return message, self.table()

