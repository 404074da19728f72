"""Issue 20, item 5 seen from an auditor: every output (its C2PA manifest) and every receipt
carries the ledger's signed checkpoint at the render's start, so ``audit inspect`` on any of
them proves today's ledger still extends it, and a ledger cut back below it is reported as a
rollback, not as "no record" or "ours".

Real pipeline at small size, real SQLite file edited with raw SQL as an attacker would.
"""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any

import pytest

from studio.audit import EXIT_OURS, EXIT_RECORDS_DISAGREE, audit_video
from studio.render.pipeline import RenderRequest
from studio_support import short_driving_clip, small_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: Any, astronaut: Any) -> Any:
    """Two renders, A then B, delivered from one data folder (copied per test)."""
    from studio.demo import ensure_demo

    home = tmp_path_factory.mktemp("rollback") / "home"
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(home.parent / "clip.mp4", astronaut, frames=6)
    results = []
    for _ in range(2):
        request = RenderRequest(photo=demo.photo, driving=clip, credential_id=demo.credential_id, purpose="film",
                                project="Orbit (demo documentary)", operator="tester")
        results.append(pipeline.render(request))
    pipeline.ledger.close()
    return home, results


@pytest.fixture()
def studio(rendered: Any, tmp_path: Any) -> Any:
    source, results = rendered
    home = tmp_path / "home"
    shutil.copytree(source, home)
    outputs = [home / "outputs" / r.video_path.name for r in results]
    receipts = [home / "outputs" / r.receipt_path.name for r in results]
    return home, results, outputs, receipts


def _cut_back_before(home: Any, render_id: str) -> None:
    """Delete the render's started event and everything after it, their checkpoints, its row, and
    the data folder's own checkpoint copy: the ledger as it was before the render began."""
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        (seq,) = db.execute(
            "SELECT min(seq) FROM events WHERE kind = 'render.started' AND data LIKE ?", (f"%{render_id}%",)
        ).fetchone()
        db.execute("DELETE FROM events WHERE seq >= ?", (seq,))
        db.execute("DELETE FROM checkpoints WHERE seq >= ?", (seq,))
        db.execute("DELETE FROM renders WHERE render_id = ?", (render_id,))
    (home / "ledger-checkpoint.txt").unlink(missing_ok=True)


def _audit(home: Any, video: Any, receipt: Any = None) -> Any:
    from studio.config import StudioConfig

    return audit_video(video, config=StudioConfig(home=home), receipt_path=receipt)


def test_the_manifest_carries_the_checkpoint_of_the_render_start(studio: Any) -> None:
    from studio.ledger import SignedCheckpoint

    home, results, outputs, _ = studio
    report = _audit(home, outputs[1])
    assert report.exit_code == EXIT_OURS, report.verdict
    note = report.manifest.ledger_checkpoint
    assert note == results[1].receipt["ledger_checkpoint"]
    assert SignedCheckpoint.from_note(note).size > 0
    assert report.log and all(check["extends"] for check in report.log)


def test_an_output_whose_ledger_was_cut_back_is_reported_as_a_rollback(studio: Any) -> None:
    home, results, outputs, _ = studio
    _cut_back_before(home, results[1].render_id)
    report = _audit(home, outputs[1])
    assert report.exit_code == EXIT_RECORDS_DISAGREE, report.verdict
    assert "rolled back" in report.verdict
    # The earlier render's history is intact: it still audits as ours.
    assert _audit(home, outputs[0]).exit_code == EXIT_OURS


def test_a_receipt_whose_ledger_was_cut_back_is_reported_as_a_rollback(studio: Any) -> None:
    home, results, outputs, receipts = studio
    _cut_back_before(home, results[1].render_id)
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        db.execute("DELETE FROM events")  # down to zero events
        db.execute("DELETE FROM checkpoints")
    report = _audit(home, outputs[1], receipts[1])
    assert report.exit_code == EXIT_RECORDS_DISAGREE, report.verdict
    assert "rolled back" in report.verdict


def test_the_cli_exits_non_zero_and_says_rolled_back(studio: Any, capsys: Any) -> None:
    from studio.cli import main

    home, results, outputs, _ = studio
    _cut_back_before(home, results[0].render_id)
    code = main(["--home", str(home), "audit", "inspect", str(outputs[0])])
    out = capsys.readouterr().out
    assert code == EXIT_RECORDS_DISAGREE, out
    assert "rolled back" in out


def test_a_receipt_alone_detects_the_rollback(studio: Any, capsys: Any) -> None:
    from studio.cli import main

    home, results, _, receipts = studio
    assert main(["--home", str(home), "audit", "inspect", "--receipt", str(receipts[1])]) == EXIT_OURS
    capsys.readouterr()
    _cut_back_before(home, results[1].render_id)
    code = main(["--home", str(home), "audit", "inspect", "--receipt", str(receipts[1])])
    out = capsys.readouterr().out
    assert code == EXIT_RECORDS_DISAGREE, out
    assert "rolled back" in out
