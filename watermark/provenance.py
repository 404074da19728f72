"""C2PA provenance for rendered videos: sign a manifest into an MP4 and read it back.

Every render carries a C2PA manifest, signed with the studio's certificate, that says:
  * ``c2pa.actions``: the video was *created* by a trained algorithm (IPTC digital source
    type ``trainedAlgorithmicMedia``), with avatar-studio as the software agent;
  * ``org.avatar-studio.render``: the render id and the consent credential id that allowed
    it (identifiers only, never personal data: the ledger holds the rest);
  * ``org.avatar-studio.watermark``: our invisible watermark (name, version, payload), so a
    copy whose manifest was stripped can still be tied back to this manifest through the
    payload found in its pixels; and, when given, the ledger checkpoint at the render's commit.
    (Not a ``c2pa.soft-binding``: C2PA 2.2 allows only algorithms from its soft-binding
    algorithm list there, and ours is not on it.)

The manifest is bound to the bytes by c2pa-rs's BMFF hash, so flipping one byte of the
media data makes it ``invalid``. The claim signature carries an RFC 3161 timestamp from the
studio's own timestamp authority (``watermark.tsa``, served on 127.0.0.1 during the signing),
so the manifest stays valid after the signing certificate expires. Nothing here leaves the
machine: no public TSA, no OCSP, trust anchors passed in as PEM.

Example::

    signer = StudioSigner.load_or_create(keys_dir / "c2pa")
    sign_mp4(src, dst, signer=signer, render_id="r-01", consent_id="urn:uuid:...", watermark_payload=0x1234)
    read_manifest(dst, trust_anchor_pem=signer.trust_anchor_pem).status   # "trusted" (by that root)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from watermark.certs import StudioSigner
from watermark.errors import NotAnMp4, ProvenanceError, UnreadableMedia

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RENDER_ASSERTION = "org.avatar-studio.render"
WATERMARK_ASSERTION = "org.avatar-studio.watermark"
"""Our custom (reverse-domain) assertion: the watermark's name, version and payload, and the ledger checkpoint."""
WATERMARK_NAME = "avatar-studio invisible watermark"
WATERMARK_VERSION = "1"
"""The watermark scheme: 48-bit payload + keyed CRC-24 (``watermark.payload``); bump if it changes."""

_GENERATOR = "avatar-studio"
_PAYLOAD_HEX_DIGITS = 12  # 48 bits
# Renders signed before issue 20 carried the payload in a c2pa.soft-binding under this alg name;
# they are still read (never written) so that older outputs keep auditing.
_LEGACY_SOFT_BINDING, _LEGACY_ALGORITHM = "c2pa.soft-binding", "org.avatar-studio.watermark.v1"
_UNTRUSTED = "signingCredential.untrusted"

ManifestStatus = Literal["valid", "trusted", "missing", "invalid", "untrusted"]


