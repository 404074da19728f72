"""The consent officer's tab, their whole job: enrol an issuer after checking who it is, import a
credential after reading its terms, see what expires soon, revoke with a reason, and see every
render made under a credential. ``build_consent_tab(ctx)`` is called inside the Blocks."""

import html
import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from studio.users import Role, User
from studio.web.context import WebContext
from studio.web.guard import guarded

_CHECKED_LABEL = "I checked this issuer's identity"
_EXPIRING_HEADERS = ["expires", "days left", "subject", "project", "renders so far", "id"]
_RENDER_HEADERS = ["render id", "operator", "time", "status", "purpose", "project"]


def _when(moment: Any) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


class ConsentHandlers:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    # --- what the tab shows (unguarded helpers: only guarded handlers and the first screen call them)

    def table(self) -> list[list[str]]:
        ledger = self.ctx.ledger
        status = ledger.revocation_status()
        return [
            [c.credential_id, c.subject_name, c.project, "revoked" if status.is_revoked(c.credential_id) else "active"]
            for c in ledger.list_credentials()
        ]

    def choices(self, *, active_only: bool = False, **update: Any) -> Any:
        """The credentials as dropdown choices, "subject: project" with the id as the value."""
        items = [(f"{c.subject_name}: {c.project} ({c.credential_id[-8:]})", c.credential_id)
                 for c in self.ctx.ledger.list_credentials() if not (active_only and c.revoked)]
        return gr.update(choices=items, **update)

    def expiring(self, days: float | None) -> list[list[Any]]:
        from studio.officer import expiring_credentials

        within = 30 if days is None else max(0, min(int(days), 3650))
        return [[_when(e.valid_until), e.days_left, e.subject_name, e.project, e.renders, e.credential_id]
                for e in expiring_credentials(self.ctx.ledger, within_days=within)]

    def first_screen(self, user: User) -> Any:
        return self.table(), self.expiring(30), self.choices(), self.choices(active_only=True)

    # --- enrol an issuer: a confirmation of exactly what will be trusted, and a tick that it was checked

    @guarded(Role.CONSENT_OFFICER)
    def confirm_issuer(self, did: str, name: str, request: gr.Request, *, user: User) -> Any:
        """What enrolling would trust, shown before the officer ticks the box; the tick is cleared
        whenever the DID or the name change, so it always applies to what is shown."""
        from consent.errors import ConsentError
        from consent.keys import public_key_from_did

        did, name = did.strip(), name.strip()
        if not did:
            return "_Paste the issuer's did:key and their name to review them here._", gr.update(value=False)
        try:
            public_key_from_did(did)
        except ConsentError as exc:
            return f"**Not a usable key:** {html.escape(exc.user_message())}", gr.update(value=False)
        known = {i.did: i for i in self.ctx.ledger.list_issuers() if i.withdrawn_at is None}
        if did in known:
            return f"Already enrolled as **{html.escape(known[did].name)}**.", gr.update(value=False)
        text = (
            f"You are about to trust **{html.escape(name) or '(no name given)'}**, key `{did}`, to sign consent "
            "for a person's likeness. Enrol only after checking, outside this page, that this key belongs to "
            "that person or the estate that represents them (e.g. in person with ID, or a signed letter)."
        )
        return text, gr.update(value=False)

    @guarded(Role.CONSENT_OFFICER)
    def enroll(self, did: str, name: str, checked: bool, request: gr.Request, *, user: User) -> Any:
        if not checked:
            raise gr.Error(f"Check the issuer's identity first, then tick \u201c{_CHECKED_LABEL}\u201d.")
        if not name.strip():
            raise gr.Error("Give the issuer's name, as on the identity you checked.")
        self.ctx.ledger.enroll_issuer(did.strip(), name=name.strip(), actor=user.username)
        return f"Enrolled issuer **{html.escape(name.strip())}** (`{did.strip()}`).", gr.update(value=False)

    # --- import: the terms first, then Accept

    @guarded(Role.CONSENT_OFFICER)
    def preview(self, cred_file: str | None, request: gr.Request, *, user: User) -> Any:
        """The credential's terms in words and whether it would be accepted; nothing is stored."""
        from consent.errors import ConsentError
        from consent.proof import MAX_DOCUMENT_BYTES
        from studio.officer import preview_credential

        if not cred_file:
            return _CSS, gr.update(interactive=False)
        with open(cred_file, "rb") as fp:
            submitted = fp.read(MAX_DOCUMENT_BYTES + 1)
        try:
            terms = preview_credential(submitted, ledger=self.ctx.ledger)
        except ConsentError as exc:  # nothing to read: say why, and keep Accept off
            reason = html.escape(exc.user_message())
            return f'{_CSS}<p class="terms-bad"><strong>Not a consent credential:</strong> {reason}</p>', \
                gr.update(interactive=False)
        rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                       for label, value in terms.lines())
        if terms.acceptable:
            verdict = '<p class="terms-ok"><strong>All checks pass.</strong> Read the terms, then Accept to import.</p>'
        else:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in terms.problems)
            verdict = f'<p class="terms-bad"><strong>The studio would refuse it:</strong></p><ul>{items}</ul>'
        body = f'{_CSS}<h4>Terms of this credential</h4>{verdict}<table class="terms">{rows}</table>'
        return body, gr.update(interactive=terms.acceptable)

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

    # --- lists, revocation, renders under a credential

    @guarded(Role.CONSENT_OFFICER)
    def list_credentials(self, request: gr.Request, *, user: User) -> list[list[str]]:
        return self.table()

    @guarded(Role.CONSENT_OFFICER)
    def list_expiring(self, days: float | None, request: gr.Request, *, user: User) -> list[list[Any]]:
        return self.expiring(days)

    @guarded(Role.CONSENT_OFFICER)
    def revoke(self, credential_id: str, reason: str, request: gr.Request, *, user: User) -> Any:
        if not credential_id or not credential_id.strip():
            raise gr.Error("Choose the credential to revoke.")
        if not reason.strip():
            raise gr.Error("Give the reason for revoking (it is kept in the ledger).")
        self.ctx.ledger.revoke(credential_id.strip(), reason=reason.strip(), actor=user.username)
        return f"Revoked `{credential_id.strip()}`: {html.escape(reason.strip())}", self.table()

    @guarded(Role.CONSENT_OFFICER)
    def lists(self, days: float | None, request: gr.Request, *, user: User) -> Any:
        """After an import or a revocation: the expiring list and the credential choices, up to date."""
        return self.expiring(days), self.choices(), self.choices(active_only=True, value=None)

    @guarded(Role.CONSENT_OFFICER)
    def renders(self, credential_id: str | None, request: gr.Request, *, user: User) -> list[list[Any]]:
        from studio.officer import renders_under

        if not credential_id:
            return []
        return [[r.render_id, r.operator, _when(r.created_at), r.status, r.purpose or "", r.project or ""]
                for r in renders_under(self.ctx.ledger, credential_id.strip())]

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


