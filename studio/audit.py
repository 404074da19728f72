"""Auditing: tell, for any video file, whether and how it came from this studio.

``inspect_video(path, config) -> AuditReport`` reads the file; ``audit_video`` adds the ledger
record (and, given a receipt file, checks it against the ledger: ``verify_receipt``). The CLI
(``avatar-studio audit inspect``) and the web app only print the report. Two independent
witnesses are read from the file:

* the invisible **watermark** in the pixels (survives re-encoding, cropping, stripping of
  metadata), decoded with this studio's secret key;
* the **C2PA manifest** in the file (says what the file is and who signed it, but any
  re-mux drops it), validated against this studio's own certificate authority.

Exit codes (for scripts; also in ``--help`` and docs/provenance.md):

  0  ours, intact: watermark found, manifest trusted and naming the same payload
  2  bad input: not a video, empty, truncated or unreadable
  3  watermark found but the manifest is missing (stripped, e.g. re-encoded or re-muxed)
  4  watermark found but the manifest is invalid (tampered), signed by someone else,
     or does not match the watermark
  5  no watermark found (not ours, or this studio has no watermark key)
  6  watermark found but this studio's ledger has no record of the render (rows deleted, or
     no ledger in the data folder to ask); also a receipt naming a render the ledger lacks
  7  the records disagree: a receipt whose bytes are not the ones the ledger hashed at
     render.finished, an output hash that differs, or a visible AI label that the credential
     required (ledger, render.started) but the receipt says is absent, or a render the ledger
     records as never delivered (lost)

With a ledger record found, the report also says "label: required yes/no, present yes/no", the
credential's terms (subject, grantor, project, purposes), the render's position in the log and
whether the whole log verifies. ``AuditReport.to_json()`` and ``to_html()`` are the report an
auditor downloads and files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from studio.config import StudioConfig

EXIT_OURS = 0
EXIT_BAD_INPUT = 2
EXIT_MANIFEST_MISSING = 3
EXIT_MANIFEST_BAD = 4
EXIT_NO_WATERMARK = 5
EXIT_NO_RECORD = 6
EXIT_RECORDS_DISAGREE = 7

WatermarkStatus = Literal["found", "not found", "no key"]
_CHUNK = 16  # frames per detection batch: bounded memory for long videos
_CA_FILE = Path("c2pa") / "ca.pem"
# What "trusted" means for a manifest, in the words the report and the page use.
TRUSTED_MEANS = ("the manifest is intact and its signing certificate chains to this studio's own root "
                 "certificate authority (c2pa/ca.pem in the data folder), not to a public trust list")


@dataclass(frozen=True, kw_only=True)
class WatermarkFinding:
    """What the pixels say: ``found`` (payload decoded), ``not found``, or ``no key`` (cannot look)."""

    status: WatermarkStatus
    payload: int | None = None
    confidence: float | None = None
    frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "payload": None if self.payload is None else f"{self.payload:012x}",
            "confidence": self.confidence,
            "frames": self.frames,
        }


@dataclass(frozen=True, kw_only=True)
class AuditReport:
    """Everything known about one video, and the verdict a script acts on (``exit_code``).

    ``ledger`` is the studio's own record of the render (filled by ``audit_video``; None when
    not looked up; ``{"found": False, "available": False}`` when the data folder has no ledger).
    ``receipt`` is the check of a receipt file given with the video (``verify_receipt``).
    """

    file_name: str
    watermark: WatermarkFinding
    manifest: Any  # watermark.provenance.ManifestReport (imported lazily)
    ledger: dict[str, Any] | None = None
    receipt: ReceiptCheck | None = None
    log: list[dict[str, Any]] | None = None  # the ledger checkpoints this file/receipt carry, checked
    notes: list[str] = field(default_factory=list)
    # The credential the render was made under, from the ledger (subject, grantor, project, purposes...).
    credential: dict[str, Any] | None = None
    # The whole log's verification at audit time: {"ok", "summary", "events", "head_seq"}.
    log_verified: dict[str, Any] | None = None
    audited_at: str | None = None  # ISO 8601 UTC time of the audit

    @property
    def rollback(self) -> list[str]:
        """Checkpoints carried by the file or the receipt that today's ledger does not extend."""
        carried = [check["problem"] for check in self.log or () if not check["extends"]]
        return carried + (self.receipt.rollback if self.receipt is not None else [])

    @property
    def disagreements(self) -> list[str]:
        """Where the ledger, the receipt and the file contradict each other (exit 7)."""
        found: list[str] = [check["problem"] for check in self.log or () if not check["extends"]]
        if self.ledger is not None and self.ledger.get("found"):
            if self.ledger.get("status") != "finished":
                found.append(f"the ledger records this render as {self.ledger.get('status')}: it was never delivered")
            if self.ledger.get("label_required") and self.ledger.get("label_present") is False:
                found.append("the credential required a visible AI label and the ledger's receipt says it is absent")
        if self.receipt is not None:
            found.extend(self.receipt.problems)
        return found

    @property
    def consistent(self) -> bool:
        """The manifest's watermark assertion names the payload found in the pixels."""
        return self.watermark.payload is not None and self.manifest.watermark_payload == self.watermark.payload

    @property
    def exit_code(self) -> int:
        if self.watermark.status != "found":
            return EXIT_NO_WATERMARK
        if self.rollback:  # a cut-back ledger also loses the record: say why it is missing
            return EXIT_RECORDS_DISAGREE
        if (self.ledger is not None and not self.ledger.get("found")) or (
            self.receipt is not None and not self.receipt.found
        ):
            return EXIT_NO_RECORD
        if self.disagreements:
            return EXIT_RECORDS_DISAGREE
        if self.manifest.status == "missing":
            return EXIT_MANIFEST_MISSING
        if self.manifest.status == "trusted" and self.consistent:
            return EXIT_OURS
        return EXIT_MANIFEST_BAD

    @property
    def made_here(self) -> str:
        """``yes`` (this studio's mark, or its trusted manifest, is in the file), ``no``, or ``unknown`` (no key)."""
        if self.watermark.status == "found" or self.manifest.status == "trusted":
            return "yes"
        return "unknown" if self.watermark.status == "no key" else "no"

    @property
    def verdict(self) -> str:
        code = self.exit_code
        if code == EXIT_OURS:
            return "made by this studio; watermark and manifest (trusted by this studio's root CA) agree"
        if code == EXIT_MANIFEST_MISSING:
            return "made by this studio, but its provenance manifest was stripped"
        if code == EXIT_MANIFEST_BAD:
            if self.manifest.status in ("trusted", "valid") and not self.consistent:
                return "watermark from this studio, but the manifest names a different render"
            if self.manifest.status == "invalid":
                return "watermark from this studio, but the file was altered after signing"
            return "watermark from this studio, but the manifest was signed by someone else"
        if code == EXIT_NO_RECORD:
            return "watermark from this studio, but its ledger has no record of this render"
        if code == EXIT_RECORDS_DISAGREE:
            return "made by this studio, but its records disagree: " + "; ".join(self.disagreements)
        if self.watermark.status == "no key":
            return "unknown: this studio has no watermark key to look for its mark"
        return "no watermark of this studio found"

    def to_markdown(self) -> str:
        """The report for a web page: the verdict first, then the facts."""
        facts = "\n".join(format_report(self)[:-1])
        return f"**{self.verdict}** (exit code {self.exit_code})\n\n```text\n{facts}\n```\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "watermark": self.watermark.to_dict(),
            "manifest": self.manifest.to_dict(),
            "consistent": self.consistent,
            "ledger": self.ledger,
            "receipt": None if self.receipt is None else self.receipt.to_dict(),
            "log": self.log,
            "disagreements": self.disagreements,
            "notes": list(self.notes),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "made_here": self.made_here,
            "credential": self.credential,
            "log_verified": self.log_verified,
            "trusted_means": TRUSTED_MEANS,
            "audited_at": self.audited_at,
        }

    def to_json(self) -> str:
        """The report as canonical JSON: sorted keys, two-space indent, UTF-8 text, one trailing newline."""
        import json

        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def to_html(self) -> str:
        """The report as one printable, self-contained HTML page (no scripts, no external resources)."""
        from studio.audit_report import render_html

        return render_html(self)


