"""Issue 23: the render farm. A real redis-server on loopback, two real ``avatar-studio worker``
processes with their own work folders, one shared data folder with a real SQLite ledger.

The ledger, not the queue, decides: every render is admitted (``render.started``) before it is
queued, claimed by exactly one worker at a time, and delivered at most once."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from farm_support import Farm, farm_env, start_redis
from ledger_support import create_pg_database, drop_pg_database
from studio import media
from studio.config import StudioConfig
from studio.render.pipeline import RenderPipeline, RenderRequest
from studio_support import short_driving_clip

pytestmark = pytest.mark.slow

_MAX_RENDER_SECONDS = "6"  # the visibility timeout is 1.5 x this + 1: a dead worker's task moves on in ~10 s


@pytest.fixture(scope="module")
def farm(tmp_path_factory, astronaut):
    from studio.demo import ensure_demo

    root = tmp_path_factory.mktemp("farm")
    redis = start_redis(root / "redis")
    home = root / "home"
    # The ledger a farm uses: PostgreSQL when scripts/test started one (a fresh database), else SQLite.
    server = os.environ.get("DATABASE_URL_TEST")
    database = create_pg_database(server) if server else None
    extra = {"DATABASE_URL": database[0]} if database else {}
    farm = Farm(home=home, redis=redis,
                env=farm_env(home, redis, STUDIO_MAX_RENDER_SECONDS=_MAX_RENDER_SECONDS, **extra))
    pipeline = None
    try:
        config = StudioConfig(home=home, broker_url=redis.url, max_render_seconds=int(_MAX_RENDER_SECONDS),
                              database_url=database[0] if database else None)
        pipeline = RenderPipeline.from_config(config)
        demo = ensure_demo(config, pipeline)
        clips = root / "clips"
        clips.mkdir()
        short = short_driving_clip(clips / "short.mp4", astronaut, frames=6)
        long = short_driving_clip(clips / "long.mp4", astronaut, frames=60)
        farm.start_worker("wa")
        farm.start_worker("wb")
        farm.wait_ready()
        from studio.render.farm import Farm as Dispatcher

        yield farm, Dispatcher(pipeline), demo, short, long
    finally:
        farm.stop()
        redis.stop()
        if pipeline is not None:
            pipeline.ledger.close()
        if database:
            drop_pg_database(server, database[1])


def _request(demo, clip, **kw) -> RenderRequest:
    fields = dict(photo=demo.photo, driving=clip, credential_id=demo.credential_id, purpose="education",
                  project="Orbit (demo documentary)", operator="farm-test")
    fields.update(kw)
    return RenderRequest(**fields)


def _events(ledger, kind, render_id=None):
    return [e for e in ledger.events() if e.kind == kind and (render_id is None or e.data.get("render_id") == render_id)]


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _payload_of_file(pipeline, path: Path) -> int:
    from watermark import Watermarker

    frames = np.stack(list(media.VideoReader(path)))
    return Watermarker(pipeline.watermark_key).detect(frames).payload


def test_eight_renders_through_the_web_api_each_finish_exactly_once_across_both_workers(farm, astronaut, tmp_path):
    """The real web app (its render handler dispatches to the farm) and gradio_client, 8 at once.

    Each job uploads its own photo (one pixel apart): Gradio files uploads by content.
    """
    import re

    from gradio_client import Client, handle_file
    from PIL import Image

    from studio.web.app import build_app, launch
    from studio_support import free_port

    workers, dispatcher, demo, short, _ = farm
    pipeline = dispatcher.pipeline
    before = set(pipeline.config.outputs_dir.glob("*.mp4"))
    port = free_port()
    app = build_app(pipeline)
    launch(app, pipeline, host="127.0.0.1", port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", auth=("operator", demo.logins["operator"]), verbose=False,
                        download_files=str(tmp_path / "downloads"), analytics_enabled=False)
        jobs = []
        for i in range(8):
            photo = np.array(astronaut)
            photo[0, i] ^= 1
            Image.fromarray(photo).save(tmp_path / f"photo{i}.png")
            jobs.append(client.submit(
                credential_id=demo.credential_id, photo=handle_file(str(tmp_path / f"photo{i}.png")),
                use_reference=False, driving=handle_file(str(short)), purpose="education",
                project="Orbit (demo documentary)", animator="auto", relative=True, paste_back=True, label_ai=True,
                api_name="/render"))
        answers = [job.result(timeout=240) for job in jobs]
    finally:
        app.close()
    ids = [re.search(r"Render ([0-9a-f]{32})", answer[2]).group(1) for answer in answers]

    ledger = pipeline.ledger
    assert len(set(ids)) == 8
    claimed_by = {}
    for render_id, answer in zip(ids, answers):
        record = ledger.find_render(render_id)
        assert record.status == "finished" and record.operator == "operator"
        assert len(_events(ledger, "render.finished", render_id)) == 1
        (claim,) = _events(ledger, "render.claimed", render_id)  # one claim each: no takeover, no double
        claimed_by[render_id] = claim.data["worker"]
        # the file the web page got is the committed one and carries its own render id's payload
        video = Path(answer[0]["video"] if isinstance(answer[0], dict) else answer[0])
        assert media.sha256_file(video) == record.output_sha256
        assert media.sha256_file(pipeline.config.outputs_dir / f"{render_id}.mp4") == record.output_sha256
        assert _payload_of_file(pipeline, video) == int(render_id[:12], 16)
    assert {name.split("@")[0] for name in claimed_by.values()} == {"wa", "wb"}, claimed_by  # both workers rendered
    assert {p.name for p in set(pipeline.config.outputs_dir.glob("*.mp4")) - before} == {f"{i}.mp4" for i in ids}
    assert ledger.verify().ok
    assert not any(pipeline.config.farm_inputs_dir.iterdir())  # the queued inputs are gone with the renders
    for worker in workers.workers:
        assert not any(worker.work_dir.iterdir())


def test_queue_status_shows_each_workers_finished_renders(farm, monkeypatch, capsys):
    from studio.cli import main

    workers, dispatcher, _, _, _ = farm
    config = dispatcher.pipeline.config
    monkeypatch.setenv("STUDIO_BROKER_URL", config.broker_url)
    if config.database_url:
        monkeypatch.setenv("DATABASE_URL", config.database_url)
    capsys.readouterr()

    assert main(["--home", str(config.home), "queue", "status", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["broker_waiting"] == 0 and report["admitted_not_claimed"] == 0 and report["running"] == []
    finished = {name.split("@")[0]: counts.get("finished", 0) for name, counts in report["per_worker"].items()}
    assert set(finished) == {"wa", "wb"} and sum(finished.values()) >= 8


def test_a_credential_revoked_while_its_render_is_queued_is_refused_on_the_worker(farm, astronaut):
    from datetime import datetime, timedelta, timezone

    from consent.credential import issue_consent
    from consent.keys import did_key_from_public, load_private_key

    workers, dispatcher, demo, short, _ = farm
    pipeline = dispatcher.pipeline
    ledger = pipeline.ledger
    # A second credential of the demo subject, so revoking it leaves the other tests' one alone.
    key = load_private_key(demo.folder / "subject-demo-key.pem", passphrase=None)
    embedding = pipeline.face_analyzer().analyze(astronaut).embedding
    now = datetime.now(timezone.utc)
    document = issue_consent(
        issuer_key=key, subject_did=did_key_from_public(key.public_key()), subject_name="Eileen M. Collins (demo)",
        grantor={"role": "self"}, grantee_name="Avatar Studio demo",
        reference_image_sha256=[f"sha256:{media.sha256_file(demo.photo)}"], face_vector=[float(v) for v in embedding],
        project="Orbit (demo documentary)", purposes=["education"], max_duration_seconds=60,
        valid_from=now - timedelta(days=1), now=now - timedelta(days=1),
    )
    credential = ledger.import_credential(document, actor="farm-test", reference_embedding=[float(v) for v in embedding])

    # The workers stop taking work (a real Celery control message), the render is queued, the
    # credential revoked, then the workers take work again.

    _pause(workers, dispatcher)
    try:
        render_id = dispatcher.submit(_request(demo, short, credential_id=credential.credential_id))
        time.sleep(0.5)
        assert ledger.find_render(render_id).status == "started"
        assert not _events(ledger, "render.claimed", render_id)  # still queued
        ledger.revoke(credential.credential_id, reason="withdrawn while queued", actor="farm-test")
    finally:
        _resume(workers, dispatcher)

    from studio.errors import RenderRefused

    with pytest.raises(RenderRefused) as refused:
        dispatcher.wait(render_id, timeout=120)
    assert "revoked" in str(refused.value)
    record = ledger.find_render(render_id)
    assert record.status == "refused" and "revoked" in record.failure_reason.lower()
    (refusal,) = _events(ledger, "render.refused", render_id)
    assert refusal.data["stage"] == "worker" and refusal.data["error"] == "ConsentRevoked"
    assert len(_events(ledger, "render.claimed", render_id)) == 1
    assert not (pipeline.config.outputs_dir / f"{render_id}.mp4").exists()
    assert not (pipeline.config.farm_inputs_dir / render_id).exists()
    assert ledger.verify().ok


def _broker_idle(dispatcher, timeout: float = 60.0) -> None:
    """Until Redis holds no queued and no unacknowledged render task."""
    from studio.render.farm import QUEUE_NAME

    deadline = time.monotonic() + timeout
    with dispatcher.celery.connection_for_write() as conn:
        client = conn.default_channel.client
        while client.llen(QUEUE_NAME) or client.hlen("unacked"):
            assert time.monotonic() < deadline, "the queue did not drain"
            time.sleep(0.1)


def _said(workers, text: str) -> int:
    return sum(w.log.read_text(errors="replace").count(text) for w in workers.workers)


def test_a_task_naming_a_file_outside_the_farm_inputs_is_refused(farm):
    """A forged or corrupted task cannot make a worker read the studio's keys (or any other file)."""
    from studio.render.farm import spec_of, work_on

    _, dispatcher, demo, short, _ = farm
    pipeline = dispatcher.pipeline
    admission = pipeline.admit(_request(demo, short), queued=True)  # admitted, not sent to the queue
    spec = spec_of(pipeline.config, _request(demo, short, photo=pipeline.config.home / "demo" / "astronaut.png",
                                             driving=pipeline.config.home / "keys" / "watermark.key"))

    outcome = work_on(pipeline, admission.render_id, spec, worker="test")

    assert outcome["status"] == "refused" and "farm-inputs" in outcome["reason"]
    record = pipeline.ledger.find_render(admission.render_id)
    assert record.status == "refused" and "farm-inputs" in record.failure_reason
    assert not (pipeline.config.outputs_dir / f"{admission.render_id}.mp4").exists()


