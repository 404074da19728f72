"""The web studio: Gradio Blocks built by ``build_app(pipeline)``.

Handlers only translate between widgets and the pipeline/ledger. Roles are enforced here on
the server, in every handler, because Gradio exposes each event as an API endpoint that
``gradio_client`` can call directly; hiding a tab is cosmetic. This module and ``cli.py`` are
the only places that turn user-facing errors into messages.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gradio as gr

from consent.errors import ConsentError
from models.animate import AnimationOptions
from models.errors import MotionError
from studio.errors import USER_FACING
from studio.render.pipeline import RenderPipeline, RenderRequest
from studio.users import Role, create_user, new_password, require_role

log = logging.getLogger(__name__)

_PURPOSES_HINT = "film, education, museum-exhibit, ..."


def _manifest_words(status: str) -> str:
    """'trusted' means: chains to the configured trust anchor, this studio's own root CA."""
    return "trusted (by this studio's root CA)" if status == "trusted" else status


def _fail(exc: Exception) -> gr.Error:
    return gr.Error(exc.user_message())  # type: ignore[attr-defined]


# Gradio files an upload under a hash of its bytes, so two people uploading the same file get
# the same path: a render that finished first must not delete the file under one still running.
_UPLOADS_IN_USE: Counter[str] = Counter()
_UPLOADS_RELEASED: Counter[str] = Counter()  # releases so far per path: only the last one's timer deletes
_UPLOADS_LOCK = threading.Lock()


def _claim_upload(path: str, claims: list[str]) -> None:
    """Mark an uploaded file as in use by this request (recorded in ``claims``) until
    ``_discard_upload``; a clear error if it is already gone."""
    with _UPLOADS_LOCK:
        _UPLOADS_IN_USE[path] += 1
    claims.append(path)
    if not Path(path).is_file():
        raise gr.Error("The uploaded file is no longer on the server (uploads are deleted after use). Upload it again.")


def _discard_upload(path: str | None, pipeline: RenderPipeline, claims: list[str] | None = None) -> None:
    """Uploaded photos and videos are personal data: delete them ``keep_uploads_seconds`` after
    the last request using them ends (0: at once), never while a request still uses the same
    file. Releases this request's claim on it first, if ``claims`` holds one.

    Not at once by default: the page keeps pointing at the uploaded file, so pressing Render
    again on the same inputs (or a second identical upload queued behind the first) needs it,
    and Gradio reads it before any handler of ours could say what is wrong.
    """
    if not path:
        return
    with _UPLOADS_LOCK:
        if claims is not None and path in claims:
            claims.remove(path)
            _UPLOADS_IN_USE[path] -= 1
        if _UPLOADS_IN_USE[path] > 0:
            return
        del _UPLOADS_IN_USE[path]
        _UPLOADS_RELEASED[path] += 1
        release = _UPLOADS_RELEASED[path]
    delay = pipeline.config.keep_uploads_seconds
    released_at = time.time()
    if delay <= 0:
        _delete_if_unused(path, release, released_at)
    else:
        timer = threading.Timer(delay, _delete_if_unused, args=(path, release, released_at))
        timer.daemon = True
        timer.start()


def _delete_if_unused(path: str, release: int, released_at: float) -> None:
    """Delete ``path`` unless it was claimed or released again since ``release`` (then a later
    release's deletion, at its own time, is the one that counts), or uploaded again since
    ``released_at`` (same bytes, same path: a request about to claim it; the sweeper deletes
    it later if none does)."""
    with _UPLOADS_LOCK:
        if _UPLOADS_IN_USE[path] > 0 or _UPLOADS_RELEASED[path] != release:
            return
        del _UPLOADS_RELEASED[path]
        if not _older_than(Path(path), released_at + 1e-3):
            return
        Path(path).unlink(missing_ok=True)


_LABEL_LOCKED = "Required by this credential (disclosure: label-as-ai-generated): it cannot be turned off."


