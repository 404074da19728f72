"""Ledger benchmark: appends per second (1 and 8 writer threads) and verify() time for 100k events.

    .venv/bin/python benchmarks/ledger.py [--events 100000] [--appends 400]

Runs on SQLite (a temporary file) and on PostgreSQL: ``DATABASE_URL_TEST`` if set, otherwise
a throwaway server started with ``scripts/pg`` (skipped when that fails). The 100k-event chain
is built by bulk insert through the same hashing and signing code the ledger uses
(``studio.ledger.chain``), plus 100 enrolled issuers and 100 users through the ledger's own
methods (200 state rows for verify to compare), then ``Ledger.verify()`` recomputes it all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consent.keys import did_key_from_public, generate_keypair  # noqa: E402
from studio.ledger import Ledger  # noqa: E402
from studio.ledger.chain import GENESIS_HASH, canonical_data, event_hash, format_time, sign_checkpoint  # noqa: E402
from studio.ledger.tables import CheckpointRow, EventRow  # noqa: E402


def appends_per_second(url: str, key: object, *, writers: int, total: int) -> float:
    with Ledger.open(url, studio_key=key, busy_timeout=60) as ledger:  # type: ignore[arg-type]
        per = total // writers

        def work(w: int) -> None:
            for i in range(per):
                ledger.append("bench", {"writer": w, "i": i}, actor=f"w{w}")

        start = time.perf_counter()
        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(work, range(writers)))
        elapsed = time.perf_counter() - start
        assert ledger.verify().ok
    return per * writers / elapsed


def bulk_chain(url: str, key: object, *, events: int, checkpoint_every: int = 100) -> None:
    """Insert a valid chain of ``events`` rows (and signed checkpoints) in batches."""
    Ledger.upgrade(url)
    did = did_key_from_public(key.public_key())  # type: ignore[attr-defined]
    engine = create_engine(url)
    start_time = datetime(2026, 1, 1, tzinfo=timezone.utc)
    prev, batch, checkpoints, last_sig = GENESIS_HASH, [], [], ""
    with engine.begin() as conn:
        for seq in range(1, events + 1):
            when = start_time + timedelta(milliseconds=seq)
            data = canonical_data({"render_id": uuid.UUID(int=seq).hex, "operator": "bench", "n": seq})
            digest = event_hash(seq, "render.started", "bench", format_time(when), data, prev)
            batch.append(dict(seq=seq, kind="render.started", actor="bench", created_at=when, data=data, prev_hash=prev, hash=digest))
            if seq % checkpoint_every == 0:
                sig = sign_checkpoint(
                    key, seq=seq, head_hash=digest, created_at=when, studio_did=did, prev_signature=last_sig  # type: ignore[arg-type]
                )
                checkpoints.append(
                    dict(seq=seq, head_hash=digest, created_at=when, studio_did=did, signature=sig, prev_signature=last_sig)
                )
                last_sig = sig
            prev = digest
            if len(batch) == 5000:
                conn.execute(insert(EventRow), batch)
                batch = []
        if batch:
            conn.execute(insert(EventRow), batch)
        if checkpoints:
            conn.execute(insert(CheckpointRow), checkpoints)
    engine.dispose()


def add_state(url: str, key: object, *, count: int = 100) -> None:
    """State rows and their events on top of the bulk chain (verify replays and compares them)."""
    with Ledger.open(url, studio_key=key, upgrade=False) as ledger:  # type: ignore[arg-type]
        for i in range(count):
            did = did_key_from_public(generate_keypair().public_key())
            ledger.enroll_issuer(did, name=f"issuer {i}", actor="bench")
            ledger.add_user(f"user{i}", password_hash=f"$argon2id$bench${i}", role="operator", actor="bench")


def verify_seconds(url: str, key: object, *, repeats: int = 3) -> tuple[float, int]:
    with Ledger.open(url, studio_key=key, upgrade=False) as ledger:  # type: ignore[arg-type]
        times, report = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            report = ledger.verify()
            times.append(time.perf_counter() - start)
        assert report is not None and report.ok, report
        return statistics.median(times), report.events_checked


def _pg_database(server: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=400)
    args = parser.parse_args()
    key = generate_keypair()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    backends: dict[str, object] = {"sqlite": lambda n: f"sqlite:///{tmp / f'{n}.sqlite3'}"}
    pg_dir = None
    server = os.environ.get("DATABASE_URL_TEST")
    if not server:
        pg_dir = tempfile.mkdtemp(prefix="ledger-bench-pg-")
        started = subprocess.run([str(ROOT / "scripts" / "pg"), "start", pg_dir], capture_output=True, text=True)
        server = started.stdout.strip() if started.returncode == 0 else None
    if server:
        backends["postgresql"] = lambda n: _pg_database(server)
    rows = []
    try:
        for name, make in backends.items():
            one = appends_per_second(make("a1"), key, writers=1, total=args.appends)  # type: ignore[operator]
            eight = appends_per_second(make("a8"), key, writers=8, total=args.appends)  # type: ignore[operator]
            url = make("v")  # type: ignore[operator]
            start = time.perf_counter()
            bulk_chain(url, key, events=args.events)
            add_state(url, key)
            build = time.perf_counter() - start
            seconds, checked = verify_seconds(url, key)
            rows.append((name, one, eight, checked, build, seconds))
    finally:
        if pg_dir:
            subprocess.run([str(ROOT / "scripts" / "pg"), "stop", pg_dir], capture_output=True)
    print(f"{'backend':<11} {'appends/s 1w':>13} {'appends/s 8w':>13} {'events':>8} {'build s':>8} {'verify s':>9} {'us/event':>9}")
    for name, one, eight, checked, build, seconds in rows:
        print(f"{name:<11} {one:>13.0f} {eight:>13.0f} {checked:>8} {build:>8.2f} {seconds:>9.2f} {seconds / checked * 1e6:>9.1f}")
    print(f"(verify: median of 3; {os.cpu_count()} CPUs; appends use one transaction each)")


if __name__ == "__main__":
    main()
