"""Issue 20, items 7 and 10: crash windows are closed, and one data folder serves many processes.

Real renders in child processes (tests/render_child.py) on a real SQLite ledger: a render killed
between the ledger commit and the move into place is delivered or recorded lost at the next
start; a live render in one process survives another process starting on the same folder; a
render whose owner was killed is marked failed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio import media
from studio_support import short_driving_clip, small_pipeline

pytestmark = pytest.mark.slow

_CHILD = Path(__file__).with_name("render_child.py")


@pytest.fixture(scope="module")
def template(tmp_path_factory, astronaut):
    """A data folder with the demo material, made once; each test works on a copy."""
    from studio.demo import ensure_demo

    home = tmp_path_factory.mktemp("template") / "home"
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(home.parent / "clip.mp4", astronaut, frames=8)
    pipeline.ledger.close()
    return home, demo, clip


@pytest.fixture()
def folder(template, tmp_path):
    """A fresh copy of the template data folder, no pipeline open on it in this process."""
    import shutil

    source, demo, clip = template
    home = tmp_path / "home"
    shutil.copytree(source, home)
    signals = tmp_path / "signals"
    signals.mkdir()
    return home, demo, clip, signals


def _child(folder, mode, *extra):
    home, demo, clip, signals = folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, str(_CHILD), str(home), demo.credential_id, str(demo.photo), str(clip), mode, str(signals), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(path: Path, proc, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child ended early ({proc.returncode}): {proc.stdout.read()} {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the child did not get to the point")
        time.sleep(0.05)


def _events(pipeline, kind):
    return [e for e in pipeline.ledger.events() if e.kind == kind]


def _killed_after_commit(folder):
    """Run a render that SIGKILLs itself right after its ledger commit; returns its render id."""
    proc = _child(folder, "die-after-commit")
    proc.communicate(timeout=300)
    assert proc.returncode == -9, "the child was to kill itself after the commit"
    home = folder[0]
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        (render_id,) = db.execute("SELECT render_id FROM renders WHERE status = 'finished'").fetchone()
    assert not (home / "outputs" / f"{render_id}.mp4").exists()
    assert (home / "work" / render_id / "signed.mp4").is_file()  # committed, not yet moved
    return render_id


# --- item 7: the crash window between the ledger commit and the move -----------------------------

def test_a_render_killed_after_its_commit_is_delivered_at_the_next_start(folder):
    render_id = _killed_after_commit(folder)

    restarted = small_pipeline(folder[0])  # from_config runs recover()

    out = restarted.config.outputs_dir / f"{render_id}.mp4"
    receipt = restarted.config.outputs_dir / f"{render_id}.receipt.json"
    record = restarted.ledger.find_render(render_id)
    assert out.is_file() and media.sha256_file(out) == record.output_sha256
    finished = [e for e in _events(restarted, "render.finished") if e.data["render_id"] == render_id][0]
    assert hashlib.sha256(receipt.read_bytes()).hexdigest() == finished.data["receipt_sha256"]
    assert record.status == "finished" and not _events(restarted, "render.lost")
    assert not any(restarted.work_dir.iterdir())
    assert restarted.ledger.verify().ok


def test_a_render_whose_signed_file_is_gone_is_recorded_lost(folder):
    render_id = _killed_after_commit(folder)
    (folder[0] / "work" / render_id / "signed.mp4").write_bytes(b"not the signed output")

    restarted = small_pipeline(folder[0])

    lost = _events(restarted, "render.lost")
    assert [e.data["render_id"] for e in lost] == [render_id] and "lost" in lost[0].data["reason"]
    assert restarted.ledger.find_render(render_id).status == "lost"
    assert not (restarted.config.outputs_dir / f"{render_id}.mp4").exists()
    assert not any(restarted.work_dir.iterdir())
    assert restarted.ledger.verify().ok
    small_pipeline(folder[0])  # a second start records nothing more
    assert len(_events(restarted, "render.lost")) == 1


def test_our_watermark_with_its_ledger_rows_deleted_does_not_pass_audit(folder, capsys):
    from studio.cli import main
    from studio.render.pipeline import RenderRequest

    home, demo, clip, _ = folder
    pipeline = small_pipeline(home)
    result = pipeline.render(RenderRequest(photo=demo.photo, driving=clip, credential_id=demo.credential_id,
                                           purpose="education", project="Orbit (demo documentary)", operator="t"))
    assert main(["--home", str(home), "audit", "inspect", str(result.video_path)]) == 0
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        db.execute("DELETE FROM renders WHERE render_id = ?", (result.render_id,))
    capsys.readouterr()

    code = main(["--home", str(home), "audit", "inspect", str(result.video_path)])
    out = capsys.readouterr().out
    assert code != 0, out
    from studio.audit import EXIT_NO_RECORD

    assert code == EXIT_NO_RECORD
    assert "no render with this watermark" in out and "no record" in out


# --- item 10: one data folder, many processes ----------------------------------------------------

def test_starting_a_pipeline_does_not_touch_a_render_running_in_another_process(folder):
    home, _, _, signals = folder
    proc = _child(folder, "wait", "0.2")  # heartbeat every 0.2 s
    try:
        _wait_for(signals / "started", proc)
        other = small_pipeline(home)  # this process starts on the same data folder: recover() runs
        assert len(list(other.work_dir.iterdir())) == 1  # the running render's work folder is still there
        (lease,) = other.ledger.render_leases()
        assert lease.owner_pid == proc.pid and lease.status == "started"
        time.sleep(1.0)
        assert other.ledger.render_leases()[0].heartbeat_at > lease.heartbeat_at  # the waiting render beats
        (signals / "go").touch()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err[-2000:]
    render_id = out.strip().splitlines()[-1]
    assert other.ledger.find_render(render_id).status == "finished"
    assert (other.config.outputs_dir / f"{render_id}.mp4").is_file()
    assert not _events(other, "render.failed")  # nothing was called interrupted
    assert other.ledger.verify().ok


def test_a_render_whose_owner_was_killed_is_failed_at_the_next_start(folder):
    home, _, _, signals = folder
    proc = _child(folder, "wait")
    try:
        _wait_for(signals / "started", proc)
    finally:
        proc.kill()  # SIGKILL: no chance to log anything
        proc.wait()

    restarted = small_pipeline(home)

    failed = _events(restarted, "render.failed")
    assert len(failed) == 1 and "interrupted" in failed[0].data["reason"]
    assert restarted.ledger.find_render(failed[0].data["render_id"]).status == "failed"
    assert not any(restarted.work_dir.iterdir())


def test_a_lease_from_another_host_is_taken_over_only_when_its_heartbeat_is_stale(folder):
    from studio.render.pipeline import RenderPipeline

    home = folder[0]
    pipeline = small_pipeline(home)
    for render_id in ("stale", "fresh"):
        pipeline.ledger.render_started(render_id=render_id, credential_id="c", operator="o", purpose="p",
                                       project="q", inputs={}, owner_pid=1, owner_host="another-host")
        (pipeline.work_dir / render_id).mkdir()
    # "stale" last beat two minutes ago (its owner on the other host stopped); "fresh" beats now.
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from studio.ledger.tables import RenderRow

    with pipeline.ledger.engine.begin() as db:
        db.execute(update(RenderRow).where(RenderRow.render_id == "stale")
                   .values(heartbeat_at=datetime.now(timezone.utc) - timedelta(minutes=2)))
    pipeline.ledger.heartbeat("fresh")

    # A fresh lease naming this very process, for a render this process is not running: a dead
    # process had the pid before (pids are reused, e.g. in containers), so it is gone too.
    import socket

    pipeline.ledger.render_started(render_id="reused-pid", credential_id="c", operator="o", purpose="p",
                                   project="q", inputs={}, owner_pid=os.getpid(), owner_host=socket.gethostname())

    RenderPipeline.from_config(pipeline.config, lease_timeout_seconds=60)

    assert pipeline.ledger.find_render("stale").status == "failed"
    assert pipeline.ledger.find_render("fresh").status == "started"
    assert pipeline.ledger.find_render("reused-pid").status == "failed"
    assert sorted(p.name for p in pipeline.work_dir.iterdir()) == ["fresh"]