def test_inputs_swapped_on_the_shared_folder_after_admission_are_refused(farm, astronaut, tmp_path):

    workers, dispatcher, demo, short, _ = farm
    ledger = dispatcher.pipeline.ledger
    _pause(workers, dispatcher)
    try:
        render_id = dispatcher.submit(_request(demo, short))
        other = short_driving_clip(tmp_path / "other.mp4", astronaut, frames=7)
        (dispatcher.pipeline.config.farm_inputs_dir / render_id / "driving.mp4").write_bytes(other.read_bytes())
    finally:
        _resume(workers, dispatcher)

    from studio.errors import RenderRefused

    with pytest.raises(RenderRefused, match="not the ones admitted"):
        dispatcher.wait(render_id, timeout=120)
    assert ledger.find_render(render_id).error == "InputsChanged"


def test_a_render_that_cannot_be_queued_is_failed_in_the_ledger_not_dropped(farm):
    from studio.render.farm import Farm as Dispatcher
    from studio.render.farm import QueueUnavailable, make_celery
    from studio_support import free_port

    _, dispatcher, demo, short, _ = farm
    pipeline = dispatcher.pipeline
    nowhere = replace(pipeline.config, broker_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    before = {r.render_id for r in pipeline.ledger.list_renders(limit=1000)}

    with pytest.raises(QueueUnavailable, match="recorded as failed"):
        Dispatcher(pipeline, celery=make_celery(nowhere)).submit(_request(demo, short))

    (record,) = [r for r in pipeline.ledger.list_renders(limit=1000) if r.render_id not in before]
    assert record.status == "failed" and record.error == "QueueUnavailable" and "could not be queued" in record.failure_reason
    assert not (pipeline.config.farm_inputs_dir / record.render_id).exists()


def test_a_duplicated_or_redelivered_task_does_nothing(farm):
    from studio.render.farm import QUEUE_NAME, TASK_NAME, spec_of

    workers, dispatcher, demo, short, _ = farm
    ledger = dispatcher.pipeline.ledger
    config = dispatcher.pipeline.config
    nothing_before = _said(workers, "this delivery does nothing")

    render_id = dispatcher.submit(_request(demo, short))
    folder = config.farm_inputs_dir / render_id
    spec = spec_of(config, _request(demo, folder / "driving.mp4", photo=folder / "photo.png"))
    for _ in range(2):  # the same task twice more while the first is queued or running (a duplicate publish)
        dispatcher.celery.send_task(TASK_NAME, args=[render_id, spec], task_id=render_id, queue=QUEUE_NAME)
    result = dispatcher.wait(render_id, timeout=120)
    _broker_idle(dispatcher)
    # ... and once more after it finished (a redelivery, e.g. after a lost acknowledgement)
    dispatcher.celery.send_task(TASK_NAME, args=[render_id, spec], task_id=render_id, queue=QUEUE_NAME)
    _broker_idle(dispatcher)
    deadline = time.monotonic() + 30
    while _said(workers, "this delivery does nothing") < nothing_before + 3:
        assert time.monotonic() < deadline, "the duplicates were not all seen by the workers"
        time.sleep(0.1)

    assert len(_events(ledger, "render.claimed", render_id)) == 1
    assert len(_events(ledger, "render.finished", render_id)) == 1
    assert not _events(ledger, "render.failed", render_id)
    assert sorted(p.name for p in config.outputs_dir.iterdir() if p.name.startswith(render_id)) == [
        f"{render_id}.mp4", f"{render_id}.receipt.json"]
    assert media.sha256_file(result.video_path) == ledger.find_render(render_id).output_sha256


def _pause(workers, dispatcher) -> None:
    """The workers stop taking renders from the queue (a Celery control message, on a fresh connection)."""
    from studio.render.farm import QUEUE_NAME

    with dispatcher.celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=10)
        replies = dispatcher.celery.control.cancel_consumer(QUEUE_NAME, reply=True, timeout=5,
                                                            limit=len(workers.workers), connection=conn)
    assert len(replies) == len(workers.workers), replies


