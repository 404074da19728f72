"""Studio users and roles. Passwords are hashed with Argon2id (memory-hard)."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from studio.errors import StudioError
from studio.ledger.errors import UnknownUser  # the ledger's: no such user (or, here, a disabled one)

if TYPE_CHECKING:  # pragma: no cover
    from studio.ledger import Ledger

# 64 MiB, 3 passes: RFC 9106's second recommended profile scaled for a 2-core server.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=2)


class Role(str, enum.Enum):
    OPERATOR = "operator"  # renders
    CONSENT_OFFICER = "consent-officer"  # enrols issuers, imports and revokes credentials
    AUDITOR = "auditor"  # audit tab, read-only
    ADMIN = "admin"  # manages users; may do everything


class PermissionDenied(StudioError):
    """The logged-in user's role does not allow this action."""


class WeakPassword(StudioError):
    """The password is too short."""


class InvalidUsername(StudioError):
    """The username is empty, too long or holds control characters."""


MAX_USERNAME = 64
"""Longest username; longer ones are refused before any database work (see ``check_username``)."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise WeakPassword("passwords need at least 10 characters")
    return _HASHER.hash(password)


def check_username(username: str) -> str:
    """``username`` if it is 1 to ``MAX_USERNAME`` printable characters; raises otherwise."""
    if not username or len(username) > MAX_USERNAME or not username.isprintable():
        raise InvalidUsername(f"usernames have 1 to {MAX_USERNAME} printable characters")
    return username


_DUMMY_HASH: list[str] = []  # a hash of a random secret, made once with _HASHER's parameters


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_HASHER.hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(12)


def create_user(ledger: Ledger, username: str, password: str, role: Role | str, *, actor: str) -> User:
    role = Role(role)
    check_username(username)
    ledger.add_user(username, password_hash=hash_password(password), role=role.value, actor=actor)
    return User(username, role)


def authenticate(ledger: Ledger, username: str, password: str) -> User | None:
    """The user if the password is right and the account enabled, else None. Takes one
    Argon2 check whatever the case (an unknown or disabled name is checked against a dummy
    hash), so the time taken does not tell which names exist. Logs nothing: the web server's
    ``LoginGuard`` throttles and logs attempts."""
    check_username(username)
    row = ledger.get_user(username)
    usable = row is not None and not row.disabled
    ok = check_password(row.password_hash if usable and row is not None else _dummy_hash(), password)
    return User(row.username, Role(row.role)) if ok and usable and row is not None else None


def require_role(ledger: Ledger, username: str | None, *allowed: Role) -> User:
    """The user behind a request, if their role is allowed (admin always is); raises otherwise."""
    if not username:
        raise PermissionDenied("please log in")
    row = ledger.get_user(username)
    if row is None or getattr(row, "disabled", False):
        raise UnknownUser("this account does not exist or is disabled")
    user = User(row.username, Role(row.role))
    if user.role is not Role.ADMIN and user.role not in allowed:
        names = ", ".join(r.value for r in allowed)
        raise PermissionDenied(f"your role ({user.role.value}) cannot do this; it needs: {names}")
    return user
