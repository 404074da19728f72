"""Concurrent appends from threads and processes never fork the chain; a held lock gives LedgerBusy."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger_support import append_worker, backend_url, key_pem, studio_key  # noqa: F401  (fixtures)
from studio.ledger import Ledger, LedgerBusy

THREADS, PROCESSES, PER_WRITER, EVERY = 8, 4, 12, 7


def _assert_one_chain(ledger: Ledger, expected: int) -> None:
    report = ledger.verify()
    assert report.ok, report.reason
    assert report.events_checked == expected
    assert [e.seq for e in ledger.events()] == list(range(1, expected + 1))
    assert [c.seq for c in ledger.checkpoints()] == list(range(EVERY, expected + 1, EVERY))


@pytest.mark.slow
def test_threads_and_processes_append_one_chain(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key, checkpoint_every=EVERY, busy_timeout=60) as ledger:
        # forkserver: the heavy imports happen once in the server, not in every worker, and no
        # worker inherits this process's threads or open connections.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ledger_support", "studio.ledger"])
        with ctx.Pool(PROCESSES) as pool:
            jobs = [
                pool.apply_async(append_worker, (backend_url, key_pem(studio_key), w, PER_WRITER, EVERY, 0.02))
                for w in range(PROCESSES)
            ]
            _wait_for_first_process_event(ledger)  # so that threads and processes really overlap
            start = threading.Barrier(THREADS)

            def thread_writer(w: int) -> list[int]:
                start.wait()
                seqs = []
                for i in range(PER_WRITER):
                    seqs.append(ledger.append("note", {"thread": w, "i": i}, actor=f"t{w}").seq)
                    time.sleep(0.01)
                return seqs

            with ThreadPoolExecutor(THREADS) as threads:
                thread_seqs = [s for seqs in threads.map(thread_writer, range(THREADS)) for s in seqs]
            process_seqs = [s for job in jobs for s in job.get(timeout=300)]
        total = (THREADS + PROCESSES) * PER_WRITER
        assert sorted(thread_seqs + process_seqs) == list(range(1, total + 1))  # every append got its own seq
        _assert_one_chain(ledger, total)
        actors = [e.actor for e in ledger.events()]
        assert set(actors) == {f"t{w}" for w in range(THREADS)} | {f"proc{w}" for w in range(PROCESSES)}
        switches = sum(a[0] != b[0] for a, b in zip(actors, actors[1:]))  # thread <-> process handovers
        assert switches >= 4, "threads and processes did not overlap"


def _wait_for_first_process_event(ledger: Ledger, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.actor.startswith("proc") for e in ledger.events(limit=5)):
        assert time.monotonic() < deadline, "no worker process appended anything"
        time.sleep(0.05)


def _hold_lock(url: str, ready: threading.Event, release: threading.Event) -> None:
    """Another client takes an exclusive lock on the database and sits on it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()
        return
    engine = create_engine(url)
    with engine.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        ready.set()
        release.wait(30)
    engine.dispose()


def test_held_lock_gives_ledger_busy_and_writes_nothing(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key, busy_timeout=0.3) as ledger:
        ledger.append("note", {"before": True}, actor="a")
        ready, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_lock, args=(backend_url, ready, release))
        holder.start()
        try:
            assert ready.wait(10)
            with pytest.raises(LedgerBusy) as caught:
                ledger.render_started(
                    render_id="r1", credential_id="c", operator="op", purpose="film", project="p", inputs={}
                )
            assert "locked" in caught.value.user_message()
        finally:
            release.set()
            holder.join()
        assert ledger.find_render("r1") is None
        assert [e.seq for e in ledger.events()] == [1]
        ledger.append("note", {"after": True}, actor="a")  # works again once the lock is gone
        assert ledger.verify().ok
