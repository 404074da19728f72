"""The web server's login guard: bounded usernames, growing delays per account and per client
address, a lockout that an admin lifts, and failed logins logged as counts per time window.

Gradio's ``/login`` route awaits ``auth(username, password)`` when it is a coroutine function
(a plain function would run on the event loop and stall every other request for the length of
an Argon2 check). ``LoginGuard.auth`` does the in-memory checks on the loop and the database and
Argon2 work in worker threads, at most ``_HASH_THREADS`` at once. ``LoginGate``, an ASGI
middleware, caps a login request's body before anything parses it and hands the client's
address to the guard.

Lock state lives in the ledger as ``user.locked`` / ``user.unlocked`` events, so a lock made by
one server process holds in the others and ``avatar-studio users unlock`` (another process)
lifts it. Failure counters live in memory (bounded), per process.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from studio.errors import StudioError
from studio.ledger.errors import LedgerTampered
from studio.users import InvalidUsername, authenticate, check_username

if TYPE_CHECKING:  # pragma: no cover
    from studio.config import StudioConfig
    from studio.ledger import Ledger

log = logging.getLogger(__name__)

_HASH_THREADS = 2  # concurrent Argon2 checks (64 MiB each); more would only queue on 2 cores
_ACCOUNT_FREE_FAILURES = 3  # failures per account before delays start
_CLIENT_FREE_FAILURES = 20  # per client address (several people may share one address)
_MAX_DELAY_SECONDS = 900.0
_CLIENT_FORGET_SECONDS = 3600.0  # a client's count starts again after an hour without failures
_MAX_TRACKED = 10_000  # accounts and clients remembered; the least recently seen are dropped
_MAX_BODY_BYTES = 16 * 1024  # a login form: two short fields
_UNKNOWN = "(unknown)"  # the log bucket for names that are no account
_INVALID = "(invalid)"  # ... for names refused outright (too long, control characters)

_CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("login_client", default="unknown")


class LoginRefused(StudioError):
    """A login refused without checking the password."""


class LoginThrottled(LoginRefused):
    """Too many failed logins for this account or from this address: wait and try again."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins; try again in {max(1, round(retry_after))} s")


class AccountLocked(LoginRefused):
    """Too many failed logins for this account: locked until an admin unlocks it."""


class AccountRecordTampered(LoginRefused):
    """The account's stored role, status or password is not what the ledger recorded."""


@dataclass
class _Counter:
    failures: int = 0
    next_allowed: float = 0.0
    last_failure: float = 0.0
    in_flight: int = 0
    locked: bool = False  # an unknown name's lock (a real account's lock is in the ledger)


@dataclass
class _Bucket:
    failures: int = 0
    throttled: int = 0
    clients: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    def note(self, client: str, name: str) -> None:
        if len(self.clients) < _MAX_TRACKED:
            self.clients.add(client)
        if len(self.names) < _MAX_TRACKED:
            self.names.add(hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:16])


def _delay(failures: int, free: int, base: float) -> float:
    """Seconds to wait after the ``failures``-th failure: none for the first ``free``, then doubling."""
    if failures < free or base <= 0:
        return 0.0
    return min(_MAX_DELAY_SECONDS, base * 2.0 ** (failures - free))


