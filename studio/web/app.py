"""The web studio: Gradio Blocks built by ``build_app(pipeline)``: the layout and the wiring.

The page is a header, a status panel (refusals and crashes, see ``studio.web.guard``) and one
tab per role. Handlers live in ``studio.web.handlers`` (Render, Users) and in the tab modules
``studio.web.consent_tab`` and ``studio.web.audit_tab``; every one is ``guarded(*roles)``
because Gradio exposes each event as an API endpoint. The page load shows each role its own
tab with its first screen loaded (``WebContext.on_first_screen``) and runs nothing else.
"""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

import gradio as gr

from studio.render.pipeline import RenderPipeline
from studio.users import Role, User
from studio.web.audit_tab import build_audit_tab
from studio.web.consent_tab import build_consent_tab
from studio.web.context import WebContext
from studio.web.guard import Outcome, guarded
from studio.web.handlers import HOME_TAB, RenderHandlers, UserHandlers
from studio.web.janitor import Sweeper, UploadJanitor, make_private

_PURPOSES_HINT = "film, education, museum-exhibit, ..."
_TAB_IDS = ("render", "consent", "audit", "users")


def build_app(pipeline: RenderPipeline) -> gr.Blocks:
    from studio.render.farm import dispatcher_for

    config = pipeline.config
    exports = config.exports_dir  # owner-only; swept with the uploads (see Sweeper)
    exports.mkdir(mode=0o700, exist_ok=True)
    make_private(Path(gr.utils.get_upload_folder()))  # uploads and copies of outputs: faces
    ctx = WebContext(
        pipeline=pipeline,
        dispatcher=dispatcher_for(pipeline),  # in this process, or on the render farm (STUDIO_BROKER_URL)
        janitor=UploadJanitor(keep_seconds=config.keep_uploads_seconds),
        exports=exports,
    )
    page = _PageHandlers(ctx)

    with gr.Blocks(title="Avatar Studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# Avatar Studio\nConsent-gated avatars: every render is verified, watermarked, signed and logged.")
        who = gr.Markdown(elem_id="who")
        ctx.status = gr.HTML(elem_id="status-panel")
        with gr.Tabs() as tabs:
            tab_render = _build_render_tab(ctx)
            tab_consent = build_consent_tab(ctx)
            tab_audit = build_audit_tab(ctx)
            tab_users = _build_users_tab(ctx)
        loaded = [output for screen in ctx.first_screens for output in screen.outputs]
        shown = [who, tabs, tab_render, tab_consent, tab_audit, tab_users, *loaded]
        ctx.wire(demo.load, page.first_screen, None, shown, api_name=False, clears_status=False)
    demo.queue(default_concurrency_limit=4, max_size=64)
    Sweeper(demo, exports, ctx.janitor, keep_seconds=config.keep_uploads_seconds).start()
    return demo


class _PageHandlers:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    @guarded(*Role)
    def first_screen(self, request: gr.Request, *, user: User) -> list[Any]:
        """Who is logged in, their tabs (their own one selected) and its first screen's data; the
        data of tabs this role cannot use is neither loaded nor asked for."""
        admin = user.role is Role.ADMIN
        shown = {tab: admin or HOME_TAB[user.role] == tab for tab in _TAB_IDS}
        values: list[Any] = [f"Logged in as **{user.username}** ({user.role.value})",
                             gr.Tabs(selected=HOME_TAB[user.role])]
        values += [gr.update(visible=shown[tab]) for tab in _TAB_IDS]
        for screen in self.ctx.first_screens:
            if admin or user.role in screen.roles:
                loaded = screen.load(user)
                values += list(loaded) if len(screen.outputs) > 1 else [loaded]
            else:
                values += [gr.update() for _ in screen.outputs]
        return values


def _build_render_tab(ctx: WebContext) -> gr.Tab:
    pipeline = ctx.pipeline
    handlers = RenderHandlers(ctx)
    with gr.Tab("Render", id="render", visible=False) as tab:
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

    ctx.on_first_screen([Role.OPERATOR], lambda user: handlers.credentials_update(), [credential])
    ctx.wire(refresh.click, handlers.refresh_credentials, None, credential, api_name="credentials")
    ctx.wire(photo.change, handlers.photo_preview, photo, photo_preview, api_name=False, clears_status=False)
    ctx.wire(credential.change, handlers.pick_credential, credential, [cred_info, purpose, project, label_ai],
             api_name="credential_info", clears_status=False)
    render_event = ctx.wire(
        render_btn.click,
        handlers.render,
        [credential, photo, use_reference, driving, purpose, project, animator, relative, paste_back, label_ai],
        [out_video, out_receipt, out_summary],
        api_name="render",
        # on the farm a handler only waits for a worker, so many may wait at once
        concurrency_limit=ctx.config.max_concurrent_renders if not ctx.config.broker_url else 32,
        concurrency_id="render",
    )
    # The ledger stops the render (its owner looks for the request every second); the page stops waiting.
    cancel_event = ctx.wire(cancel_btn.click, handlers.cancel, None, out_summary, api_name="cancel_render",
                            cancels=[render_event], clears_status=False)
    cancelled = Outcome("cancelled", "you asked to cancel your renders in progress: each stops within a second "
                        "or so and delivers nothing.",
                        reference="render.cancel_requested and render.failed (RenderCancelled) in the ledger")
    cancel_event.success(lambda: cancelled.to_html(), None, ctx.status, api_name=False, queue=False)
    return tab


def _build_users_tab(ctx: WebContext) -> gr.Tab:
    handlers = UserHandlers(ctx)
    with gr.Tab("Users", id="users", visible=False) as tab:
        users = gr.Dataframe(headers=["username", "role", "status"], label="Users", interactive=False,
                             elem_id="users-table")
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

    ctx.on_first_screen([Role.ADMIN], lambda user: handlers.table(), [users])
    ctx.wire(users_btn.click, handlers.list_users, None, users, api_name="list_users")
    ctx.wire(add_btn.click, handlers.add_user, [new_name, new_role, new_pw], [add_out, users], api_name="add_user")
    ctx.wire(unlock_btn.click, handlers.unlock_user, unlock_name, [unlock_out, users], api_name="unlock_user")
    return tab


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
        footer_links=[],  # no "Use via API" link: not on the login page, nor for logged-in users
        max_file_size="200mb",
        prevent_thread_lock=not block,
        quiet=True,  # `serve` prints the address itself; Gradio's own banner suggests share=True
    )
