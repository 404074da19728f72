"""Hostile logins against the real Gradio app over HTTP (``POST /login``, as the login page and
gradio_client send it): huge usernames do not grow the ledger, guessing locks the account until
an admin unlocks it, unknown names take as long as real ones, a client that keeps failing is
slowed down without slowing others, and Argon2 checks do not stall the server.

Each test speaks from its own loopback address (127.0.0.N), so per-client throttling in one test
does not spill into the next.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from studio_support import free_port, small_pipeline

pytestmark = pytest.mark.slow

_LOCKOUT = 5
_DELAY = 0.05


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from studio.users import create_user
    from studio.web.app import build_app, launch

    home = tmp_path_factory.mktemp("login-home")
    pipeline = small_pipeline(home, login_lockout_failures=_LOCKOUT, login_delay_seconds=_DELAY)
    accounts = [("admin", "admin"), ("alice", "operator"), ("bob", "operator"), ("carol", "auditor")]
    for name, role in accounts + [(f"storm-{n}", "auditor") for n in range(1, 9)]:
        create_user(pipeline.ledger, name, f"{name}-correct-horse", role, actor="test")
    port = free_port()
    app = build_app(pipeline)
    launch(app, pipeline, host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}", pipeline, home
    app.close()


def _http(address: str):
    import httpx

    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def _login(http, url: str, user: str, password: str) -> Any:
    return http.post(f"{url}/login", data={"username": user, "password": password})


def _patient_login(http, url: str, user: str, password: str) -> Any:
    """Log in, waiting out 'try again in' answers (the growing delays) as a person would."""
    for _ in range(50):
        response = _login(http, url, user, password)
        if "try again" not in response.text:
            return response
        time.sleep(_DELAY)
    raise AssertionError("still throttled after 50 tries")


def _ledger_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("ledger.sqlite3*"))


def test_megabyte_usernames_do_not_grow_the_ledger(server):
    url, pipeline, home = server
    before_events = len(pipeline.ledger.events())
    pipeline.ledger.checkpoint()  # settle the WAL before measuring
    before = _ledger_bytes(home)
    with _http("127.0.0.2") as http:
        answers = [_login(http, url, "x" * 1_000_000 + str(i), "whatever") for i in range(20)]
    assert all(a.status_code in (400, 413) for a in answers), {a.status_code for a in answers}
    assert "64 characters" in answers[0].text
    grown = _ledger_bytes(home) - before
    assert grown < 200_000, f"the ledger grew by {grown} bytes"
    assert len(pipeline.ledger.events()) - before_events <= 2  # at most the checkpoint's own event


def test_failed_logins_are_logged_as_bounded_counts(server):
    from studio.web.login import LoginGuard

    url, pipeline, _ = server
    guard = LoginGuard(pipeline.ledger, lockout_failures=100, delay_seconds=0)
    for i in range(8):
        guard.precheck(f"nobody-{i}", "203.0.113.9")
        guard.attempt(f"nobody-{i}", "wrong password", "203.0.113.9")
        guard._release(f"nobody-{i}", "203.0.113.9")
    with pytest.raises(Exception):
        guard.precheck("y" * 5000, "203.0.113.9")
    before = len(pipeline.ledger.events())
    assert guard.flush() == 2
    logged = pipeline.ledger.events()[before:]
    assert sorted(e.data["account"] for e in logged) == ["(invalid)", "(unknown)"]
    unknown = next(e for e in logged if e.data["account"] == "(unknown)")
    assert unknown.data["failures"] == 8 and unknown.data["names"] == 8 and unknown.data["clients"] == 1
    assert all("wrong password" not in repr(e.data) and len(repr(e.data)) < 400 for e in logged)


def test_guessing_locks_the_account_until_an_admin_unlocks_it(server, monkeypatch):
    from studio.cli import main

    url, pipeline, home = server
    with _http("127.0.0.3") as http:
        for _ in range(_LOCKOUT):
            assert _patient_login(http, url, "alice", "a wrong guess").status_code == 400
        refused = _patient_login(http, url, "alice", "alice-correct-horse")
        assert refused.status_code == 400 and "locked" in refused.text
        # an unknown name answers the same way after as many failures
        for _ in range(_LOCKOUT):
            _patient_login(http, url, "mallory", "a wrong guess")
        assert "locked" in _patient_login(http, url, "mallory", "anything").text
    assert "alice" in pipeline.ledger.locked_users()
    monkeypatch.setenv("STUDIO_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["users", "unlock", "alice"]) == 0  # the admin, from another process's CLI
    with _http("127.0.0.4") as http:
        assert _patient_login(http, url, "alice", "alice-correct-horse").status_code == 200
    assert any(e.kind == "user.unlocked" for e in pipeline.ledger.events())


def test_an_admin_unlocks_from_the_users_tab(server):
    from gradio_client import Client

    url, pipeline, _ = server
    with _http("127.0.0.5") as http:
        for _ in range(_LOCKOUT):
            _patient_login(http, url, "bob", "a wrong guess")
        assert "locked" in _patient_login(http, url, "bob", "bob-correct-horse").text
    admin = Client(f"{url}/", auth=("admin", "admin-correct-horse"), verbose=False, analytics_enabled=False)
    table = admin.predict(api_name="/list_users")
    assert ["bob", "operator", "locked"] in table["data"]
    message, _ = admin.predict("bob", api_name="/unlock_user")
    assert "Unlocked" in message
    with _http("127.0.0.6") as http:
        assert _patient_login(http, url, "bob", "bob-correct-horse").status_code == 200


def test_unknown_names_take_as_long_as_real_ones(server):
    url, _, _ = server

    def timed(http, user: str) -> float:
        t0 = time.perf_counter()
        assert _patient_login(http, url, user, "a wrong guess").status_code == 400
        return time.perf_counter() - t0

    with _http("127.0.0.7") as http:
        timed(http, "warm-up")
        known = [timed(http, "carol") for _ in range(2)]  # below the account's free failures
        unknown = [timed(http, f"ghost-{i}") for i in range(3)]
    assert statistics.median(unknown) > 0.5 * statistics.median(known), (known, unknown)


def test_a_failing_client_is_slowed_down_and_others_are_not(server):
    url, _, _ = server
    with _http("127.0.0.8") as http:
        for i in range(25):  # over-long names: refused at once, and counted against the client
            _login(http, url, f"{i:065d}", "guess")
        answers = [_login(http, url, f"spray-{i}", "guess") for i in range(3)]
        assert all("try again" in a.text and "Retry-After" in a.headers for a in answers), [a.text for a in answers]
    with _http("127.0.0.9") as http:
        assert _login(http, url, "carol", "carol-correct-horse").status_code == 200


def test_password_checks_do_not_stall_other_requests(server):
    url, _, _ = server
    finished: list[float] = []

    def bad_login(n: int) -> None:
        with _http(f"127.0.1.{n}") as http:
            _login(http, url, f"storm-{n}", "guess")  # real accounts: a full Argon2 check each
        finished.append(time.perf_counter())

    with _http("127.0.0.10") as http:
        http.get(f"{url}/")  # warm
        start = time.perf_counter()
        threads = [threading.Thread(target=bad_login, args=(n,)) for n in range(1, 9)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        latencies = []
        while any(t.is_alive() for t in threads):
            t0 = time.perf_counter()
            assert http.get(f"{url}/").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.02)
        for t in threads:
            t.join()
    storm = max(finished) - start
    assert latencies and max(latencies) < max(0.5, storm / 2), (max(latencies), storm)


@pytest.mark.postgres
def test_long_names_are_refused_cleanly_on_postgresql(postgres_url, tmp_path):
    from ledger_support import create_pg_database, drop_pg_database
    from studio.users import InvalidUsername, authenticate, create_user
    from studio.web.login import LoginGuard

    url, name = create_pg_database(postgres_url)
    try:
        pipeline = small_pipeline(tmp_path / "pg-home", database_url=url)
        guard = LoginGuard(pipeline.ledger, delay_seconds=0)
        for long_name in ("n" * 65, "n" * 300, "n" * 100_000):
            with pytest.raises(InvalidUsername):  # before: psycopg's StringDataRightTruncation
                authenticate(pipeline.ledger, long_name, "a password")
            with pytest.raises(InvalidUsername):
                guard.precheck(long_name, "198.51.100.1")
            with pytest.raises(InvalidUsername):
                create_user(pipeline.ledger, long_name, "a long enough password", "operator", actor="test")
        pipeline.ledger.record_login("n" * 5000, ok=False)  # even the low-level call stays bounded
        assert guard.flush() == 1
        assert pipeline.ledger.verify().ok
        pipeline.ledger.close()
    finally:
        drop_pg_database(postgres_url, name)


def test_a_hand_promoted_users_row_cannot_log_in(server):
    """An operator promoted to admin by editing the users table gets a clear refusal at login
    (the row disagrees with the chained events), not a server error and not a session."""
    import sqlite3

    url, pipeline, home = server
    from studio.users import create_user

    create_user(pipeline.ledger, "trudy", "trudy-correct-horse", "operator", actor="test")
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        db.execute("UPDATE users SET role = 'admin' WHERE username = 'trudy'")
    with _http("127.0.0.23") as http:
        answer = _login(http, url, "trudy", "trudy-correct-horse")
    assert answer.status_code == 400, (answer.status_code, answer.text)
    assert "does not match the ledger" in answer.text
