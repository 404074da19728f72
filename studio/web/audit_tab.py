"""The auditor's tab: inspect any video, verify the whole ledger, export it.
``build_audit_tab(ctx)`` is called inside the Blocks."""

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from studio.users import Role, User
from studio.web.context import WebContext
from studio.web.guard import guarded


class AuditHandlers:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def ledger_state(self, user: User) -> str:
        events = self.ctx.ledger.head_seq()
        return f"The ledger holds **{events}** events. Verify the whole chain below, or inspect a video."

    @guarded(Role.AUDITOR)
    def audit(self, video: str | None, request: gr.Request, *, user: User) -> Any:
        from studio.audit import audit_video

        ctx = self.ctx
        claims: list[str] = []
        try:
            if not video:
                raise gr.Error("Upload a video to inspect.")
            ctx.janitor.claim(video, claims)
            report = audit_video(Path(video), config=ctx.config, ledger=ctx.ledger,
                                 watermark_key=ctx.pipeline.watermark_key,
                                 trust_anchor_pem=ctx.pipeline.signer.trust_anchor_pem)
        finally:
            ctx.janitor.release(video, claims)
        return report.to_markdown(), report.to_dict()

    @guarded(Role.AUDITOR)
    def verify_ledger(self, request: gr.Request, *, user: User) -> str:
        report = self.ctx.ledger.verify()
        return ("**OK** — " if report.ok else "**TAMPERED** — ") + report.summary()

    @guarded(Role.AUDITOR)
    def export_ledger(self, request: gr.Request, *, user: User) -> str:
        out = Path(tempfile.mkdtemp(prefix="ledger-export-", dir=self.ctx.exports)) / "ledger.jsonl"
        with out.open("w") as fp:
            self.ctx.ledger.export_jsonl(fp)
        return str(out)


def build_audit_tab(ctx: WebContext) -> gr.Tab:
    handlers = AuditHandlers(ctx)
    with gr.Tab("Audit", id="audit", visible=False) as tab:
        gr.Markdown("### Inspect a video\nWas it made here, under which consent, and is the ledger intact?")
        ledger_state = gr.Markdown(elem_id="ledger-state")
        audit_video_in = gr.File(label="Any video", type="filepath", elem_id="audit-file")
        audit_btn = gr.Button("Inspect", variant="primary", elem_id="audit-btn")
        audit_md = gr.Markdown(elem_id="audit-report")
        audit_json = gr.JSON(label="Details")
        with gr.Row():
            verify_btn = gr.Button("Verify the whole ledger", elem_id="verify-ledger-btn")
            export_btn = gr.Button("Export the ledger (JSON lines)")
        verify_out = gr.Markdown(elem_id="verify-ledger-out")
        export_file = gr.File(label="Ledger export", interactive=False)

    ctx.on_first_screen([Role.AUDITOR], handlers.ledger_state, [ledger_state])
    ctx.wire(audit_btn.click, handlers.audit, audit_video_in, [audit_md, audit_json], api_name="audit")
    ctx.wire(verify_btn.click, handlers.verify_ledger, None, verify_out, api_name="verify_ledger")
    ctx.wire(export_btn.click, handlers.export_ledger, None, export_file, api_name="export_ledger")
    return tab
