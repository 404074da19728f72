"""Studio users and roles. Passwords are hashed with Argon2id (memory-hard)."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from studio.errors import StudioError

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


class UnknownUser(StudioError):
    """No such user, or the user is disabled."""


class WeakPassword(StudioError):
    """The password is too short."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise WeakPassword("passwords need at least 10 characters")
    return _HASHER.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(12)


def create_user(ledger: "Ledger", username: str, password: str, role: Role | str, *, actor: str) -> User:
    role = Role(role)
    ledger.add_user(username, password_hash=hash_password(password), role=role.value, actor=actor)
    return User(username, role)


def authenticate(ledger: "Ledger", username: str, password: str) -> User | None:
    """The user if the password is right and the account enabled; every attempt is logged."""
    row = ledger.get_user(username)
    ok = row is not None and not getattr(row, "disabled", False) and check_password(row.password_hash, password)
    ledger.record_login(username, ok=ok)
    return User(row.username, Role(row.role)) if ok and row is not None else None


def require_role(ledger: "Ledger", username: str | None, *allowed: Role) -> User:
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