def inspect_video(
    path: Path,
    config: StudioConfig,
    *,
    watermark_key: bytes | None = None,
    trust_anchor_pem: str | None = None,
    max_frames: int | None = None,
) -> AuditReport:
    """Read the watermark and the C2PA manifest of ``path`` (raises UnreadableMedia for bad input).

    The key and trust anchor default to the studio's own files under ``config.home``; a caller
    that already holds them (the web app's pipeline) passes them in. Nothing is created.
    ``max_frames`` bounds the work on long videos (the mark is in every frame; more frames
    only add confidence).
    """
    from watermark.errors import NotAnMp4, UnreadableMedia
    from watermark.provenance import ManifestReport, read_manifest

    if not path.is_file():
        raise UnreadableMedia("the video file does not exist or is not a file")
    notes: list[str] = []
    anchor = trust_anchor_pem if trust_anchor_pem is not None else _studio_trust_anchor(config)
    try:
        manifest = read_manifest(path, trust_anchor_pem=anchor)
    except NotAnMp4:
        # Another container (WebM, MKV, ...) cannot carry our manifest, but may still carry the mark.
        manifest = ManifestReport(status="missing")
        notes.append("not an MP4 container, so it cannot carry a C2PA manifest")
    if anchor is None:
        notes.append("this studio has no C2PA certificate yet, so no manifest can be trusted")
    key = watermark_key if watermark_key is not None else _watermark_key(config)
    watermark = _read_watermark(path, key, max_frames=max_frames)
    return AuditReport(file_name=path.name, watermark=watermark, manifest=manifest, notes=notes)


