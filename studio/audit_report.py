"""The audit report in words: the facts an auditor asks for, grouped, and the one-page HTML to file.

``report_sections(report)`` is the single list of facts (the web page's ``report_cards`` and
the HTML both show it); ``render_html(report)`` lays it out as one self-contained, printable page: inline CSS, no
scripts, no external resources, every value escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.audit import AuditReport

# (key, label, value) rows under a section title; the key names the fact for tests and scripts.
Fact = tuple[str, str, str]
Section = tuple[str, list[Fact]]


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _render_facts(report: AuditReport) -> list[Fact]:
    entry = report.ledger or {}
    render_id = entry.get("render_id") or report.manifest.render_id or "unknown"
    if entry.get("found"):
        exact = "yes, the exact delivered bytes" if entry["exact_delivered_file"] else "no, a modified copy"
        return [
            ("render_id", "Render", str(render_id)),
            ("render_status", "Status in the ledger", str(entry["status"])),
            ("operator", "Operator", str(entry["operator"])),
            ("rendered_at", "Rendered at", str(entry["rendered_at"])),
            ("exact_file", "This file is the delivered one", exact),
        ]
    missing = "no ledger in this data folder" if entry.get("available") is False else "no record in the ledger"
    return [("render_id", "Render", f"{render_id} ({missing})"), ("operator", "Operator", "unknown"),
            ("rendered_at", "Rendered at", "unknown")]


def _credential_facts(report: AuditReport) -> list[Fact]:
    from studio.audit import grantor_words

    credential = report.credential
    entry = report.ledger or {}
    if credential is None:
        consent = entry.get("credential_id") or report.manifest.consent_id or "unknown"
        return [("credential_id", "Credential", str(consent)), ("subject", "Subject", "unknown"),
                ("grantor", "Granted by", "unknown"), ("project", "Project", "unknown"),
                ("purposes", "Purposes", "unknown")]
    revoked = entry.get("credential_revoked_now")
    facts = [
        ("credential_id", "Credential", str(credential["credential_id"])),
        ("subject", "Subject", str(credential["subject_name"])),
        ("grantor", "Granted by", grantor_words(credential)),
        ("project", "Project", str(credential["project"])),
        ("purposes", "Purposes", ", ".join(credential["purposes"]) or "none"),
        ("purpose_used", "Purpose of this render", str(entry.get("purpose") or "unknown")),
        ("revoked_now", "Revoked now", _yes_no(revoked)),
    ]
    if credential.get("problem"):
        facts.append(("credential_problem", "Problem", str(credential["problem"])))
    return facts


def _label_fact(report: AuditReport) -> list[Fact]:
    entry = report.ledger or {}
    required, present = entry.get("label_required"), entry.get("label_present")
    if report.receipt is not None and report.receipt.found:
        required, present = report.receipt.label_required, report.receipt.label_present
    shown = "NO (required but absent)" if required and present is False else _yes_no(present)
    return [("label_required", "AI label required", _yes_no(required)), ("label_present", "AI label present", shown)]


def _watermark_facts(report: AuditReport) -> list[Fact]:
    mark = report.watermark
    confidence = "n/a" if mark.confidence is None else f"{mark.confidence:.3f}"
    payload = "none" if mark.payload is None else f"{mark.payload:012x}"
    return [
        ("watermark", "Watermark", mark.status),
        ("watermark_confidence", "Confidence", f"{confidence} (over {mark.frames} frames)"),
        ("watermark_payload", "Payload", payload),
    ]


def _manifest_facts(report: AuditReport) -> list[Fact]:
    from studio.audit import TRUSTED_MEANS

    manifest = report.manifest
    facts = [
        ("manifest", "C2PA manifest", manifest.status),
        ("trusted_means", 'What "trusted" means', TRUSTED_MEANS),
    ]
    if manifest.status != "missing":
        stamp = "RFC 3161 timestamp" if manifest.timestamped else "no trusted timestamp"
        facts += [
            ("signer", "Signed by", str(manifest.signer or "unknown")),
            ("signed_at", "Signed at", f"{manifest.signed_at or 'unknown'} ({stamp})"),
            ("manifest_matches", "Names the watermark found", _yes_no(report.consistent)),
        ]
    facts += [("manifest_failure", "Failure", failure) for failure in manifest.failures]
    return facts


def _ledger_facts(report: AuditReport) -> list[Fact]:
    from studio.audit import position_words

    entry = report.ledger or {}
    position = entry.get("position")
    facts: list[Fact] = [
        ("ledger_position", "Position in the log",
         position_words(position).removeprefix("log position: ") if position else "no record"),
    ]
    checked = report.log_verified
    facts.append(("log_verifies", "The whole log verifies",
                  "not checked" if checked is None else f"{'yes' if checked['ok'] else 'NO'}: {checked['summary']}"))
    for check in report.log or ():
        state = "today's ledger extends it" if check["extends"] else check["problem"]
        facts.append(("checkpoint", "Checkpoint carried", f"{check['source']}, size {check['size']}: {state}"))
    return facts


def report_sections(report: AuditReport) -> list[Section]:
    """Every fact of the report, grouped the way an auditor reads them, verdict first."""
    verdict: list[Fact] = [
        ("made_here", "Made by this studio", report.made_here),
        ("verdict", "Verdict", report.verdict),
        ("exit_code", "Exit code", str(report.exit_code)),
        ("file", "File", report.file_name),
    ]
    sections: list[Section] = [
        ("Verdict", verdict),
        ("Render", _render_facts(report)),
        ("Credential", _credential_facts(report)),
        ("Label", _label_fact(report)),
        ("Watermark", _watermark_facts(report)),
        ("Manifest", _manifest_facts(report)),
        ("Ledger", _ledger_facts(report)),
    ]
    others: list[Fact] = [("disagreement", "Disagreement", d) for d in report.disagreements]
    others += [("note", "Note", note) for note in report.notes]
    if others:
        sections.append(("Notes", others))
    return sections


_CSS = """
@page { size: A4; margin: 12mm; }
body { font: 9pt/1.3 system-ui, sans-serif; color: #111; max-width: 186mm; margin: 0 auto; }
.facts { columns: 2; column-gap: 6mm; }
h1 { font-size: 15pt; margin: 0 0 4pt; }
.banner { padding: 6pt 9pt; border: 2px solid; border-radius: 4pt; margin: 6pt 0 8pt; font-weight: 600; }
.ok { border-color: #17803d; background: #e9f7ee; }
.warn { border-color: #b45309; background: #fdf3e6; }
table { border-collapse: collapse; width: 100%; margin-bottom: 6pt; break-inside: avoid; }
th { text-align: left; font-size: 9.5pt; background: #eee; padding: 2pt 5pt; }
td { padding: 1.5pt 5pt; vertical-align: top; border-bottom: 1px solid #ddd; overflow-wrap: anywhere; }
td.label { width: 38%; color: #444; }
footer { font-size: 8.5pt; color: #555; margin-top: 8pt; }
"""


def render_html(report: AuditReport) -> str:
    """One page an auditor can print or file: the verdict banner, then every fact in a table."""
    esc = html.escape
    tone = "ok" if report.exit_code == 0 else "warn"
    rows: list[str] = []
    for title, facts in report_sections(report):
        rows.append(f'<table><tr><th colspan="2">{esc(title)}</th></tr>')
        for key, label, value in facts:
            rows.append(f'<tr data-field="{esc(key)}"><td class="label">{esc(label)}</td><td>{esc(value)}</td></tr>')
        rows.append("</table>")
    audited = esc(report.audited_at or "unknown")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Audit report: {esc(report.file_name)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>Audit report: {esc(report.file_name)}</h1>\n"
        f'<div class="banner {tone}">{esc(report.verdict)} (exit code {report.exit_code})</div>\n'
        + '<main class="facts">\n' + "\n".join(rows) + "\n</main>"
        + f"\n<footer>Audited at {audited} by Avatar Studio's audit. The JSON report holds the same facts "
        "in machine-readable form.</footer>\n</body></html>\n"
    )


_CARDS_CSS = (
    ".audit-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:8px}"
    ".audit-cards section{border:1px solid #ccc;border-radius:6px;padding:4px 8px}"
    ".audit-cards h4{margin:2px 0 4px}.audit-cards dl{display:grid;grid-template-columns:38% 62%;margin:0}"
    ".audit-cards dt{color:#555}.audit-cards dd{margin:0;overflow-wrap:anywhere}"
    ".audit-verdict{padding:6px 10px;border-radius:6px;margin-bottom:8px;font-weight:600;border:2px solid}"
    ".audit-verdict.ok{border-color:#17803d;background:#e9f7ee;color:#111}"
    ".audit-verdict.warn{border-color:#b45309;background:#fdf3e6;color:#111}"
)


def report_cards(report: AuditReport) -> str:
    """The facts as compact cards for the web page (one screen): an HTML fragment, every value escaped."""
    esc = html.escape
    tone = "ok" if report.exit_code == 0 else "warn"
    parts = [f"<style>{_CARDS_CSS}</style>",
             f'<div class="audit-verdict {tone}">{esc(report.verdict)} (exit code {report.exit_code})</div>',
             '<div class="audit-cards">']
    for title, facts in report_sections(report):
        rows = "".join(f'<dt>{esc(label)}</dt><dd data-field="{esc(key)}">{esc(value)}</dd>'
                       for key, label, value in facts)
        parts.append(f"<section><h4>{esc(title)}</h4><dl>{rows}</dl></section>")
    parts.append("</div>")
    return "".join(parts)
