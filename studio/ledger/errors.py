"""Errors raised by the ledger: each leaf names one condition a user or operator can cause.

Messages never contain the database URL (it may hold a password) or file paths.
"""

from __future__ import annotations

from studio.errors import StudioError


class LedgerError(StudioError):
    """Base class for ledger errors."""


class LedgerNotMigrated(LedgerError):
    """The database exists but its schema is missing or older than this version of the studio."""

    def user_message(self) -> str:
        return (
            f"{self} Run `avatar-studio db upgrade` (the studio also upgrades the ledger "
            "automatically when it starts)."
        )


class LedgerBusy(LedgerError):
    """Another writer held the ledger lock for longer than the busy timeout; nothing was written."""


class LedgerUnavailable(LedgerError):
    """The database cannot be reached or read (server down, wrong credentials, not a database)."""


class UnknownCredential(LedgerError):
    """No credential with this id was imported into the ledger."""


class DuplicateCredential(LedgerError):
    """A credential with this id was already imported."""


class CredentialAlreadyRevoked(LedgerError):
    """The credential was revoked before; revocation is final."""


class IssuerNotEnrolled(LedgerError):
    """The DID is not (or no longer) enrolled as a trusted issuer."""


class IssuerAlreadyEnrolled(LedgerError):
    """The DID is already enrolled and not withdrawn."""


class UnknownRender(LedgerError):
    """No render with this id was started, or it already ended."""


class DuplicateUser(LedgerError):
    """A user with this name already exists."""


class UnknownUser(LedgerError):
    """No user with this name exists (or, where an account must be usable, it is disabled)."""


class LedgerEmpty(LedgerError):
    """There is nothing to checkpoint yet."""


class LedgerTampered(LedgerError):
    """A state row disagrees with the chained events that should explain it; the decision is refused.

    ``avatar-studio log verify`` names the row.
    """

    def user_message(self) -> str:
        return f"{self} The ledger's state was edited outside the studio; run `avatar-studio log verify`."


class CheckpointInvalid(LedgerError):
    """A checkpoint note is malformed, or not signed by this studio's key."""