def format_report(report: AuditReport) -> list[str]:
    """The human-readable report, one line per fact."""
    mark, manifest = report.watermark, report.manifest
    lines = [f"file:       {report.file_name}"]
    if mark.status == "found":
        lines.append(
            f"watermark:  found  payload {mark.payload:012x}  confidence {mark.confidence:.3f}  ({mark.frames} frames)"
        )
    else:
        lines.append(f"watermark:  {mark.status}" + (f"  ({mark.frames} frames)" if mark.frames else ""))
    # "trusted" means: chains to the configured trust anchor, i.e. this studio's own root CA.
    status = "trusted (by this studio's root CA)" if manifest.status == "trusted" else manifest.status
    lines.append(f"manifest:   {status}" + (f"  signed by {manifest.signer!r}" if manifest.signer else ""))
    if manifest.status != "missing":
        payload = "none" if manifest.watermark_payload is None else f"{manifest.watermark_payload:012x}"
        lines.append(f"            render {manifest.render_id}  consent {manifest.consent_id}")
        lines.append(f"            source {manifest.digital_source_type}")
        stamp = "RFC 3161 timestamp" if manifest.timestamped else "no trusted timestamp"
        lines.append(f"            signed at {manifest.signed_at or 'unknown'} ({stamp})")
        agreement = "matches the watermark" if report.consistent else "does not match the watermark"
        lines.append(f"            watermark payload {payload} ({agreement})")
    lines.extend(f"  failure:  {failure}" for failure in manifest.failures)
    if report.ledger is not None:
        lines.extend(_ledger_lines(report.ledger, report.receipt))
    if report.credential is not None:
        terms = report.credential
        lines.append(f"credential: subject {terms['subject_name']}; granted by {grantor_words(terms)}")
        lines.append(f"            project {terms['project']}; purposes {', '.join(terms['purposes'])}")
    if report.log_verified is not None:
        state = "verifies" if report.log_verified["ok"] else "DOES NOT VERIFY"
        lines.append(f"log:        the whole ledger {state} ({report.log_verified['summary']})")
    if report.receipt is not None:
        lines.extend(receipt_lines(report.receipt))
    lines.extend(_log_lines(report.log))
    lines.extend(f"note:       {note}" for note in report.notes)
    lines.append(f"verdict:    {report.verdict} (exit {report.exit_code})")
    return lines