def build_app(pipeline: RenderPipeline) -> gr.Blocks:
    ledger = pipeline.ledger
    config = pipeline.config
    from studio.render.farm import dispatcher_for

    dispatcher = dispatcher_for(pipeline)  # in this process, or on the render farm (STUDIO_BROKER_URL)
    exports = config.exports_dir  # owner-only; swept with the uploads (see _Sweeper)
    exports.mkdir(mode=0o700, exist_ok=True)
    _make_private(Path(gr.utils.get_upload_folder()))  # uploads and copies of outputs: faces

    # ------------------------------------------------------------------ helpers
    def credential_choices() -> list[tuple[str, str]]:
        return [(f"{c.subject_name} — {c.project} ({c.credential_id[-8:]})", c.credential_id) for c in ledger.list_credentials()]

    def describe(credential_id: str | None) -> str:
        if not credential_id:
            return "_No credential selected._"
        c = ledger.get_credential(credential_id)
        revoked = ledger.revocation_status().is_revoked(c.credential_id)
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

    # ------------------------------------------------------------------ handlers
    def on_load(request: gr.Request):
        user = ledger.get_user(request.username) if request.username else None
        role = Role(user.role) if user else None
        is_admin = role is Role.ADMIN
        return (
            f"Logged in as **{request.username}** ({role.value if role else 'unknown'})",
            gr.update(visible=is_admin or role is Role.OPERATOR),
            gr.update(visible=is_admin or role is Role.CONSENT_OFFICER),
            gr.update(visible=is_admin or role is Role.AUDITOR),
            gr.update(visible=is_admin),
        )

    def on_refresh_credentials(request: gr.Request):
        try:
            require_role(ledger, request.username, Role.OPERATOR, Role.CONSENT_OFFICER)
            choices = credential_choices()
        except USER_FACING as exc:
            raise _fail(exc) from None
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def on_pick_credential(credential_id: str | None, request: gr.Request):
        try:
            require_role(ledger, request.username, Role.OPERATOR, Role.CONSENT_OFFICER)
            if not credential_id:
                return describe(None), gr.update(), "", gr.update()
            c = ledger.get_credential(credential_id)
            return (
                describe(credential_id),
                gr.update(choices=list(c.purposes), value=c.purposes[0]),
                c.project,
                # A label the credential requires is locked on (the pipeline refuses a render without it).
                gr.update(value=True, interactive=False, info=_LABEL_LOCKED)
                if c.disclosure_required
                else gr.update(value=False, interactive=True, info=None),
            )
        except USER_FACING as exc:
            raise _fail(exc) from None

    def on_photo_preview(photo_file: str | None, request: gr.Request):
        from studio.media.image import read_preview

        if not photo_file:
            return None
        try:
            require_role(ledger, request.username, Role.OPERATOR)
            return read_preview(photo_file)
        except USER_FACING as exc:
            gr.Warning(exc.user_message())  # the render refuses it (and logs that); here only a hint
            return None

    def on_render(
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
    ):
        claims: list[str] = []
        try:
            user = require_role(ledger, request.username, Role.OPERATOR)
            if not credential_id:
                raise gr.Error("Choose a consent credential first.")
            if use_reference:
                photo = str(reference_photo_for(credential_id))
            if not photo:
                raise gr.Error("Upload a photo (or tick 'use the credential's reference photo').")
            if not driving:
                raise gr.Error("Upload a driving video.")
            if not use_reference:
                _claim_upload(photo, claims)
            _claim_upload(driving, claims)
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

            result = dispatcher.render(req, progress=report)
        except (ConsentError, MotionError) as exc:
            raise gr.Error(
                f"Refused: {exc.user_message()}. Nothing was rendered; the refusal is recorded in the ledger."
            ) from None
        except USER_FACING as exc:
            raise _fail(exc) from None
        finally:
            if not use_reference:
                _discard_upload(photo, pipeline, claims)
            _discard_upload(driving, pipeline, claims)
        summary = (
            f"**Render {result.render_id}** — watermark `{result.receipt['watermark']['payload']}`, "
            f"C2PA manifest {_manifest_words(result.receipt['manifest']['status'])}, logged in the ledger."
        )
        return str(result.video_path), str(result.receipt_path), summary

    def on_cancel(request: gr.Request) -> str:
        """Cancel this operator's open renders (queued ones at once, running ones within a second or so)."""
        try:
            user = require_role(ledger, request.username, Role.OPERATOR)
            mine = [r.render_id for r in ledger.list_renders(limit=500) if r.status == "started" and r.operator == user.username]
            outcomes = [ledger.request_cancel(render_id, actor=user.username) for render_id in mine]
        except USER_FACING as exc:
            raise _fail(exc) from None
        done = sum(outcome != "done" for outcome in outcomes)
        return (f"Cancelled {done} render(s) in progress: each stops within a second or so and delivers nothing "
                "(one already past its ledger commit still finishes); the cancel is in the ledger.")

    def reference_photo_for(credential_id: str) -> Path:
        c = ledger.get_credential(credential_id)
        for digest in c.reference_images:
            for candidate in (config.home / "references").glob(f"{digest.removeprefix('sha256:')}.*"):
                return candidate
        raise gr.Error("This credential's reference photo is not stored in the studio; upload the photo instead.")

    def on_enroll(did: str, name: str, request: gr.Request):
        try:
            user = require_role(ledger, request.username, Role.CONSENT_OFFICER)
            ledger.enroll_issuer(did.strip(), name=name.strip(), actor=user.username)
        except USER_FACING as exc:
            raise _fail(exc) from None
        return f"Enrolled issuer **{name}** (`{did.strip()}`)."

    def on_import(cred_file: str | None, ref_photo: str | None, request: gr.Request):
        from consent.proof import MAX_DOCUMENT_BYTES
        from studio import media

        try:
            user = require_role(ledger, request.username, Role.CONSENT_OFFICER)
            if not cred_file:
                raise gr.Error("Choose a credential file (JSON).")
            with open(cred_file, "rb") as fp:
                submitted = fp.read(MAX_DOCUMENT_BYTES + 1)  # the ledger refuses (and logs) anything larger
            embedding = None
            if ref_photo:  # the credential's face template must describe the pictured face
                face = pipeline.face_analyzer().analyze(media.read_image(Path(ref_photo)))
                embedding = None if face.embedding is None else [float(v) for v in face.embedding]
                if embedding is None:
                    raise gr.Error("No face embedding could be computed for the reference photo.")
            credential = ledger.import_credential(submitted, actor=user.username, reference_embedding=embedding)
            note = ""
            if ref_photo:
                digest = "sha256:" + media.sha256_file(ref_photo)
                if digest not in credential.reference_images:
                    note = " The reference photo does NOT match the credential's referenceImages and was not stored."
                else:
                    store = config.home / "references"
                    store.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(ref_photo, store / f"{digest.removeprefix('sha256:')}{Path(ref_photo).suffix or '.png'}")
                    note = " Reference photo stored."
        except USER_FACING as exc:
            raise _fail(exc) from None
        return f"Imported credential for **{credential.subject_name}** (`{credential.credential_id}`).{note}", credentials_table()

    def credentials_table() -> list[list[str]]:
        status = ledger.revocation_status()
        return [
            [c.credential_id, c.subject_name, c.project, "revoked" if status.is_revoked(c.credential_id) else "active"]
            for c in ledger.list_credentials()
        ]

    def on_list_credentials(request: gr.Request):
        try:
            require_role(ledger, request.username, Role.CONSENT_OFFICER)
        except USER_FACING as exc:
            raise _fail(exc) from None
        return credentials_table()

    def on_revoke(credential_id: str, reason: str, request: gr.Request):
        try:
            user = require_role(ledger, request.username, Role.CONSENT_OFFICER)
            ledger.revoke(credential_id.strip(), reason=reason.strip() or "revoked by consent officer", actor=user.username)
        except USER_FACING as exc:
            raise _fail(exc) from None
        return f"Revoked `{credential_id.strip()}`.", credentials_table()

    def on_issue_command(subject: str, grantee: str, proj: str, purposes: str, max_duration: float, request: gr.Request):
        try:
            require_role(ledger, request.username, Role.CONSENT_OFFICER)
        except USER_FACING as exc:
            raise _fail(exc) from None
        parts = ["avatar-studio consent issue --key SUBJECT-KEY.pem", f"--subject-name {json.dumps(subject)}",
                 f"--grantee {json.dumps(grantee)}", f"--project {json.dumps(proj)}"]
        parts += [f"--purpose {json.dumps(p.strip())}" for p in purposes.split(",") if p.strip()]
        parts += [f"--max-duration {max_duration:g}", "--photo REFERENCE.jpg", "--out credential.json"]
        return (
            "The subject (or estate) signs on their own machine with their own key; the studio never sees it:\n\n"
            "```bash\navatar-studio keys new SUBJECT-KEY.pem   # once; prints the did:key to enrol\n"
            + " \\\n    ".join(parts) + "\n```\nThen enrol the printed did:key above and import `credential.json`."
        )

    def on_audit(video: str | None, request: gr.Request):
        from studio.audit import audit_video

        claims: list[str] = []
        try:
            require_role(ledger, request.username, Role.AUDITOR)
            if not video:
                raise gr.Error("Upload a video to inspect.")
            _claim_upload(video, claims)
            report = audit_video(Path(video), config=config, ledger=ledger, watermark_key=pipeline.watermark_key,
                                 trust_anchor_pem=pipeline.signer.trust_anchor_pem)
        except USER_FACING as exc:
            raise _fail(exc) from None
        finally:
            _discard_upload(video, pipeline, claims)
        return report.to_markdown(), report.to_dict()

    def on_verify_ledger(request: gr.Request):
        try:
            require_role(ledger, request.username, Role.AUDITOR)
            report = ledger.verify()
        except USER_FACING as exc:
            raise _fail(exc) from None
        return ("**OK** — " if report.ok else "**TAMPERED** — ") + report.summary()

    def on_export_ledger(request: gr.Request):
        try:
            require_role(ledger, request.username, Role.AUDITOR)
            out = Path(tempfile.mkdtemp(prefix="ledger-export-", dir=exports)) / "ledger.jsonl"
            with out.open("w") as fp:
                ledger.export_jsonl(fp)
        except USER_FACING as exc:
            raise _fail(exc) from None
        return str(out)

    def users_table() -> list[list[str]]:
        locked = ledger.locked_users()
        return [
            [u.username, u.role, "disabled" if u.disabled else "locked" if u.username in locked else "active"]
            for u in ledger.list_users()
        ]

    def on_unlock_user(username: str, request: gr.Request):
        try:
            admin = require_role(ledger, request.username, Role.ADMIN)
            unlocked = ledger.unlock_user(username.strip(), actor=admin.username)
        except USER_FACING as exc:
            raise _fail(exc) from None
        message = f"Unlocked **{username.strip()}**." if unlocked else f"**{username.strip()}** was not locked."
        return message, users_table()

    def on_list_users(request: gr.Request):
        try:
            require_role(ledger, request.username, Role.ADMIN)
        except USER_FACING as exc:
            raise _fail(exc) from None
        return users_table()

    def on_add_user(username: str, role: str, password: str, request: gr.Request):
        try:
            admin = require_role(ledger, request.username, Role.ADMIN)
            password = password or new_password()
            create_user(ledger, username.strip(), password, role, actor=admin.username)
        except USER_FACING as exc:
            raise _fail(exc) from None
        return f"Created **{username.strip()}** ({role}). Password: `{password}` (shown once).", users_table()

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="Avatar Studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# Avatar Studio\nConsent-gated avatars: every render is verified, watermarked, signed and logged.")
        who = gr.Markdown()
        with gr.Tab("Render", visible=False) as tab_render:
            with gr.Row():
                with gr.Column():
                    credential = gr.Dropdown(
                        label="Consent credential", choices=[], allow_custom_value=True, elem_id="credential"
                    )
                    refresh = gr.Button("Refresh credentials", size="sm", elem_id="refresh-credentials")
                    cred_info = gr.Markdown("_No credential selected._", elem_id="credential-info")
                    # A file, not gr.Image: Gradio would decode (and re-encode) the upload before any
                    # size limit applied; the pipeline reads it, header first, and hashes these bytes.
                    photo = gr.File(label="Photo of the consenting person", file_types=["image"], type="filepath",
                                    elem_id="photo")
                    photo_preview = gr.Image(label="Preview", interactive=False, height=180, elem_id="photo-preview")
                    use_reference = gr.Checkbox(label="Use the credential's reference photo", value=False)
                    driving = gr.Video(label="Driving video", sources=["upload"], elem_id="driving")
                with gr.Column():
                    purpose = gr.Dropdown(label="Purpose", choices=[], allow_custom_value=True, info=_PURPOSES_HINT)
                    project = gr.Textbox(label="Project")
                    animator = gr.Radio(
                        label="Animator",
                        choices=[("auto", "auto")] + [(n, n) for n in pipeline.animator_names()],
                        value="auto",
                        info=f"auto = {pipeline.default_animator}"
                        + ("" if "fomm" in pipeline.animator_names() else " (no FOMM checkpoint configured)"),
                    )
                    relative = gr.Checkbox(label="Relative motion (adapt to the photo's face)", value=True)
                    paste_back = gr.Checkbox(label="Paste the face back into the full photo", value=True)
                    label_ai = gr.Checkbox(label='Visible "AI-generated" label', value=True)
                    render_btn = gr.Button("Render", variant="primary", elem_id="render-btn")
                    cancel_btn = gr.Button("Cancel my renders in progress", elem_id="cancel-btn")
                    out_video = gr.Video(label="Result", interactive=False, elem_id="result-video")
                    out_summary = gr.Markdown(elem_id="render-summary")
                    out_receipt = gr.File(label="Receipt (JSON)", interactive=False, elem_id="receipt")
        with gr.Tab("Consent", visible=False) as tab_consent:
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### Enrol an issuer\nAfter checking the subject's or estate's identity.")
                    enroll_did = gr.Textbox(label="Issuer did:key", elem_id="enroll-did")
                    enroll_name = gr.Textbox(label="Name", elem_id="enroll-name")
                    enroll_btn = gr.Button("Enrol", elem_id="enroll-btn")
                    enroll_out = gr.Markdown()
                with gr.Column():
                    gr.Markdown("### Import a credential")
                    cred_file = gr.File(label="Credential (JSON)", file_types=[".json"], type="filepath", elem_id="cred-file")
                    ref_file = gr.File(label="Reference photo (optional)", type="filepath", elem_id="ref-file")
                    import_btn = gr.Button("Import", elem_id="import-btn")
                    import_out = gr.Markdown(elem_id="import-out")
            creds = gr.Dataframe(headers=["id", "subject", "project", "status"], label="Credentials", interactive=False)
            list_btn = gr.Button("Refresh list", size="sm")
            with gr.Row():
                revoke_id = gr.Textbox(label="Credential id to revoke")
                revoke_reason = gr.Textbox(label="Reason")
                revoke_btn = gr.Button("Revoke", variant="stop")
            revoke_out = gr.Markdown()
            with gr.Accordion("Issue a credential (the subject signs with the CLI)", open=False):
                i_subject = gr.Textbox(label="Subject name")
                i_grantee = gr.Textbox(label="Grantee (studio or institution)")
                i_project = gr.Textbox(label="Project")
                i_purposes = gr.Textbox(label="Purposes (comma-separated)", value="film")
                i_duration = gr.Number(label="Maximum output duration (s)", value=120)
                i_btn = gr.Button("Show the command")
                i_out = gr.Markdown()
        with gr.Tab("Audit", visible=False) as tab_audit:
            audit_video_in = gr.File(label="Any video", type="filepath", elem_id="audit-file")
            audit_btn = gr.Button("Inspect", variant="primary", elem_id="audit-btn")
            audit_md = gr.Markdown(elem_id="audit-report")
            audit_json = gr.JSON(label="Details")
            with gr.Row():
                verify_btn = gr.Button("Verify the whole ledger", elem_id="verify-ledger-btn")
                export_btn = gr.Button("Export the ledger (JSON lines)")
            verify_out = gr.Markdown(elem_id="verify-ledger-out")
            export_file = gr.File(label="Ledger export", interactive=False)
        with gr.Tab("Users", visible=False) as tab_users:
            users = gr.Dataframe(headers=["username", "role", "status"], label="Users", interactive=False)
            users_btn = gr.Button("Refresh", size="sm")
            with gr.Row():
                new_name = gr.Textbox(label="Username")
                new_role = gr.Dropdown(label="Role", choices=[r.value for r in Role], value=Role.OPERATOR.value)
                new_pw = gr.Textbox(label="Password (empty: generate)", type="password")
                add_btn = gr.Button("Add user")
            add_out = gr.Markdown()
            with gr.Row():
                unlock_name = gr.Textbox(label="Locked account (after repeated failed logins)", elem_id="unlock-name")
                unlock_btn = gr.Button("Unlock", elem_id="unlock-btn")
            unlock_out = gr.Markdown(elem_id="unlock-out")

        demo.load(on_load, None, [who, tab_render, tab_consent, tab_audit, tab_users], api_name=False)
        demo.load(on_refresh_credentials, None, credential, api_name=False)
        refresh.click(on_refresh_credentials, None, credential, api_name="credentials")
        photo.change(on_photo_preview, photo, photo_preview, api_name=False)
        credential.change(on_pick_credential, credential, [cred_info, purpose, project, label_ai], api_name="credential_info")
        render_event = render_btn.click(
            on_render,
            [credential, photo, use_reference, driving, purpose, project, animator, relative, paste_back, label_ai],
            [out_video, out_receipt, out_summary],
            api_name="render",
            # on the farm a handler only waits for a worker, so many may wait at once
            concurrency_limit=config.max_concurrent_renders if not config.broker_url else 32,
            concurrency_id="render",
        )
        # The ledger stops the render (its owner looks for the request every second); the page stops waiting.
        cancel_btn.click(on_cancel, None, out_summary, api_name="cancel_render", cancels=[render_event])
        enroll_btn.click(on_enroll, [enroll_did, enroll_name], enroll_out, api_name="enroll")
        import_btn.click(on_import, [cred_file, ref_file], [import_out, creds], api_name="import_credential")
        list_btn.click(on_list_credentials, None, creds, api_name="list_credentials")
        revoke_btn.click(on_revoke, [revoke_id, revoke_reason], [revoke_out, creds], api_name="revoke")
        i_btn.click(on_issue_command, [i_subject, i_grantee, i_project, i_purposes, i_duration], i_out, api_name="issue_command")
        audit_btn.click(on_audit, audit_video_in, [audit_md, audit_json], api_name="audit")
        verify_btn.click(on_verify_ledger, None, verify_out, api_name="verify_ledger")
        export_btn.click(on_export_ledger, None, export_file, api_name="export_ledger")
        users_btn.click(on_list_users, None, users, api_name="list_users")
        add_btn.click(on_add_user, [new_name, new_role, new_pw], [add_out, users], api_name="add_user")
        unlock_btn.click(on_unlock_user, unlock_name, [unlock_out, users], api_name="unlock_user")
    demo.queue(default_concurrency_limit=4, max_size=64)
    _Sweeper(demo, exports, keep_seconds=config.keep_uploads_seconds).start()
    return demo