def _resume(workers, dispatcher) -> None:
    """Workers consume again. Control messages are not queued: ask until both, reconnected, answer."""
    from studio.render.farm import QUEUE_NAME

    deadline = time.monotonic() + 60
    answered = set()
    while len(answered) < len(workers.workers):
        assert time.monotonic() < deadline, f"the workers did not come back after the restart ({answered})"
        with dispatcher.celery.connection_for_write() as conn:  # a new connection: the pooled ones died with Redis
            conn.ensure_connection(max_retries=10)
            replies = dispatcher.celery.control.add_consumer(QUEUE_NAME, reply=True, timeout=2,
                                                             limit=len(workers.workers), connection=conn)
        answered |= {name for reply in replies or [] for name in reply}


def test_renders_lost_with_redis_data_are_reported_failed_never_dropped(farm, monkeypatch, capsys):
    """Redis restarted without its data (no append-only file, disk lost): `queue status` shows
    the admitted renders Redis no longer holds, and `queue reap` fails each with the reason."""
    import shutil

    from studio.cli import main
    from studio.render.farm import RenderFailed

    workers, dispatcher, demo, short, _ = farm
    ledger = dispatcher.pipeline.ledger
    config = dispatcher.pipeline.config
    _pause(workers, dispatcher)
    ids = [dispatcher.submit(_request(demo, short)) for _ in range(2)]
    workers.redis.stop()
    shutil.rmtree(workers.redis.folder)
    workers.redis.folder.mkdir()
    workers.redis.start()
    _resume(workers, dispatcher)
    monkeypatch.setenv("STUDIO_BROKER_URL", config.broker_url)
    if config.database_url:
        monkeypatch.setenv("DATABASE_URL", config.database_url)
    capsys.readouterr()

    assert main(["--home", str(config.home), "queue", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["admitted_not_in_broker"] == 2
    assert main(["--home", str(config.home), "queue", "reap", "--older-than", "0"]) == 0
    assert "2 render(s) lost from the queue were failed" in capsys.readouterr().out

    for render_id in ids:
        record = ledger.find_render(render_id)
        assert record.status == "failed" and record.error == "QueueLost" and "lost from the render queue" in record.failure_reason
        with pytest.raises(RenderFailed, match="lost from the render queue"):
            dispatcher.wait(render_id, timeout=10)
        assert not (config.farm_inputs_dir / render_id).exists()
    assert ledger.verify().ok


def test_queued_renders_survive_a_redis_restart(farm):
    from studio.render.farm import QUEUE_NAME

    workers, dispatcher, demo, short, _ = farm
    ledger = dispatcher.pipeline.ledger
    _pause(workers, dispatcher)
    ids = [dispatcher.submit(_request(demo, short)) for _ in range(3)]
    with dispatcher.celery.connection_for_write() as conn:
        assert conn.default_channel.client.llen(QUEUE_NAME) == 3  # all three wait in Redis
    workers.redis.stop()  # SIGTERM: Redis writes its append-only file and exits
    workers.redis.start()  # same port, same folder
    _resume(workers, dispatcher)

    results = [dispatcher.wait(render_id, timeout=180) for render_id in ids]

    assert [r.render_id for r in results] == ids
    for render_id in ids:
        assert len(_events(ledger, "render.claimed", render_id)) == 1
        assert ledger.find_render(render_id).status == "finished"
    assert ledger.verify().ok


def test_cancel_from_the_web_page_stops_the_worker_and_delivers_nothing(farm, tmp_path):
    from gradio_client import Client, handle_file

    from studio.web.app import build_app, launch
    from studio_support import free_port

    workers, dispatcher, demo, _, _ = farm
    pipeline = dispatcher.pipeline
    ledger = pipeline.ledger
    long = short_driving_clip(tmp_path / "longer.mp4", _astronaut(), frames=200)
    port = free_port()
    app = build_app(pipeline)
    launch(app, pipeline, host="127.0.0.1", port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", auth=("operator", demo.logins["operator"]), verbose=False,
                        download_files=str(tmp_path), analytics_enabled=False)
        job = client.submit(
            credential_id=demo.credential_id, photo=handle_file(str(demo.photo)), use_reference=False,
            driving=handle_file(str(long)), purpose="education", project="Orbit (demo documentary)",
            animator="auto", relative=True, paste_back=True, label_ai=True, api_name="/render")
        deadline = time.monotonic() + 120
        render_id = None
        while render_id is None:  # until a worker animates it
            for lease in ledger.render_leases():
                record = ledger.find_render(lease.render_id)
                if record.operator == "operator" and any((w.work_dir / lease.render_id / "encoded.mp4").exists()
                                                         for w in workers.workers):
                    render_id = lease.render_id
            assert time.monotonic() < deadline, "no worker started the render"
            time.sleep(0.02)
        said = client.predict(api_name="/cancel_render")
        assert said.startswith("Cancelled 1 render")
        deadline = time.monotonic() + 30
        while ledger.find_render(render_id).status == "started":
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.1)
        try:  # the page's render ends without a video: cancelled (an error or no value, as Gradio has it)
            answer = job.result(timeout=30)
        except Exception:  # noqa: BLE001 - gradio_client raises for a cancelled or failed job
            answer = None
        assert not answer or not answer[0], answer
    finally:
        app.close()

    record = ledger.find_render(render_id)
    assert record.status == "failed" and record.error == "RenderCancelled" and "cancelled by operator" in record.failure_reason
    (asked,) = _events(ledger, "render.cancel_requested", render_id)
    assert asked.actor == "operator"
    assert not _events(ledger, "render.finished", render_id)
    assert not [p for p in pipeline.config.outputs_dir.iterdir() if p.name.startswith(render_id)]
    assert not any(w.work_dir.joinpath(render_id).exists() for w in workers.workers)
    assert ledger.verify().ok


def test_ctrl_c_on_render_wait_cancels_the_render_on_the_worker(farm, tmp_path):
    # `avatar-studio render` (waiting, the default on the farm) gets a real SIGINT while a worker
    # animates its render: the CLI asks the ledger to cancel it, as the web page's Cancel does,
    # says so and exits non-zero; the worker stops and delivers nothing.
    import subprocess
    import sys

    workers, dispatcher, demo, _, _ = farm
    ledger = dispatcher.pipeline.ledger
    long = short_driving_clip(tmp_path / "longer.mp4", _astronaut(), frames=200)
    out = tmp_path / "never.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "render", "--credential", demo.credential_id, "--photo", str(demo.photo),
         "--driving", str(long), "--purpose", "education", "--project", "Orbit (demo documentary)",
         "--operator", "cli-ctrl-c", "--out", str(out)],
        env=workers.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        render_id = None
        while render_id is None:  # until a worker animates it
            for lease in ledger.render_leases():
                if ledger.find_render(lease.render_id).operator == "cli-ctrl-c" and any(
                        (w.work_dir / lease.render_id / "encoded.mp4").exists() for w in workers.workers):
                    render_id = lease.render_id
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no worker started the render"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert f"cancel requested for render {render_id}; nothing will be delivered" in stderr.decode()
    deadline = time.monotonic() + 30
    while ledger.find_render(render_id).status == "started":
        assert time.monotonic() < deadline, "the worker did not stop"
        time.sleep(0.1)
    record = ledger.find_render(render_id)
    assert record.status == "failed" and record.error == "RenderCancelled" and "cli-ctrl-c" in record.failure_reason
    (asked,) = _events(ledger, "render.cancel_requested", render_id)
    assert asked.actor == "cli-ctrl-c"
    assert not _events(ledger, "render.finished", render_id) and not out.exists()
    assert not [p for p in dispatcher.pipeline.config.outputs_dir.iterdir() if p.name.startswith(render_id)]
    assert ledger.verify().ok