def _ledger_lines(entry: dict[str, Any], receipt: ReceiptCheck | None = None) -> list[str]:
    if not entry.get("found"):
        if entry.get("available") is False:
            return ["ledger:     no ledger in this data folder, so no record of this render can be shown"]
        return ["ledger:     no render with this watermark in this studio's ledger"]
    revoked = "REVOKED now" if entry["credential_revoked_now"] else "not revoked"
    exact = "the exact delivered file" if entry["exact_delivered_file"] else "a modified copy (re-encoded, cut or edited)"
    lines = [
        f"ledger:     render {entry['render_id']} ({entry['status']}) by {entry['operator']} at {entry['rendered_at']}",
        f"            credential {entry['credential_id']} ({revoked}); purpose {entry['purpose']}; project {entry['project']}",
        f"            this file is {exact}",
    ]
    if entry.get("position"):
        lines.append(f"            {position_words(entry['position'])}")
    if receipt is None or not receipt.found:  # with a receipt file, its own label line is printed
        lines.append(_label_line(entry.get("label_required"), entry.get("label_present")))
    return lines


def grantor_words(credential: dict[str, Any]) -> str:
    """``self``, or e.g. ``estate: Jane Doe (for John Doe)``."""
    grantor = credential.get("grantor") or {}
    words = str(grantor.get("role", "unknown"))
    if grantor.get("name"):
        words += f": {grantor['name']}"
    if grantor.get("represents"):
        words += f" (for {grantor['represents']})"
    return words


def position_words(position: dict[str, Any]) -> str:
    """Where the render's events sit in the log, e.g. ``log position: render.started #12, ... of 15 events``."""
    events = ", ".join(f"{kind} #{seq}" for kind, seq in position["events"].items())
    return f"log position: {events or 'no events'} of {position['head_seq']} events"


def _label_line(required: bool | None, present: bool | None) -> str:
    def word(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    shown = "NO" if required and present is False else word(present)
    return f"label:      required {word(required)}, present {shown}"


@dataclass(frozen=True, kw_only=True)
class ReceiptCheck:
    """A receipt file checked against the ledger's ``render.started``/``render.finished`` events.

    ``matches``: the file's sha256 is the ``receipt_sha256`` the ledger recorded (so every field,
    the output hash included, is what the studio committed). ``video_matches``: the video given
    alongside hashes to the receipt's ``output_sha256`` (None: no video given).
    """

    file_name: str
    render_id: str | None
    found: bool
    sha256: str
    ledger_sha256: str | None = None
    output_matches: bool | None = None
    video_matches: bool | None = None
    label_required: bool | None = None
    label_present: bool | None = None
    status: str | None = None  # the render's status in the ledger now (finished, lost, ...)
    log: list[dict[str, Any]] | None = None  # the receipt's ledger checkpoint, checked (check_log_extends)

    @property
    def rollback(self) -> list[str]:
        return [check["problem"] for check in self.log or () if not check["extends"]]

    @property
    def matches(self) -> bool:
        return self.found and self.sha256 == self.ledger_sha256

    @property
    def problems(self) -> list[str]:
        found: list[str] = list(self.rollback)
        if not self.found:
            return found
        if not self.matches:
            found.append("the receipt does not match the ledger (its bytes are not the ones the ledger hashed)")
        if self.output_matches is False:
            found.append("the receipt's output hash is not the ledger's")
        if self.video_matches is False:
            found.append("the video is not the output the receipt names")
        if self.label_required and self.label_present is not True:
            found.append("the credential required a visible AI label and the receipt says it is absent")
        if self.status not in (None, "finished"):
            found.append(f"the ledger records this render as {self.status}: it was never delivered")
        return found

    @property
    def exit_code(self) -> int:
        if self.rollback:  # a cut-back ledger also loses the record: say why it is missing
            return EXIT_RECORDS_DISAGREE
        if not self.found:
            return EXIT_NO_RECORD
        return EXIT_RECORDS_DISAGREE if self.problems else EXIT_OURS

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "render_id": self.render_id,
            "found": self.found,
            "sha256": self.sha256,
            "ledger_sha256": self.ledger_sha256,
            "matches": self.matches,
            "output_matches": self.output_matches,
            "video_matches": self.video_matches,
            "label_required": self.label_required,
            "label_present": self.label_present,
            "status": self.status,
            "log": self.log,
            "problems": self.problems,
            "exit_code": self.exit_code,
        }