@dataclass(frozen=True, kw_only=True)
class ManifestReport:
    """What the C2PA manifest of a file says, and whether it can be believed.

    ``status``:
      * ``trusted``: intact and signed by a certificate chaining to the given trust anchor
        (the configured root, normally this studio's CA: "trusted" means trusted *by it*);
      * ``valid``: intact and correctly signed, but no trust anchor was given to judge the signer;
      * ``untrusted``: intact, but signed by a certificate that does not chain to the anchor;
      * ``invalid``: the manifest or the media bytes were changed after signing;
      * ``missing``: the file carries no manifest (never signed, or stripped by a re-mux).
    The other fields come from the manifest and are None when absent (always None when missing).
    ``signed_at`` is the signing time from the RFC 3161 timestamp (ISO 8601; None without one)
    and ``timestamped`` says whether c2pa-rs validated that timestamp token. With the trust
    anchor also vouching for the TSA, the signature is judged at that time, so the manifest
    outlives the signing certificate. ``ledger_checkpoint`` is the ledger's signed checkpoint
    note as given to ``sign_mp4`` (opaque text here; the ledger verifies it).
    """

    status: ManifestStatus
    render_id: str | None = None
    consent_id: str | None = None
    watermark_payload: int | None = None
    digital_source_type: str | None = None
    signer: str | None = None
    claim_generator: str | None = None
    signed_at: str | None = None
    timestamped: bool = False
    ledger_checkpoint: str | None = None
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the payload as hex, which is how auditors compare it)."""
        return {
            "status": self.status,
            "render_id": self.render_id,
            "consent_id": self.consent_id,
            "watermark_payload": None if self.watermark_payload is None else f"{self.watermark_payload:x}",
            "digital_source_type": self.digital_source_type,
            "signer": self.signer,
            "claim_generator": self.claim_generator,
            "signed_at": self.signed_at,
            "timestamped": self.timestamped,
            "ledger_checkpoint": self.ledger_checkpoint,
            "failures": list(self.failures),
        }


def sign_mp4(
    src: Path,
    dst: Path,
    *,
    signer: StudioSigner,
    render_id: str,
    consent_id: str,
    watermark_payload: int,
    title: str | None = None,
    ledger_checkpoint: str | None = None,
) -> None:
    """Write ``dst``: ``src`` with a signed C2PA manifest embedded (``src`` may equal ``dst``).

    ``ledger_checkpoint`` (the ledger's signed checkpoint note at the render's commit, opaque
    here) goes into the watermark assertion when given. The claim signature is timestamped by
    the signer's timestamp authority when it has one. ``dst`` appears atomically (written next
    to it, then renamed), so a failed signing never leaves a half-written output. Raises
    NotAnMp4 / UnreadableMedia for a bad ``src`` and ProvenanceError if c2pa refuses to sign.
    """
    import c2pa

    mime = _sniff_bmff(src)
    if watermark_payload < 0:
        raise ProvenanceError("the watermark payload must be a non-negative integer")
    if ledger_checkpoint is not None and not ledger_checkpoint.strip():
        raise ProvenanceError("the ledger checkpoint must be non-empty text when given")
    manifest = _manifest_definition(
        title=title or dst.name,
        mime=mime,
        render_id=render_id,
        consent_id=consent_id,
        payload=watermark_payload,
        ledger_checkpoint=ledger_checkpoint,
    )
    algorithm = c2pa.C2paSigningAlg.ED25519 if signer.algorithm == "ed25519" else c2pa.C2paSigningAlg.ES256
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{secrets.token_hex(4)}.signing{dst.suffix}")
    # O_EXCL: never follow or reuse someone else's file; 0o666 minus the umask, like any new file.
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w+b") as out, src.open("rb") as source, _timestamp_url(signer) as tsa_url:
            # c2pa-rs POSTs an RFC 3161 request to tsa_url (our loopback TSA) and embeds the token.
            info = c2pa.C2paSignerInfo(algorithm, signer.chain_pem, signer.key_pem, tsa_url)
            c2pa_signer = c2pa.Signer.from_info(info)
            with c2pa_signer, c2pa.Builder(manifest, _context(c2pa, anchor=None)) as builder:
                builder.sign(c2pa_signer, mime, source, out)
        os.replace(tmp, dst)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"signing the C2PA manifest failed ({_short(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(path: Path, *, trust_anchor_pem: str | None = None) -> ManifestReport:
    """Validate the C2PA manifest of an MP4/MOV file and extract what the studio wrote.

    With ``trust_anchor_pem`` (the studio's CA) an intact manifest is ``trusted`` or
    ``untrusted``; without it, ``valid``. Raises NotAnMp4 for a file that is not ISO-BMFF,
    UnreadableMedia for an empty or truncated one.
    """
    import c2pa

    mime = _sniff_bmff(path)
    try:
        with path.open("rb") as stream, c2pa.Reader(mime, stream, None, _context(c2pa, anchor=trust_anchor_pem)) as reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return ManifestReport(status="missing")
    except c2pa.C2paError as exc:
        # A manifest box is there but cannot be parsed: it was damaged after signing.
        return ManifestReport(status="invalid", failures=[f"manifest unreadable: {_short(exc)}"])
    except OSError as exc:
        raise UnreadableMedia("the video file cannot be read") from exc
    failures = _failure_codes(results)
    status = _status(state, failures, anchored=trust_anchor_pem is not None)
    if status in ("trusted", "valid"):
        failures = [f for f in failures if not f.startswith(_UNTRUSTED)]
    return _report_from_store(store, results, status=status, failures=failures)


def _timestamp_url(signer: StudioSigner) -> contextlib.AbstractContextManager[str | None]:
    """The URL of the signer's timestamp authority, served on loopback for the signing; None without one."""
    if signer.tsa_chain_pem is None or signer.tsa_key_pem is None:
        return contextlib.nullcontext(None)
    from watermark.tsa import LoopbackTsa, TimestampAuthority

    return LoopbackTsa(TimestampAuthority.from_pem(signer.tsa_chain_pem, signer.tsa_key_pem))


def _manifest_definition(
    *, title: str, mime: str, render_id: str, consent_id: str, payload: int, ledger_checkpoint: str | None
) -> dict[str, Any]:
    agent = {"name": _GENERATOR, "version": _generator_version()}
    watermark: dict[str, Any] = {
        "name": WATERMARK_NAME,
        "version": WATERMARK_VERSION,
        "payload": f"{payload:0{_PAYLOAD_HEX_DIGITS}x}",  # hex, as auditors compare it
    }
    if ledger_checkpoint is not None:
        watermark["ledger_checkpoint"] = ledger_checkpoint
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": mime,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent}
                    ]
                },
            },
            {"label": RENDER_ASSERTION, "data": {"render_id": render_id, "consent_id": consent_id}},
            {"label": WATERMARK_ASSERTION, "data": watermark},
        ],
    }


