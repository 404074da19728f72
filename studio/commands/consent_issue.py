"""`avatar-studio consent issue`: write a signed LikenessConsent credential.

Run by the subject (or their estate or guardian) with their own key: the credential's
issuer is that key's did:key. The photo is hashed into ``referenceImages`` and its face
embedding becomes the template the studio later compares every source photo against.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from studio.commands._common import echo
from studio.commands.keys import PassphraseFileOption, load_signing_key

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_MAX_TEMPLATE_FILE_BYTES = 64 * 1024
_FACE_VECTOR_SIZE = 128

InputFile = dict(exists=True, dir_okay=False, readable=True)


def register(app: typer.Typer) -> None:
    """Add the ``issue`` command to the ``consent`` group."""
    app.command("issue")(issue)


def issue(
    key: Annotated[Path, typer.Option("--key", help="The grantor's private key (from `keys new`).")],
    subject_name: Annotated[str, typer.Option("--subject-name", help="The person whose likeness this is.")],
    grantee: Annotated[str, typer.Option("--grantee", help="The studio or institution receiving consent.")],
    project: Annotated[str, typer.Option("--project", help="The one project/production covered.")],
    purpose: Annotated[list[str], typer.Option("--purpose", help="A purpose covered (repeat), e.g. film.")],
    max_duration: Annotated[float, typer.Option("--max-duration", help="Longest output, in seconds.", min=0.001)],
    photo: Annotated[Path, typer.Option("--photo", help="Reference photo of the face.", **InputFile)],
    out: Annotated[Path, typer.Option("--out", help="Where to write the credential JSON.")],
    passphrase_file: PassphraseFileOption = None,
    valid_from: Annotated[
        Optional[str], typer.Option("--valid-from", help="ISO date/time (UTC if no zone). Default: now.")
    ] = None,
    valid_until: Annotated[
        Optional[str], typer.Option("--valid-until", help="ISO date/time (UTC if no zone). Default: no end.")
    ] = None,
    estate_of: Annotated[
        Optional[str], typer.Option("--estate-of", help="Grant as the estate of this person.")
    ] = None,
    chain_of_title: Annotated[
        Optional[Path],
        typer.Option("--chain-of-title", help="Document proving the estate's rights (hashed).", **InputFile),
    ] = None,
    subject_did: Annotated[
        Optional[str],
        typer.Option("--subject-did", help="The subject's DID/URI. Default: the key's DID (self) or a new urn:uuid."),
    ] = None,
    media: Annotated[Optional[list[str]], typer.Option("--media", help="Medium covered (repeat).")] = None,
    territory: Annotated[Optional[list[str]], typer.Option("--territory", help="Territory (repeat).")] = None,
    disclosure: Annotated[
        bool, typer.Option("--disclosure/--no-disclosure", help="Require outputs to be labelled as AI-generated.")
    ] = True,
    prohibited: Annotated[Optional[list[str]], typer.Option("--prohibited", help="A prohibited use (repeat).")] = None,
    compensation: Annotated[Optional[str], typer.Option("--compensation", help="Contract reference.")] = None,
    template_file: Annotated[
        Optional[Path],
        typer.Option("--template-file", help="JSON list of 128 floats to use instead of the photo's embedding.", **InputFile),
    ] = None,
) -> None:
    """Issue and sign a LikenessConsent credential for one project."""
    from consent.credential import DISCLOSURE_LABEL, DISCLOSURE_NONE, issue_consent
    from consent.keys import did_key_from_public

    if (estate_of is None) != (chain_of_title is None):
        raise typer.BadParameter("--estate-of and --chain-of-title go together")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    starts = _parse_time(valid_from, "--valid-from") if valid_from else now
    ends = _parse_time(valid_until, "--valid-until") if valid_until else None
    if ends is not None and ends <= starts:
        raise typer.BadParameter("--valid-until must be later than --valid-from")

    private_key = load_signing_key(key, passphrase_file)
    issuer = did_key_from_public(private_key.public_key())
    photo_bytes = photo.read_bytes()
    vector = _read_template(template_file) if template_file else _embedding_of(photo_bytes)
    grantor: dict[str, str] = {"role": "self"}
    if estate_of is not None and chain_of_title is not None:
        chain_digest = hashlib.sha256(chain_of_title.read_bytes()).hexdigest()
        grantor = {
            "role": "estate",
            "name": f"Estate of {estate_of}",
            "represents": estate_of,
            "chainOfTitle": f"sha256:{chain_digest}",
        }
    default_subject = issuer if estate_of is None else f"urn:uuid:{uuid.uuid4()}"
    document = issue_consent(
        issuer_key=private_key,
        subject_did=subject_did or default_subject,
        subject_name=subject_name,
        grantor=grantor,
        grantee_name=grantee,
        reference_image_sha256=[hashlib.sha256(photo_bytes).hexdigest()],
        face_vector=vector,
        project=project,
        purposes=purpose,
        media=media or ["video"],
        territory=territory or None,
        max_duration_seconds=max_duration,
        prohibited=prohibited or (),
        disclosure=DISCLOSURE_LABEL if disclosure else DISCLOSURE_NONE,
        valid_from=starts,
        valid_until=ends,
        compensation=compensation,
        now=now,
    )
    _write_private(out, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    echo(f"issued {document['id']}")
    echo(f"issuer {issuer}")


def _write_private(path: Path, text: str) -> None:
    """Write with mode 0600: the credential holds a face template, which is biometric data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _parse_time(text: str, option: str) -> datetime:
    """ISO 8601 date or date-time; a missing zone means UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} is not an ISO date or date-time (e.g. 2027-01-31T00:00:00Z)") from None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _read_template(path: Path) -> list[float]:
    data = path.read_bytes()[: _MAX_TEMPLATE_FILE_BYTES + 1]
    try:
        values = json.loads(data)
    except (ValueError, RecursionError):
        raise typer.BadParameter("--template-file is not JSON") from None
    if (
        len(data) > _MAX_TEMPLATE_FILE_BYTES
        or not isinstance(values, list)
        or len(values) != _FACE_VECTOR_SIZE
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    ):
        raise typer.BadParameter(f"--template-file must hold a JSON list of {_FACE_VECTOR_SIZE} numbers")
    return [float(v) for v in values]


def _embedding_of(photo_bytes: bytes) -> list[float]:
    """The 128-d face embedding of the photo (models.face, imported only when needed)."""
    from models.face import FaceAnalyzer

    face = FaceAnalyzer().analyze(_decode_image(photo_bytes))
    if face.embedding is None:
        raise typer.BadParameter("no face embedding could be computed for --photo")
    return [float(v) for v in face.embedding]


def _decode_image(photo_bytes: bytes) -> npt.NDArray[np.uint8]:
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(photo_bytes)) as image:
            return np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError):
        raise typer.BadParameter("--photo is not an image this studio can read") from None