def receipt_lines(check: ReceiptCheck) -> list[str]:
    """The receipt part of the report, one line per fact."""
    if not check.found:
        return [f"receipt:    render {check.render_id}: not in this studio's ledger", *_log_lines(check.log)]
    if check.matches:
        first = f"receipt:    render {check.render_id}: matches the ledger (sha256 {check.sha256[:16]}...)"
    else:
        first = (f"receipt:    render {check.render_id}: does not match the ledger "
                 f"(file sha256 {check.sha256[:16]}..., ledger {str(check.ledger_sha256)[:16]}...)")
    lines = [first]
    if check.output_matches is False:
        lines.append("            its output hash differs from the ledger's")
    if check.video_matches is True:
        lines.append("            this file is the output the receipt names")
    elif check.video_matches is False:
        lines.append("            this file is NOT the output the receipt names")
    lines.append(_label_line(check.label_required, check.label_present))
    if check.status not in (None, "finished"):
        lines.append(f"            the ledger records this render as {check.status}: it was never delivered")
    return lines + _log_lines(check.log)


def _log_lines(log: list[dict[str, Any]] | None) -> list[str]:
    lines = []
    for check in log or ():
        state = "the ledger extends it" if check["extends"] else check["problem"]
        lines.append(f"log:        {check['source']} carries the checkpoint at size {check['size']}: {state}")
    return lines


def verify_receipt(receipt_path: Path, *, ledger: Any, video: Path | None = None) -> ReceiptCheck:
    """Check a receipt file against the ledger (and the video it names, when given)."""
    import hashlib

    from studio.render.receipt import MalformedReceipt, Receipt

    if not receipt_path.is_file():
        raise MalformedReceipt("the receipt file does not exist or is not a file")
    raw = receipt_path.read_bytes()
    receipt = Receipt.parse(raw)
    fields = receipt.fields
    render_id = fields.get("render_id")
    digest = hashlib.sha256(raw).hexdigest()
    note = fields.get("ledger_checkpoint")
    log = check_log_extends(ledger, [("the receipt", note if isinstance(note, str) else None)])
    events = _render_events(ledger, render_id) if isinstance(render_id, str) else {}
    finished = events.get("render.finished")
    if finished is None:
        return ReceiptCheck(file_name=receipt_path.name, render_id=str(render_id), found=False, sha256=digest,
                            log=log)
    started = events.get("render.started", {})
    inputs = started.get("inputs", {}) if isinstance(started, dict) else {}
    present = fields.get("ai_label")
    record = ledger.find_render(render_id)
    video_matches = None
    if video is not None:
        from studio.media import sha256_file

        video_matches = sha256_file(video) == fields.get("output_sha256") == finished.get("output_sha256")
    return ReceiptCheck(
        file_name=receipt_path.name,
        render_id=render_id,
        found=True,
        sha256=digest,
        ledger_sha256=finished.get("receipt_sha256"),
        output_matches=fields.get("output_sha256") == finished.get("output_sha256"),
        video_matches=video_matches,
        label_required=inputs.get("label_required"),
        label_present=present if isinstance(present, bool) else None,
        status=None if record is None else record.status,
        log=log,
    )


def _render_events(ledger: Any, render_id: str) -> dict[str, dict[str, Any]]:
    """The data of the render's first ``render.started`` and ``render.finished`` events, by kind."""
    import json

    from sqlalchemy.orm import Session

    from studio.ledger.records import state_events

    found: dict[str, dict[str, Any]] = {}
    with Session(ledger.engine) as session:
        for event in state_events(session, ("render.started", "render.finished"), key="render_id", value=render_id):
            found.setdefault(event[1], json.loads(event[4]))
    return found


def _studio_trust_anchor(config: StudioConfig) -> str | None:
    ca = config.home / _CA_FILE
    return ca.read_text() if ca.is_file() else None


