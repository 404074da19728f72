"""The auditor's tab: inspect any video and see, on one screen, whether it was made here and under
which consent; download the audit report (JSON and a one-page HTML); verify and export the ledger.
``build_audit_tab(ctx)`` is called inside the Blocks."""

import re
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from studio.users import Role, User
from studio.web.context import WebContext
from studio.web.guard import guarded

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class AuditHandlers:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def ledger_state(self, user: User) -> str:
        events = self.ctx.ledger.head_seq()
        return f"The ledger holds **{events}** events. Verify the whole chain below, or inspect a video."

    @guarded(Role.AUDITOR)
    def audit(self, video: str | None, request: gr.Request, *, user: User) -> Any:
        """The report as cards, the two report files to download, and the full details."""
        from studio.audit import audit_video
        from studio.audit_report import report_cards

        ctx = self.ctx
        claims: list[str] = []
        try:
            if not video:
                raise gr.Error("Upload a video to inspect.")
            ctx.janitor.claim(video, claims)
            report = audit_video(Path(video), config=ctx.config, ledger=ctx.ledger,
                                 watermark_key=ctx.pipeline.watermark_key,
                                 trust_anchor_pem=ctx.pipeline.trust_anchor_pem)
        finally:
            ctx.janitor.release(video, claims)
        # Files for the auditor to keep: in the owner-only exports folder, swept with the uploads.
        render_id = (report.ledger or {}).get("render_id") or report.manifest.render_id or "unknown"
        folder = Path(tempfile.mkdtemp(prefix="audit-report-", dir=ctx.exports))
        stem = "audit-" + _SAFE_NAME.sub("_", str(render_id))[:64]
        json_file, html_file = folder / f"{stem}.json", folder / f"{stem}.html"
        json_file.write_text(report.to_json(), encoding="utf-8")
        html_file.write_text(report.to_html(), encoding="utf-8")
        return report_cards(report), str(json_file), str(html_file), report.to_dict()

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
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                audit_video_in = gr.File(label="Any video (drop it here)", type="filepath", elem_id="audit-file")
                audit_btn = gr.Button("Inspect", variant="primary", elem_id="audit-btn")
                report_json = gr.File(label="Audit report (JSON)", interactive=False, elem_id="audit-report-json")
                report_html = gr.File(label="Audit report (HTML, one page to print or file)", interactive=False,
                                      elem_id="audit-report-html")
            with gr.Column(scale=3):
                audit_view = gr.HTML(elem_id="audit-report")
        with gr.Accordion("All details (JSON)", open=False):
            audit_json = gr.JSON(label="Details")
        with gr.Row():
            verify_btn = gr.Button("Verify the whole ledger", elem_id="verify-ledger-btn")
            export_btn = gr.Button("Export the ledger (JSON lines)")
        verify_out = gr.Markdown(elem_id="verify-ledger-out")
        export_file = gr.File(label="Ledger export", interactive=False)

    ctx.on_first_screen([Role.AUDITOR], handlers.ledger_state, [ledger_state])
    ctx.wire(audit_btn.click, handlers.audit, audit_video_in, [audit_view, report_json, report_html, audit_json],
             api_name="audit")
    ctx.wire(verify_btn.click, handlers.verify_ledger, None, verify_out, api_name="verify_ledger")
    ctx.wire(export_btn.click, handlers.export_ledger, None, export_file, api_name="export_ledger")
    return tab