_CSS = ("<style>#cred-preview table.terms{border-collapse:collapse;width:100%}"
        "#cred-preview th{text-align:left;width:32%;font-weight:500;color:#555;padding:1px 6px}"
        "#cred-preview td{padding:1px 6px;overflow-wrap:anywhere}"
        "#cred-preview .terms-bad{color:#b00020}#cred-preview .terms-ok{color:#17803d}</style>")


def build_consent_tab(ctx: WebContext) -> gr.Tab:
    handlers = ConsentHandlers(ctx)
    with gr.Tab("Consent", id="consent", visible=False) as tab:
        with gr.Row():
            with gr.Column():
                gr.Markdown("### 1. Enrol an issuer\nThe person (or estate) whose key signs their consent.")
                enroll_did = gr.Textbox(label="Issuer did:key", elem_id="enroll-did")
                enroll_name = gr.Textbox(label="Name (as on the identity you checked)", elem_id="enroll-name")
                enroll_confirm = gr.Markdown("_Paste the issuer's did:key and their name to review them here._",
                                             elem_id="enroll-confirm")
                enroll_checked = gr.Checkbox(label=_CHECKED_LABEL, value=False, elem_id="enroll-checked")
                enroll_btn = gr.Button("Enrol", elem_id="enroll-btn")
                enroll_out = gr.Markdown(elem_id="enroll-out")
            with gr.Column():
                gr.Markdown("### 2. Import a credential\nDrop the file: its terms show here before anything is stored.")
                cred_file = gr.File(label="Credential (JSON)", file_types=[".json"], type="filepath",
                                    elem_id="cred-file")
                cred_preview = gr.HTML(_CSS, elem_id="cred-preview")
                ref_file = gr.File(label="Reference photo (optional)", type="filepath", elem_id="ref-file")
                import_btn = gr.Button("Accept and import", variant="primary", interactive=False, elem_id="import-btn")
                import_out = gr.Markdown(elem_id="import-out")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Expiring soon")
                expiring_days = gr.Number(label="Within (days)", value=30, precision=0, minimum=0,
                                          elem_id="expiring-days")
                expiring = gr.Dataframe(headers=_EXPIRING_HEADERS, label="Active credentials that expire soon",
                                        interactive=False, elem_id="expiring")
            with gr.Column():
                gr.Markdown("### Renders under a credential")
                renders_cred = gr.Dropdown(label="Credential", choices=[], elem_id="renders-cred")
                renders = gr.Dataframe(headers=_RENDER_HEADERS, label="Every render attempt, newest first",
                                       interactive=False, elem_id="renders-under")
        creds = gr.Dataframe(headers=["id", "subject", "project", "status"], label="Credentials", interactive=False,
                             elem_id="credentials-table")
        list_btn = gr.Button("Refresh list", size="sm")
        with gr.Row():
            revoke_id = gr.Dropdown(label="Credential to revoke", choices=[], allow_custom_value=True,
                                    elem_id="revoke-id")
            revoke_reason = gr.Textbox(label="Reason (kept in the ledger)", elem_id="revoke-reason")
            revoke_btn = gr.Button("Revoke", variant="stop", elem_id="revoke-btn")
        revoke_out = gr.Markdown(elem_id="revoke-out")
        with gr.Accordion("Issue a credential (the subject signs with the CLI)", open=False):
            i_subject = gr.Textbox(label="Subject name")
            i_grantee = gr.Textbox(label="Grantee (studio or institution)")
            i_project = gr.Textbox(label="Project")
            i_purposes = gr.Textbox(label="Purposes (comma-separated)", value="film")
            i_duration = gr.Number(label="Maximum output duration (s)", value=120)
            i_btn = gr.Button("Show the command")
            i_out = gr.Markdown()

    ctx.on_first_screen([Role.CONSENT_OFFICER], handlers.first_screen, [creds, expiring, renders_cred, revoke_id])
    # One listener for both boxes, so a slow answer for an older DID/name never lands last.
    ctx.wire(partial(gr.on, [enroll_did.change, enroll_name.change], trigger_mode="always_last"),
             handlers.confirm_issuer, [enroll_did, enroll_name], [enroll_confirm, enroll_checked],
             api_name=False, clears_status=False)
    enrolled = ctx.wire(enroll_btn.click, handlers.enroll, [enroll_did, enroll_name, enroll_checked],
                        [enroll_out, enroll_checked], api_name="enroll")
    # A credential dropped before its issuer was enrolled is checked again: Accept may now be on.
    enrolled.success(handlers.preview, cred_file, [cred_preview, import_btn], api_name=False)
    ctx.wire(cred_file.change, handlers.preview, cred_file, [cred_preview, import_btn], api_name="preview_credential",
             clears_status=False)
    imported = ctx.wire(import_btn.click, handlers.import_credential, [cred_file, ref_file], [import_out, creds],
                        api_name="import_credential")
    imported.success(handlers.lists, expiring_days, [expiring, renders_cred, revoke_id], api_name=False)
    ctx.wire(list_btn.click, handlers.list_credentials, None, creds, api_name="list_credentials")
    ctx.wire(expiring_days.change, handlers.list_expiring, expiring_days, expiring, api_name="expiring_credentials",
             clears_status=False)
    ctx.wire(renders_cred.change, handlers.renders, renders_cred, renders, api_name="renders_under_credential",
             clears_status=False)
    revoked = ctx.wire(revoke_btn.click, handlers.revoke, [revoke_id, revoke_reason], [revoke_out, creds],
                       api_name="revoke")
    revoked.success(handlers.lists, expiring_days, [expiring, renders_cred, revoke_id], api_name=False)
    ctx.wire(i_btn.click, handlers.issue_command, [i_subject, i_grantee, i_project, i_purposes, i_duration], i_out,
             api_name="issue_command")
    return tab