def test_a_worker_killed_mid_render_is_taken_over_and_delivers_one_output(farm):
    workers, dispatcher, demo, _, long = farm
    pipeline = dispatcher.pipeline
    ledger = pipeline.ledger
    by_pid = {w.pid: w for w in workers.workers}

    render_id = dispatcher.submit(_request(demo, long))
    deadline = time.monotonic() + 120
    victim = None
    while victim is None:  # until a worker holds the lease and has started animating
        lease = next((l for l in ledger.render_leases() if l.render_id == render_id), None)
        if lease is not None and lease.owner_pid in by_pid:
            candidate = by_pid[lease.owner_pid]
            if (candidate.work_dir / render_id / "encoded.mp4").exists():
                victim = candidate
        assert time.monotonic() < deadline, "no worker started the render"
        time.sleep(0.02)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()

    stages = []
    result = dispatcher.wait(render_id, lambda stage, done, total: stages.append(stage), timeout=180)

    claims = _events(ledger, "render.claimed", render_id)
    assert len(claims) == 2 and claims[0].data["pid"] == victim.pid and claims[1].data["pid"] != victim.pid
    assert len(_events(ledger, "render.finished", render_id)) == 1
    assert not _events(ledger, "render.failed", render_id)
    outputs = sorted(p.name for p in pipeline.config.outputs_dir.iterdir() if p.name.startswith(render_id))
    assert outputs == [f"{render_id}.mp4", f"{render_id}.receipt.json"]  # one output, no partial file
    assert _payload_of_file(pipeline, result.video_path) == int(render_id[:12], 16)
    assert "animating" in stages  # the new worker's progress reached the waiting caller
    assert ledger.verify().ok
    workers.start_worker(victim.name)  # for any later test


def test_a_web_only_machine_starts_without_the_c2pa_signing_key(tmp_path):
    # A farm's web machine never signs: it admits renders and audits files. Given only the
    # public root certificate of the shared c2pa/ folder, it builds the studio without reading
    # or creating any C2PA private key, and audits against that root.
    from watermark.certs import StudioSigner

    shared = tmp_path / "signing-machine" / "c2pa"
    real = StudioSigner.load_or_create(shared)  # made where signing happens (a worker)
    home = tmp_path / "web"
    (home / "c2pa").mkdir(parents=True, mode=0o700)
    (home / "c2pa" / "ca.pem").write_bytes((shared / "ca.pem").read_bytes())  # public: no key

    config = StudioConfig(home=home, broker_url="redis://127.0.0.1:9/0")  # no Redis needed to start
    pipeline = RenderPipeline.from_config(config)
    try:
        from studio.web.app import build_app

        build_app(pipeline)
        assert sorted(p.name for p in (home / "c2pa").iterdir()) == ["ca.pem"]  # no key read, none made
        assert pipeline.trust_anchor_pem == real.trust_anchor_pem
    finally:
        pipeline.ledger.close()
