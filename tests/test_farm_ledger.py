"""Issue 23: the ledger side of the render farm (claims, takeovers, cancels), on SQLite and PostgreSQL.

The claim is a compare-and-set on the lease a worker saw: of many workers that saw the same
lease, exactly one wins, also when they race from separate threads."""

from __future__ import annotations

import threading
from typing import Any

from ledger_support import backend_url, studio_key  # noqa: F401  (fixtures)
from studio.ledger import Ledger
from studio.ledger.records import QUEUED_OWNER


def _queued(ledger: Ledger, render_id: str) -> None:
    ledger.render_started(render_id=render_id, credential_id="c", operator="o", purpose="p", project="q",
                          inputs={}, owner_pid=None, owner_host=QUEUED_OWNER)


def _lease(ledger: Ledger, render_id: str):  # noqa: ANN202 - a RenderLease
    return next(lease for lease in ledger.render_leases() if lease.render_id == render_id)


def test_of_workers_racing_to_claim_one_queued_render_exactly_one_wins(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        _queued(ledger, "r1")
        seen = _lease(ledger, "r1")
        outcomes: list[str] = []
        barrier = threading.Barrier(6)

        def claim(n: int) -> None:
            barrier.wait()
            outcomes.append(ledger.claim_render("r1", seen=seen, owner_pid=1000 + n, owner_host="h", worker=f"w{n}",
                                                max_claims=3))

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert sorted(outcomes) == ["claimed"] + ["held"] * 5
        (event,) = [e for e in ledger.events() if e.kind == "render.claimed"]
        assert _lease(ledger, "r1").owner_pid == event.data["pid"] and event.data["claim"] == 1
        assert ledger.verify().ok


def test_a_lapsed_lease_is_taken_over_and_given_up_after_max_claims(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        _queued(ledger, "r2")
        for n in range(2):  # two workers take it in turn (each judged the one before gone)
            assert ledger.claim_render("r2", seen=_lease(ledger, "r2"), owner_pid=10 + n, owner_host="h",
                                       worker=f"w{n}", max_claims=2) == "claimed"
        assert ledger.render_claims("r2") == 2

        assert ledger.claim_render("r2", seen=_lease(ledger, "r2"), owner_pid=99, owner_host="h", worker="w9",
                                   max_claims=2) == "exhausted"
        record = ledger.find_render("r2")
        assert record.status == "failed" and record.error == "LeaseExhausted" and "after 2 workers" in record.failure_reason
        assert ledger.claim_render("r2", seen=None, owner_pid=1, owner_host="h",
                                   worker="w", max_claims=5) == "done"  # a failed render is never claimed again
        assert ledger.verify().ok


def test_cancel_fails_a_queued_render_at_once_and_asks_a_running_one_to_stop(backend_url: str, studio_key: Any) -> None:  # noqa: F811
    with Ledger.open(backend_url, studio_key=studio_key) as ledger:
        _queued(ledger, "queued")
        _queued(ledger, "running")
        ledger.claim_render("running", seen=_lease(ledger, "running"), owner_pid=7, owner_host="h", worker="w",
                            max_claims=3)

        assert ledger.request_cancel("queued", actor="alice") == "cancelled"
        assert ledger.request_cancel("running", actor="alice") == "requested"
        assert ledger.request_cancel("nonexistent", actor="alice") == "done"

        queued = ledger.find_render("queued")
        assert queued.status == "failed" and queued.error == "RenderCancelled" and "alice" in queued.failure_reason
        assert ledger.claim_render("queued", seen=None, owner_pid=1, owner_host="h", worker="w", max_claims=3) == "done"
        assert ledger.find_render("running").status == "started"  # its owner stops it (pipeline)
        assert ledger.cancel_requested("running") == "alice" and ledger.cancel_requested("queued") is None
        assert ledger.verify().ok
