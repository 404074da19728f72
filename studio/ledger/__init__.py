"""The studio's tamper-evident ledger: hash-chained events, signed checkpoints, state tables.

>>> from studio.ledger import Ledger                                       # doctest: +SKIP
>>> ledger = Ledger.open("sqlite:///ledger.sqlite3", studio_key=key)       # doctest: +SKIP
>>> ledger.append("note", {"hello": "world"}, actor="alice").seq           # doctest: +SKIP
1
>>> ledger.verify().summary()                                              # doctest: +SKIP
'chain intact: 1 events, 0 checkpoints'
"""

from studio.ledger.chain import ChainReport, Checkpoint, Event
from studio.ledger.errors import (
    CheckpointInvalid,
    CredentialAlreadyRevoked,
    DuplicateCredential,
    DuplicateUser,
    IssuerAlreadyEnrolled,
    IssuerNotEnrolled,
    LedgerBusy,
    LedgerEmpty,
    LedgerError,
    LedgerNotMigrated,
    LedgerTampered,
    LedgerUnavailable,
    UnknownCredential,
    UnknownRender,
    UnknownUser,
)
from studio.ledger.ledger import Ledger
from studio.ledger.notes import SignedCheckpoint
from studio.ledger.records import CredentialSummary, IssuerRecord, RenderLease, RenderRecord, UserRecord

__all__ = [
    "ChainReport",
    "Checkpoint",
    "CheckpointInvalid",
    "CredentialAlreadyRevoked",
    "CredentialSummary",
    "DuplicateCredential",
    "DuplicateUser",
    "Event",
    "IssuerAlreadyEnrolled",
    "IssuerNotEnrolled",
    "IssuerRecord",
    "Ledger",
    "LedgerBusy",
    "LedgerEmpty",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerTampered",
    "LedgerUnavailable",
    "RenderLease",
    "RenderRecord",
    "SignedCheckpoint",
    "UnknownCredential",
    "UnknownRender",
    "UnknownUser",
    "UserRecord",
]
