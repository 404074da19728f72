"""Handlers of the Render and Users tabs and of the page load. They only translate between
widgets and the pipeline or ledger; ``guarded`` checks the role and reports refusals."""

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

            def report(stage: str, done: int, total: int | None) -> None:
                if total:
                    progress(done / total, desc=f"{stage} {done}/{total}")
                else:
                    progress(None, desc=stage)

            result = self.ctx.dispatcher.render(req, progress=report)
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
        """Cancel this operator's open renders (queued ones at once, running ones within a second or so)."""
        ledger = self.ctx.ledger
        mine = [r.render_id for r in ledger.list_renders(limit=500) if r.status == "started" and r.operator == user.username]
        outcomes = [ledger.request_cancel(render_id, actor=user.username) for render_id in mine]
        done = sum(outcome != "done" for outcome in outcomes)
        return (f"Cancelled {done} render(s) in progress: each stops within a second or so and delivers nothing "
                "(one already past its ledger commit still finishes); the cancel is in the ledger.")

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