class _Sweeper(threading.Thread):
    """Deletes what the server keeps of users' files once older than the keep time: uploads
    nobody has claimed (see ``_claim_upload``), Gradio's copies of served outputs and
    previews, and ledger exports. Gradio's own ``delete_cache`` only runs hourly and knows
    nothing of renders still reading an upload."""

    def __init__(self, demo: gr.Blocks, exports: Path, *, keep_seconds: int) -> None:
        super().__init__(name="upload-sweeper", daemon=True)
        self._demo = demo
        self._exports = exports
        # keep 0 deletes uploads at once after use; one never used goes after a minute
        self._age = keep_seconds if keep_seconds > 0 else 60
        self._every = min(60.0, max(0.5, self._age / 2))

    def run(self) -> None:
        while True:
            time.sleep(self._every)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a sweep that fails is retried next round
                log.exception("sweeping old uploads failed")

    def sweep(self) -> None:
        cutoff = time.time() - self._age
        for file_set in list(self._demo.temp_file_sets):
            for name in list(file_set):
                with _UPLOADS_LOCK:
                    if _UPLOADS_IN_USE[name] > 0:
                        continue
                    if _older_than(Path(name), cutoff):
                        Path(name).unlink(missing_ok=True)
                        file_set.discard(name)
        # Gradio's multipart parser leaves its temporary file behind when an upload is cut off
        for leftover in Path(gr.utils.get_upload_folder()).glob("tmp*"):
            if leftover.is_file() and _older_than(leftover, cutoff):
                leftover.unlink(missing_ok=True)
        for export in self._exports.glob("*/*"):
            if _older_than(export, cutoff):
                shutil.rmtree(export.parent, ignore_errors=True)