def _watermark_key(config: StudioConfig) -> bytes | None:
    """The studio's watermark key, or None when this studio never made one (an audit creates nothing)."""
    from studio.identity import WATERMARK_KEY_FILE, load_or_create_watermark_key

    if not (config.keys_dir / WATERMARK_KEY_FILE).is_file():
        return None
    return load_or_create_watermark_key(config)


def _read_watermark(path: Path, key: bytes | None, *, max_frames: int | None) -> WatermarkFinding:
    frames = 0
    accumulator = None
    if key is not None:
        from watermark import Watermarker

        accumulator = Watermarker(key).accumulator()
    for chunk in _frame_chunks(path, max_frames=max_frames):  # decode even without a key: proves it is a video
        frames += len(chunk)
        if accumulator is not None:
            accumulator.add(chunk)
    if accumulator is None:
        return WatermarkFinding(status="no key", frames=frames)
    detection = accumulator.result()
    if detection.payload is None:
        return WatermarkFinding(status="not found", confidence=float(detection.confidence), frames=frames)
    return WatermarkFinding(
        status="found", payload=int(detection.payload), confidence=float(detection.confidence), frames=frames
    )


def _frame_chunks(path: Path, *, max_frames: int | None = None) -> Iterator[Any]:
    """RGB frames in chunks of ``(t, H, W, 3)`` uint8; UnreadableMedia if there is no decodable video."""
    import av
    import numpy as np

    from watermark.errors import UnreadableMedia

    batch: list[Any] = []
    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableMedia("the file has no video stream")
            for frame in container.decode(video=0):
                batch.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                decoded += 1
                if len(batch) == _CHUNK:
                    yield np.stack(batch)  # (t, H, W, 3)
                    batch = []
                if max_frames is not None and decoded >= max_frames:
                    break
    except av.FFmpegError as exc:
        if decoded == 0:
            raise UnreadableMedia("the file is not a readable video") from exc
    if batch:
        yield np.stack(batch)
    if decoded == 0:
        raise UnreadableMedia("the file contains no decodable video frames")


