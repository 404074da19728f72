"""`avatar-studio vc ...`: add or check an eddsa-jcs-2022 proof on any JSON document."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from studio.commands._common import Invalid, echo
from studio.commands.keys import PassphraseFileOption, load_signing_key

app = typer.Typer(no_args_is_help=True, help="Sign and verify any eddsa-jcs-2022 document.")

DocumentArgument = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A JSON document (an object).")
]


def _read_document(path: Path) -> bytes:
    from consent.proof import MAX_DOCUMENT_BYTES

    with path.open("rb") as handle:
        return handle.read(MAX_DOCUMENT_BYTES + 1)  # parse_json refuses the extra byte as too large


def dump_json(document: dict[str, object]) -> str:
    """Indented JSON for people; the proof covers the canonical form, so layout does not matter."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@app.command("sign")
def sign(
    document_file: DocumentArgument,
    key: Annotated[Path, typer.Option("--key", help="Private key file (from `keys new`).")],
    passphrase_file: PassphraseFileOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write here instead of standard output.")] = None,
) -> None:
    """Add an eddsa-jcs-2022 DataIntegrityProof made with KEY to the document."""
    from consent.keys import did_key_from_public, verification_method_for
    from consent.proof import add_proof, parse_json

    document = parse_json(_read_document(document_file))
    private_key = load_signing_key(key, passphrase_file)
    method = verification_method_for(did_key_from_public(private_key.public_key()))
    created = datetime.now(timezone.utc).replace(microsecond=0)
    signed = add_proof(document, private_key, verification_method=method, created=created)
    if out is None:
        typer.echo(dump_json(signed), nl=False)
    else:
        out.write_text(dump_json(signed), encoding="utf-8")
        echo(f"signed by {method}")


@app.command("verify")
def verify(document_file: DocumentArgument) -> None:
    """Check the document's proof: exit 0 "valid: <verificationMethod>", exit 1 "invalid: <reason>"."""
    from consent.errors import ConsentError
    from consent.proof import parse_json, verify_proof

    try:
        info = verify_proof(parse_json(_read_document(document_file)))
    except ConsentError as exc:
        raise Invalid(exc.user_message()) from None
    echo(f"valid: {info.verification_method}")
