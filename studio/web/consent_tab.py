"""The consent officer's tab: enrol issuers, import credentials, list and revoke them, and show
the command a subject runs to issue one. ``build_consent_tab(ctx)`` is called inside the Blocks."""

import json
import shutil
from pathlib import Path
from typing import Any

import gradio as gr

from studio.users import Role, User
from studio.web.context import WebContext
from studio.web.guard import guarded


class ConsentHandlers:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def table(self) -> list[list[str]]:
        ledger = self.ctx.ledger
        status = ledger.revocation_status()
        return [
            [c.credential_id, c.subject_name, c.project, "revoked" if status.is_revoked(c.credential_id) else "active"]
            for c in ledger.list_credentials()
        ]

    @guarded(Role.CONSENT_OFFICER)
    def enroll(self, did: str, name: str, request: gr.Request, *, user: User) -> str:
        self.ctx.ledger.enroll_issuer(did.strip(), name=name.strip(), actor=user.username)
        return f"Enrolled issuer **{name}** (`{did.strip()}`)."

    @guarded(Role.CONSENT_OFFICER)
    def import_credential(
        self, cred_file: str | None, ref_photo: str | None, request: gr.Request, *, user: User
    ) -> Any:
        from consent.proof import MAX_DOCUMENT_BYTES
        from studio import media

        ctx = self.ctx
        if not cred_file:
            raise gr.Error("Choose a credential file (JSON).")
        with open(cred_file, "rb") as fp:
            submitted = fp.read(MAX_DOCUMENT_BYTES + 1)  # the ledger refuses (and logs) anything larger
        embedding = None
        if ref_photo:  # the credential's face template must describe the pictured face
            face = ctx.pipeline.face_analyzer().analyze(media.read_image(Path(ref_photo)))
            embedding = None if face.embedding is None else [float(v) for v in face.embedding]
            if embedding is None:
                raise gr.Error("No face embedding could be computed for the reference photo.")
        credential = ctx.ledger.import_credential(submitted, actor=user.username, reference_embedding=embedding)
        note = ""
        if ref_photo:
            digest = "sha256:" + media.sha256_file(ref_photo)
            if digest not in credential.reference_images:
                note = " The reference photo does NOT match the credential's referenceImages and was not stored."
            else:
                store = ctx.config.home / "references"
                store.mkdir(parents=True, exist_ok=True)
                name = f"{digest.removeprefix('sha256:')}{Path(ref_photo).suffix or '.png'}"
                shutil.copyfile(ref_photo, store / name)
                note = " Reference photo stored."
        text = f"Imported credential for **{credential.subject_name}** (`{credential.credential_id}`).{note}"
        return text, self.table()

    @guarded(Role.CONSENT_OFFICER)
    def list_credentials(self, request: gr.Request, *, user: User) -> list[list[str]]:
        return self.table()

    @guarded(Role.CONSENT_OFFICER)
    def revoke(self, credential_id: str, reason: str, request: gr.Request, *, user: User) -> Any:
        self.ctx.ledger.revoke(credential_id.strip(), reason=reason.strip() or "revoked by consent officer",
                               actor=user.username)
        return f"Revoked `{credential_id.strip()}`.", self.table()

    @guarded(Role.CONSENT_OFFICER)
    def issue_command(
        self, subject: str, grantee: str, proj: str, purposes: str, max_duration: float, request: gr.Request, *,
        user: User,
    ) -> str:
        parts = ["avatar-studio consent issue --key SUBJECT-KEY.pem", f"--subject-name {json.dumps(subject)}",
                 f"--grantee {json.dumps(grantee)}", f"--project {json.dumps(proj)}"]
        parts += [f"--purpose {json.dumps(p.strip())}" for p in purposes.split(",") if p.strip()]
        parts += [f"--max-duration {max_duration:g}", "--photo REFERENCE.jpg", "--out credential.json"]
        return (
            "The subject (or estate) signs on their own machine with their own key; the studio never sees it:\n\n"
            "```bash\navatar-studio keys new SUBJECT-KEY.pem   # once; prints the did:key to enrol\n"
            + " \\\n    ".join(parts) + "\n```\nThen enrol the printed did:key above and import `credential.json`."
        )


def build_consent_tab(ctx: WebContext) -> gr.Tab:
    handlers = ConsentHandlers(ctx)
    with gr.Tab("Consent", id="consent", visible=False) as tab:
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Enrol an issuer\nAfter checking the subject's or estate's identity.")
                enroll_did = gr.Textbox(label="Issuer did:key", elem_id="enroll-did")
                enroll_name = gr.Textbox(label="Name", elem_id="enroll-name")
                enroll_btn = gr.Button("Enrol", elem_id="enroll-btn")
                enroll_out = gr.Markdown()
            with gr.Column():
                gr.Markdown("### Import a credential")
                cred_file = gr.File(label="Credential (JSON)", file_types=[".json"], type="filepath",
                                    elem_id="cred-file")
                ref_file = gr.File(label="Reference photo (optional)", type="filepath", elem_id="ref-file")
                import_btn = gr.Button("Import", elem_id="import-btn")
                import_out = gr.Markdown(elem_id="import-out")
        creds = gr.Dataframe(headers=["id", "subject", "project", "status"], label="Credentials", interactive=False,
                             elem_id="credentials-table")
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

    ctx.on_first_screen([Role.CONSENT_OFFICER], lambda user: handlers.table(), [creds])
    ctx.wire(enroll_btn.click, handlers.enroll, [enroll_did, enroll_name], enroll_out, api_name="enroll")
    ctx.wire(import_btn.click, handlers.import_credential, [cred_file, ref_file], [import_out, creds],
             api_name="import_credential")
    ctx.wire(list_btn.click, handlers.list_credentials, None, creds, api_name="list_credentials")
    ctx.wire(revoke_btn.click, handlers.revoke, [revoke_id, revoke_reason], [revoke_out, creds], api_name="revoke")
    ctx.wire(i_btn.click, handlers.issue_command, [i_subject, i_grantee, i_project, i_purposes, i_duration], i_out,
             api_name="issue_command")
    return tab