class LoginGuard:
    """Decides login attempts for the web server; see the module docstring."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        lockout_failures: int = 10,
        delay_seconds: float = 1.0,
        window_seconds: float = 300.0,
    ) -> None:
        if lockout_failures < 1:
            raise ValueError("lockout_failures must be at least 1")
        self._ledger = ledger
        self._lockout = lockout_failures
        self._base = delay_seconds
        self._window = window_seconds
        self._lock = threading.Lock()
        self._accounts: OrderedDict[str, _Counter] = OrderedDict()
        self._clients: OrderedDict[str, _Counter] = OrderedDict()
        self._buckets: dict[str, _Bucket] = {}
        self._window_start: datetime | None = None
        self._seen_seq, changes = ledger.login_lock_changes(0)
        self._locked = {name for name, locked in changes.items() if locked}
        self._real: set[str] = set()  # names seen to be accounts (bounded by the users table)
        self._limiter: Any = None  # anyio.CapacityLimiter, made on the server's event loop

    @classmethod
    def from_config(cls, ledger: Ledger, config: StudioConfig) -> LoginGuard:
        return cls(
            ledger,
            lockout_failures=config.login_lockout_failures,
            delay_seconds=config.login_delay_seconds,
            window_seconds=config.login_log_window_seconds,
        )

    # ------------------------------------------------------------------ the Gradio hook
    async def auth(self, username: str, password: str) -> bool:
        """Gradio's ``auth`` callable: True to log in, False for wrong credentials; a refusal
        without a password check is an HTTP 400 whose detail says why (and Retry-After)."""
        import anyio
        from fastapi import HTTPException

        client = _CLIENT.get()
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(_HASH_THREADS)
        try:
            self.precheck(username, client)
            try:
                return await anyio.to_thread.run_sync(self.attempt, username, password, client, limiter=self._limiter)
            finally:
                self._release(username, client)
        except (LoginRefused, InvalidUsername) as exc:
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, LoginThrottled) else None
            raise HTTPException(status_code=400, detail=exc.user_message(), headers=headers) from None

    # ------------------------------------------------------------------ the decision
    def precheck(self, username: str, client: str) -> None:
        """The checks that need no database: name, delays, known locks, one attempt in
        flight per account. Raises ``InvalidUsername`` or a ``LoginRefused``; on success the
        attempt is in flight until ``_release``."""
        now = time.monotonic()
        with self._lock:
            peer = self._counter(self._clients, client)
            if now - peer.last_failure > _CLIENT_FORGET_SECONDS:
                peer.failures, peer.next_allowed = 0, 0.0
            try:
                check_username(username)
            except InvalidUsername:
                self._fail(peer, client, _INVALID, username, now, free=_CLIENT_FREE_FAILURES)
                raise
            account = self._counter(self._accounts, username)
            if account.locked:  # an unknown name's; a real account's lock is checked in attempt()
                self._bucket(self._bucket_of(username), client, username).throttled += 1
                raise AccountLocked("this account is locked after too many failed logins; an admin can unlock it")
            wait = max(peer.next_allowed, account.next_allowed) - now
            if wait > 0 or account.in_flight or peer.in_flight >= _HASH_THREADS:
                self._bucket(self._bucket_of(username), client, username).throttled += 1
                raise LoginThrottled(max(wait, 1.0))
            account.in_flight += 1
            peer.in_flight += 1

    def attempt(self, username: str, password: str, client: str) -> bool:
        """Check the password (in a worker thread) and count the outcome."""
        self._refresh_locks()
        if username in self._locked:
            with self._lock:
                self._bucket(username, client).throttled += 1
            raise AccountLocked("this account is locked after too many failed logins; an admin can unlock it")
        try:
            user = authenticate(self._ledger, username, password)
        except LedgerTampered:
            log.warning("login refused for %s: the users row disagrees with the ledger", json.dumps(username))
            raise AccountRecordTampered(
                "this account's record does not match the ledger; an admin must check it (avatar-studio log verify)"
            ) from None
        if user is not None:
            with self._lock:
                self._accounts.pop(username, None)
            self._ledger.record_login(username, ok=True)
            return True
        exists = self._ledger.get_user(username) is not None
        now = time.monotonic()
        with self._lock:
            if exists:
                self._real.add(username)
            account = self._counter(self._accounts, username)
            peer = self._counter(self._clients, client)
            self._fail(peer, client, username if exists else _UNKNOWN, username, now, free=_CLIENT_FREE_FAILURES)
            account.failures += 1
            account.last_failure = now
            account.next_allowed = now + _delay(account.failures, _ACCOUNT_FREE_FAILURES, self._base)
            lock = account.failures >= self._lockout
            if lock and not exists:
                account.locked = True  # the same answer as for a real account, kept in memory
        if lock and exists:
            self._ledger.lock_user(username, failures=account.failures)
            self._refresh_locks()
        return False

    def _release(self, username: str, client: str) -> None:
        with self._lock:
            for table, key in ((self._accounts, username), (self._clients, client)):
                counter = table.get(key)
                if counter is not None and counter.in_flight:
                    counter.in_flight -= 1

    def refuse_request(self, client: str) -> None:
        """Count a login request refused before its form was read (e.g. an oversized body)."""
        with self._lock:
            self._fail(self._counter(self._clients, client), client, _INVALID, "", time.monotonic(),
                       free=_CLIENT_FREE_FAILURES)

    def _refresh_locks(self) -> None:
        """Apply lock and unlock events written since the last look (by any process)."""
        last, changes = self._ledger.login_lock_changes(self._seen_seq)
        with self._lock:
            if last <= self._seen_seq:
                return  # another thread applied a read at least as new (applying this could undo it)
            self._seen_seq = last
            for name, locked in changes.items():
                if locked:
                    self._locked.add(name)
                else:
                    self._locked.discard(name)
                    self._accounts.pop(name, None)  # unlocked: a fresh start

    # ------------------------------------------------------------------ counting (under _lock)
    def _counter(self, table: OrderedDict[str, _Counter], key: str) -> _Counter:
        counter = table.get(key)
        if counter is None:
            counter = table[key] = _Counter()
            while len(table) > _MAX_TRACKED:
                table.popitem(last=False)
        table.move_to_end(key)
        return counter

    def _fail(self, peer: _Counter, client: str, bucket: str, name: str, now: float, *, free: int) -> None:
        peer.failures += 1
        peer.last_failure = now
        peer.next_allowed = max(peer.next_allowed, now + _delay(peer.failures, free, self._base))
        self._bucket(bucket, client, name).failures += 1

    def _bucket(self, account: str, client: str, name: str | None = None) -> _Bucket:
        """The open window's counts for ``account`` (a real account, ``_UNKNOWN`` or
        ``_INVALID``: so the number of buckets is bounded by the number of accounts)."""
        if self._window_start is None:
            self._window_start = datetime.now(timezone.utc)
            timer = threading.Timer(self._window, self.flush)
            timer.daemon = True
            timer.start()
        bucket = self._buckets.setdefault(account, _Bucket())
        bucket.note(client, name if name is not None else account)
        return bucket

    def _bucket_of(self, username: str) -> str:
        return username if username in self._real or username in self._locked else _UNKNOWN

    # ------------------------------------------------------------------ the log
    def flush(self) -> int:
        """Write one ``user.login_failed`` event per bucket of the window that is open now
        (also run by a timer at the window's end); returns the number of events."""
        with self._lock:
            buckets, start = self._buckets, self._window_start
            self._buckets, self._window_start = {}, None
        if start is None:
            return 0
        written = 0
        for account, bucket in sorted(buckets.items()):
            try:
                self._ledger.record_login_failures(
                    account=account, failures=bucket.failures, throttled=bucket.throttled,
                    clients=len(bucket.clients), names=len(bucket.names), window_start=start,
                    window_seconds=self._window,
                )
                written += 1
            except Exception:  # noqa: BLE001 - the login path must not fail on the log's account
                log.exception("could not log failed logins for %s", json.dumps(account))
        return written


class LoginGate:
    """ASGI middleware in front of Gradio's ``POST /login``: refuses a body over 16 KiB
    before anything parses it, and passes the client's address to the ``LoginGuard``."""

    def __init__(self, app: Any, guard: LoginGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ("/login", "/login/"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        body = b""
        if declared.isdigit() and int(declared) <= _MAX_BODY_BYTES:
            more = True
            while more and len(body) <= _MAX_BODY_BYTES:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
        if not declared.isdigit() or int(declared) > _MAX_BODY_BYTES or len(body) > _MAX_BODY_BYTES:
            self.guard.refuse_request(client)
            await _send_json(send, 413, {"detail": "login request too large: usernames have at most 64 characters"})
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        token = _CLIENT.set(client)
        try:
            await self.app(scope, replay, send)
        finally:
            _CLIENT.reset(token)


async def _send_json(send: Any, status: int, content: dict[str, Any]) -> None:
    payload = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