def _context(c2pa: Any, *, anchor: str | None) -> Any:
    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if anchor is None:
        settings["verify"] = {"verify_trust": False}
    else:
        settings["trust"] = {"trust_anchors": anchor}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _failure_codes(results: dict[str, Any]) -> list[str]:
    active = results.get("activeManifest") or {}
    return [f"{item.get('code')}: {item.get('explanation', '')}".rstrip(": ") for item in active.get("failure", [])]


def _status(state: str, failures: list[str], *, anchored: bool) -> ManifestStatus:
    if state == "Trusted":
        return "trusted"
    if state == "Valid":
        untrusted = any(f.startswith(_UNTRUSTED) for f in failures)
        return "untrusted" if anchored or untrusted else "valid"
    return "invalid"


def _report_from_store(
    store: dict[str, Any], results: dict[str, Any], *, status: ManifestStatus, failures: list[str]
) -> ManifestReport:
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    assertions = {item.get("label"): item.get("data") or {} for item in manifest.get("assertions", [])}
    render = assertions.get(RENDER_ASSERTION, {})
    watermark = assertions.get(WATERMARK_ASSERTION, {})
    signature = manifest.get("signature_info") or {}
    generators = manifest.get("claim_generator_info") or [{}]
    return ManifestReport(
        status=status,
        render_id=_str_or_none(render.get("render_id")),
        consent_id=_str_or_none(render.get("consent_id")),
        watermark_payload=_watermark_payload(watermark) if watermark else _legacy_payload(assertions),
        digital_source_type=_created_source_type(assertions),
        signer=_str_or_none(signature.get("common_name") or signature.get("issuer")),
        claim_generator=_str_or_none(generators[0].get("name")),
        signed_at=_str_or_none(signature.get("time")),
        timestamped=_timestamp_validated(results),
        ledger_checkpoint=_str_or_none(watermark.get("ledger_checkpoint")),
        failures=failures,
    )


def _timestamp_validated(results: dict[str, Any]) -> bool:
    active = results.get("activeManifest") or {}
    return any(item.get("code") == "timeStamp.validated" for item in active.get("success", []))


def _created_source_type(assertions: dict[str, Any]) -> str | None:
    for label in ("c2pa.actions.v2", "c2pa.actions"):
        for action in assertions.get(label, {}).get("actions", []):
            if action.get("action") == "c2pa.created":
                return _str_or_none(action.get("digitalSourceType"))
    return None


def _watermark_payload(data: dict[str, Any]) -> int | None:
    value = data.get("payload")
    if data.get("name") != WATERMARK_NAME or not isinstance(value, str) or not 0 < len(value) <= 64:
        return None
    if value.strip("0123456789abcdef"):  # plain lowercase hex only (int() would take "0x", "_", spaces)
        return None
    return int(value, 16)


def _legacy_payload(assertions: dict[str, Any]) -> int | None:
    data = assertions.get(_LEGACY_SOFT_BINDING, {})
    blocks = data.get("blocks") if data.get("alg") == _LEGACY_ALGORITHM else None
    value = blocks[0].get("value") if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict) else None
    try:  # c2pa-rs returns the CBOR byte string base64-encoded
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except binascii.Error:
        return None
    return int.from_bytes(raw, "big") if raw else None


def _sniff_bmff(path: Path) -> str:
    """The MIME type of an ISO-BMFF file, after checking its top-level boxes are complete.

    c2pa-rs would report a truncated file as merely "invalid" (or fail with a parser
    message), so we check the structure first to say clearly what is wrong.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
            if size == 0:
                raise UnreadableMedia("the video file is empty")
            if head[4:8] != b"ftyp":
                raise NotAnMp4("the file is not an MP4 video (no ISO-BMFF 'ftyp' box)")
            _check_boxes(handle, size)
    except OSError as exc:
        raise UnreadableMedia("the video file cannot be read") from exc
    return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"


def _check_boxes(handle: Any, size: int) -> None:
    offset, seen = 0, set()
    while offset < size:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            raise UnreadableMedia("the video file is truncated (incomplete box header)")
        box_size = int.from_bytes(header[0:4], "big")
        seen.add(header[4:8])
        if box_size == 1:
            if len(header) < 16:
                raise UnreadableMedia("the video file is truncated (incomplete box header)")
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:  # "extends to end of file"
            box_size = size - offset
        if box_size < 8:
            raise NotAnMp4("the file is not a well-formed MP4 video (corrupt box size)")
        if offset + box_size > size:
            raise UnreadableMedia("the video file is truncated (a box extends past the end of the file)")
        offset += box_size
    if b"moov" not in seen:
        raise UnreadableMedia("the video file is incomplete (no 'moov' box)")


def _generator_version() -> str:
    try:
        return metadata.version("avatar-studio")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _short(exc: BaseException) -> str:
    """c2pa's own message, first line only (it names no files: we pass streams, not paths)."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