def _make_private(folder: Path) -> None:
    """Create ``folder`` owner-only, or narrow it to 0700 if this user owns it (Gradio makes
    its cache, by default in the shared temp folder, 0755 with copies of outputs 0644 inside)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        os.chmod(folder, 0o700)


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def launch(demo: gr.Blocks, pipeline: RenderPipeline, *, host: str, port: int, block: bool = True) -> Any:
    """Start the server with login required; logins go through a ``LoginGuard`` (throttled,
    locked after repeated failures, hashed off the event loop, failures logged as counts)."""
    from starlette.middleware import Middleware

    from studio.web.login import LoginGate, LoginGuard

    guard = LoginGuard.from_config(pipeline.ledger, pipeline.config)
    atexit.register(guard.flush)  # the open window's failed logins, at shutdown
    return demo.launch(
        # Outputs and exports only (not the data folder with its keys and ledger): Gradio serves
        # nothing outside its cache, the working directory and these paths.
        allowed_paths=[str(pipeline.config.outputs_dir), str(pipeline.config.exports_dir)],
        server_name=host,
        server_port=port,
        auth=guard.auth,
        auth_message=(
            "Avatar Studio — log in with your studio account. Repeated failures make you wait longer; "
            f"after {pipeline.config.login_lockout_failures} the account is locked until an admin unlocks it."
        ),
        app_kwargs={"middleware": [Middleware(LoginGate, guard=guard)]},
        share=False,
        ssr_mode=False,
        footer_links=["api"],
        max_file_size="200mb",
        prevent_thread_lock=not block,
        quiet=True,  # `serve` prints the address itself; Gradio's own banner suggests share=True
    )