def audit_video(
    path: Path,
    *,
    config: StudioConfig,
    ledger: Any | None = None,
    watermark_key: bytes | None = None,
    trust_anchor_pem: str | None = None,
    max_frames: int | None = None,
    receipt_path: Path | None = None,
    verify_log: bool = True,
) -> AuditReport:
    """``inspect_video`` plus this studio's ledger record of the render the mark names.

    The ledger is opened from ``config`` when not given (and only if it exists: an audit
    creates nothing). The record says who rendered it, when, under which credential (and
    that credential's terms), whether it is revoked now, whether the file is the exact
    delivered bytes, and where the render's events sit in the log; ``verify_log`` also checks
    the whole log (``Ledger.verify``) so the report says whether it can be believed.
    """
    import dataclasses
    from datetime import datetime, timezone

    report = inspect_video(path, config, watermark_key=watermark_key, trust_anchor_pem=trust_anchor_pem,
                           max_frames=max_frames)
    report = dataclasses.replace(report, audited_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if ledger is None:
        ledger = open_existing_ledger(config)
    if ledger is None:
        return dataclasses.replace(report, ledger={"found": False, "available": False},
                                   notes=[*report.notes, "no ledger in this data folder"])
    if verify_log:
        checked = ledger.verify()
        report = dataclasses.replace(report, log_verified={
            "ok": checked.ok, "summary": checked.summary(), "events": checked.events_checked,
            "head_seq": checked.head_seq})
    if receipt_path is not None:  # it checks the receipt's own ledger checkpoint too
        report = dataclasses.replace(report, receipt=verify_receipt(receipt_path, ledger=ledger, video=path))
    report = dataclasses.replace(
        report, log=check_log_extends(ledger, [("the file's manifest", report.manifest.ledger_checkpoint)])
    )
    payload = report.watermark.payload
    if payload is None and report.manifest.status == "trusted":
        payload = report.manifest.watermark_payload
    if payload is None:
        return report
    record = ledger.find_render_by_payload(payload)
    if record is None:
        entry: dict[str, Any] = {"found": False}
        return dataclasses.replace(report, ledger=entry, notes=[*report.notes, "the watermark names no render in this ledger"])
    from studio.media import sha256_file

    entry = {
        "found": True,
        "render_id": record.render_id,
        "status": record.status,
        "operator": record.operator,
        "rendered_at": record.created_at.isoformat(),
        "credential_id": record.credential_id,
        "purpose": record.purpose,
        "project": record.project,
        "credential_revoked_now": bool(
            record.credential_id and ledger.revocation_status().is_revoked(record.credential_id)
        ),
        "exact_delivered_file": record.output_sha256 == sha256_file(path),
        # From the ledger: what render.started recorded, and what the committed receipt says.
        "label_required": record.inputs.get("label_required"),
        "label_present": None if record.receipt is None else record.receipt.get("ai_label"),
        "position": _render_position(ledger, record.render_id),
    }
    return dataclasses.replace(report, ledger=entry, credential=_credential_terms(ledger, record.credential_id))


def _render_position(ledger: Any, render_id: str) -> dict[str, Any]:
    """The sequence numbers of the render's events in the log, and the log's length now."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from studio.ledger.records import state_events
    from studio.ledger.tables import EventRow

    kinds = ("render.started", "render.claimed", "render.finished", "render.failed", "render.lost")
    with Session(ledger.engine) as session:
        events = {event[1]: event[0] for event in state_events(session, kinds, key="render_id", value=render_id)}
        head = session.scalar(select(func.max(EventRow.seq))) or 0
    return {"events": dict(sorted(events.items(), key=lambda item: item[1])), "head_seq": int(head)}


def _credential_terms(ledger: Any, credential_id: str | None) -> dict[str, Any] | None:
    """The credential's terms an auditor asks about, from the stored (log-checked) document."""
    from studio.ledger.errors import LedgerTampered, UnknownCredential

    if not credential_id:
        return None
    try:
        credential = ledger.get_credential(credential_id)
    except (UnknownCredential, LedgerTampered) as exc:  # unknown, or not the document the log recorded
        return {"credential_id": credential_id, "problem": exc.user_message(), "subject_name": "unknown",
                "grantor": {}, "project": "unknown", "purposes": []}
    return {
        "credential_id": credential.credential_id,
        "subject_name": credential.subject_name,
        "subject_id": credential.subject_id,
        "grantor": dict(credential.grantor),
        "grantee": credential.grantee_name,
        "issuer": credential.issuer,
        "project": credential.project,
        "purposes": list(credential.purposes),
        "label_required": credential.disclosure_required,
        "valid_from": credential.valid_from.isoformat(),
        "valid_until": None if credential.valid_until is None else credential.valid_until.isoformat(),
    }


def check_log_extends(ledger: Any, carried: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """For each signed checkpoint note carried by a file or receipt: does today's ledger extend it?

    A note this studio did not sign, or a ledger that no longer holds the event the note signed
    (cut back, or rewritten), is a problem that no record of the render can outweigh.
    """
    from studio.ledger import SignedCheckpoint
    from studio.ledger.errors import CheckpointInvalid

    checks: list[dict[str, Any]] = []
    for source, note in carried:
        if not note:
            continue
        try:
            checkpoint = SignedCheckpoint.from_note(note)
            result = ledger.verify_extends(checkpoint)
        except CheckpointInvalid as exc:
            checks.append({"source": source, "size": None, "extends": False,
                           "problem": f"{source} carries a ledger checkpoint this studio did not sign ({exc.user_message()})"})
            continue
        problem = None
        if not result.ok:
            problem = (f"the ledger was rolled back or rewritten: {source} carries its signed checkpoint at size "
                       f"{checkpoint.size}, which today's ledger (size {result.head_seq}) does not extend "
                       f"({result.reason})")
        checks.append({"source": source, "size": checkpoint.size, "extends": result.ok, "problem": problem})
    return checks


def open_existing_ledger(config: StudioConfig) -> Any | None:
    """The data folder's ledger, or None when there is none (an audit creates nothing)."""
    from studio.ledger import Ledger

    if config.database_url is None and not (config.home / "ledger.sqlite3").exists():
        return None
    return Ledger.from_config(config, upgrade=False)
