"""`avatar-studio keys ...`: make and inspect Ed25519 signing keys (did:key).

Also holds the passphrase helpers that ``vc sign`` and ``consent issue`` share: a passphrase
comes from a file (for scripts) or an interactive prompt, never from the command line, where
it would end up in shell history and the process list.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from studio.commands._common import echo

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

app = typer.Typer(no_args_is_help=True, help="Ed25519 key pairs (did:key).")

_MAX_PASSPHRASE_FILE_BYTES = 4096

PassphraseFileOption = Annotated[
    Optional[Path],
    typer.Option("--passphrase-file", help="Read the key's passphrase from this file (first line)."),
]


def read_passphrase_file(path: Path) -> str:
    """The passphrase in ``path``: the file's text without its trailing newline."""
    from consent.errors import KeyFileError

    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PASSPHRASE_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"the passphrase file cannot be read ({exc.strerror})") from None
    if len(data) > _MAX_PASSPHRASE_FILE_BYTES:
        raise KeyFileError("the passphrase file is too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError("the passphrase file is not UTF-8 text") from None
    passphrase = text.removesuffix("\n").removesuffix("\r")
    if not passphrase:
        raise KeyFileError("the passphrase file is empty")
    return passphrase


def load_signing_key(key_file: Path, passphrase_file: Path | None) -> Ed25519PrivateKey:
    """Load a private key, prompting for the passphrase when the file is encrypted and none was given."""
    from consent.errors import PassphraseRequired
    from consent.keys import load_private_key

    if passphrase_file is not None:
        return load_private_key(key_file, passphrase=read_passphrase_file(passphrase_file))
    try:
        return load_private_key(key_file, passphrase=None)
    except PassphraseRequired:
        passphrase = typer.prompt("Passphrase for the key", hide_input=True)
        return load_private_key(key_file, passphrase=passphrase)


@app.command("new")
def new(
    out: Annotated[Path, typer.Argument(help="Where to write the private key (PKCS#8 PEM, mode 0600).")],
    passphrase_file: PassphraseFileOption = None,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Store the key unencrypted (still mode 0600).")
    ] = False,
) -> None:
    """Generate a key pair, save the private key and print its did:key."""
    from consent.keys import did_key_from_public, generate_keypair, save_private_key

    if passphrase_file is not None and no_passphrase:
        raise typer.BadParameter("give either --passphrase-file or --no-passphrase, not both")
    passphrase: str | None
    if no_passphrase:
        passphrase = None
    elif passphrase_file is not None:
        passphrase = read_passphrase_file(passphrase_file)
    else:
        passphrase = typer.prompt("Passphrase for the new key", hide_input=True, confirmation_prompt=True)
    key = generate_keypair()
    save_private_key(key, out, passphrase=passphrase)
    echo(did_key_from_public(key.public_key()))


@app.command("show")
def show(
    key_file: Annotated[Path, typer.Argument(help="A private key file written by `keys new`.")],
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Print the did:key of a private key file."""
    from consent.keys import did_key_from_public

    key = load_signing_key(key_file, passphrase_file)
    echo(did_key_from_public(key.public_key()))
