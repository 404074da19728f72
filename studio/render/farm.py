"""Two ways to run the one ``RenderPipeline``: in this process (the default) or on a render farm.

Without ``STUDIO_BROKER_URL`` the dispatcher is ``InProcess``: ``pipeline.render`` as always.
With it, ``Farm`` admits the render here (steps 1-3, ``render.started`` committed under a new
render id, no owner yet), then puts ``(render id, request)`` on a Celery queue in Redis. A
worker (``avatar-studio worker``) claims the render in the ledger before doing anything: the
claim is an atomic compare-and-set on the lease it saw, so a redelivered or duplicated task
whose render is finished, failed, refused or held by a live lease does nothing. The worker then
verifies consent again (``RenderPipeline.readmit``) and produces the render exactly as the
in-process path does; the ledger, not the queue, says what happened (docs/farm.md).

The task's message carries no secret and no personal data beyond file names under the shared
data folder; the inputs are copied there (``farm-inputs/<render id>/``) and deleted when the
render ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from models.animate import AnimationOptions
from studio.config import StudioConfig
from studio.errors import RenderRefused, StudioError
from studio.ledger.records import QUEUED_OWNER
from studio.render.pipeline import RenderPipeline
from studio.render.types import ProgressCallback, RenderRequest, RenderResult

log = logging.getLogger(__name__)

TASK_NAME = "avatar_studio.render"
QUEUE_NAME = "avatar-studio-renders"
_POLL_SECONDS = 0.1  # how often a waiting caller reads the ledger
_PROGRESS_SECONDS = 0.25  # a worker publishes progress at most this often (plus every stage change)


class QueueUnavailable(StudioError):
    """The render queue (Redis) could not be reached; the admitted render was failed, not dropped."""


class RenderFailed(StudioError):
    """The render failed on a worker (the ledger holds the reason)."""


class RenderTimedOut(StudioError):
    """No worker finished the render in the time allowed; it is still in the ledger as it stands."""


class Dispatcher(Protocol):
    def render(self, request: RenderRequest, progress: ProgressCallback | None = None) -> RenderResult: ...


class InProcess:
    """The single-machine default: the render runs in the calling thread."""

    def __init__(self, pipeline: RenderPipeline) -> None:
        self.pipeline = pipeline

    def render(self, request: RenderRequest, progress: ProgressCallback | None = None) -> RenderResult:
        return self.pipeline.render(request, progress)


def dispatcher_for(pipeline: RenderPipeline) -> Dispatcher:
    """``Farm`` when the configuration names a broker, else ``InProcess``."""
    if pipeline.config.broker_url:
        return Farm(pipeline)
    return InProcess(pipeline)


# ---------------------------------------------------------------------------------- Celery app

def visibility_timeout(config: StudioConfig) -> int:
    """Seconds an unacknowledged task stays with its worker before Redis hands it to another:
    longer than the longest render allowed, so a live render is not delivered twice in the
    normal course (and if it is, the second delivery finds the live lease and does nothing)."""
    return int(config.max_render_seconds * 1.5) + 1


def make_celery(config: StudioConfig) -> Any:
    """The Celery app for ``config.broker_url`` (broker and result backend in the same Redis)."""
    from celery import Celery

    if not config.broker_url:
        raise QueueUnavailable("no broker is configured (set STUDIO_BROKER_URL)")
    app = Celery("avatar_studio", broker=config.broker_url, backend=config.broker_url, set_as_current=False)
    vis = visibility_timeout(config)
    transport = {
        "visibility_timeout": vis,
        # a task whose worker died is handed on soon after the visibility timeout, not minutes later
        "unacked_restore_interval": max(1, min(10, vis // 4)),
        "unacked_restore_throttle": 1,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    }
    app.conf.update(
        task_acks_late=True,  # acknowledged when the render ends, so a worker that dies loses nothing
        task_reject_on_worker_lost=True,  # a pool process killed mid-task puts the task back
        worker_prefetch_multiplier=1,  # one render at a time per process; the rest wait in Redis
        broker_transport_options=transport,
        # the result store (progress only) gives up after ~2 s, not Celery's ~20 s, when Redis is down
        result_backend_transport_options={**transport, "retry_policy": {"max_retries": 3, "interval_start": 0,
                                                                        "interval_step": 0.5, "interval_max": 1}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE_NAME,
        task_track_started=True,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)(_render_task)
    return app


# Worker side: one pipeline per worker process, made on first use (after the pool forks).
_WORKER: dict[str, Any] = {}
_WORKER_LOCK = threading.Lock()


def _worker_pipeline() -> RenderPipeline:
    with _WORKER_LOCK:
        pipeline = _WORKER.get("pipeline")
        if pipeline is None or _WORKER.get("pid") != os.getpid():
            pipeline = RenderPipeline.from_config(_WORKER.get("config") or StudioConfig.from_env(), signs=True)
            _WORKER.update(pipeline=pipeline, pid=os.getpid())
        return pipeline


def _render_task(task: Any, render_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The Celery task: claim ``render_id`` in the ledger, re-verify, produce. Idempotent."""
    from celery.exceptions import Ignore

    pipeline = _worker_pipeline()
    worker = f"{task.request.hostname or 'worker'}:{os.getpid()}"
    last = {"stage": None, "at": 0.0}

    def progress(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage == last["stage"] and now - last["at"] < _PROGRESS_SECONDS:
            return
        last.update(stage=stage, at=now)
        try:
            task.update_state(state="PROGRESS", meta={"stage": stage, "done": done, "total": total, "worker": worker})
        except Exception:  # noqa: BLE001 - progress is best effort; the ledger is the record
            log.debug("progress not published", exc_info=True)

    outcome = work_on(pipeline, render_id, spec, worker=worker, progress=progress)
    if outcome["status"] in ("held", "done"):
        raise Ignore()  # a duplicate delivery: store no result over the real one
    return outcome


def work_on(
    pipeline: RenderPipeline,
    render_id: str,
    spec: dict[str, Any],
    *,
    worker: str,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Claim and run one admitted render; returns ``{"status": ..., ...}``, never raises for a
    render's own failure (that is in the ledger). ``held``/``done``: nothing was done."""
    ledger = pipeline.ledger
    lease = next((held for held in ledger.render_leases() if held.render_id == render_id), None)
    if lease is None or lease.status != "started":
        record = ledger.find_render(render_id)
        log.info("render %s: %s; this delivery does nothing", render_id,
                 "not admitted" if record is None else f"already {record.status}")
        return {"status": "done", "render_id": render_id}
    queued = lease.owner_host == QUEUED_OWNER and lease.owner_pid is None
    if not queued and pipeline.owner_alive(lease):
        log.info("render %s: held by a live lease (%s pid %s); this delivery does nothing",
                 render_id, lease.owner_host, lease.owner_pid)
        return {"status": "held", "render_id": render_id}
    pipeline.hold(render_id)  # before the claim: this process's own recovery never touches it
    claimed = ledger.claim_render(render_id, seen=lease, owner_pid=os.getpid(), owner_host=socket.gethostname(),
                                  worker=worker, max_claims=pipeline.config.farm_max_claims)
    if claimed != "claimed":
        pipeline.release(render_id)
        log.info("render %s: the claim found it %s; this delivery does nothing", render_id, claimed)
        if claimed == "exhausted":
            _remove_inputs(pipeline.config, render_id)
            return {"status": "failed", "render_id": render_id, "reason": "taken over too many times"}
        return {"status": "held" if claimed == "held" else "done", "render_id": render_id}
    if not queued:
        log.warning("render %s: taken over from %s pid %s (its lease had lapsed); rendering from the start",
                    render_id, lease.owner_host, lease.owner_pid)
    shutil.rmtree(pipeline.work_dir / render_id, ignore_errors=True)  # an earlier try's leftovers here
    try:
        try:
            request = request_from_spec(pipeline.config, spec)
        except (RenderRefused, KeyError, TypeError, ValueError) as exc:  # a task this studio did not write
            reason = exc.user_message() if isinstance(exc, RenderRefused) else f"the queued task is malformed ({type(exc).__name__})"
            ledger.refuse_started(render_id=render_id, reason=reason, error=type(exc).__name__)
            raise RenderRefused(reason) from exc
        admission = pipeline.readmit(request, render_id, progress)
        result = pipeline.produce(admission)
    except RenderRefused as exc:
        log.warning("render %s refused on the worker: %s", render_id, exc.user_message())
        return {"status": "refused", "render_id": render_id, "reason": exc.user_message()}
    except StudioError as exc:
        log.warning("render %s failed: %s", render_id, exc.user_message())
        return {"status": "failed", "render_id": render_id, "reason": exc.user_message(), "error": type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - consent/motion errors are refusals, logged by readmit
        from consent.errors import ConsentError
        from models.errors import MotionError

        if isinstance(exc, (ConsentError, MotionError)):
            log.warning("render %s refused on the worker: %s", render_id, exc.user_message())
            return {"status": "refused", "render_id": render_id, "reason": exc.user_message()}
        record = ledger.find_render(render_id)
        if record is not None and record.status == "started":  # a bug: still close the render, with the reason
            ledger.render_failed(render_id=render_id, reason=f"{type(exc).__name__}: {exc}"[:500], error=type(exc).__name__)
        raise
    finally:
        pipeline.release(render_id)
        if (ledger.find_render(render_id) or lease).status != "started":
            _remove_inputs(pipeline.config, render_id)
    return {"status": "finished", "render_id": result.render_id, "admitted": render_id}


# ------------------------------------------------------------------------------ request <-> task

def spec_of(config: StudioConfig, request: RenderRequest) -> dict[str, Any]:
    """The JSON task payload of ``request``; its files are named relative to the shared data folder."""
    return {
        "photo": str(Path(request.photo).resolve().relative_to(config.home)),
        "driving": str(Path(request.driving).resolve().relative_to(config.home)),
        "credential_id": request.credential_id,
        "purpose": request.purpose,
        "project": request.project,
        "operator": request.operator,
        "animator": request.animator,
        "options": asdict(request.options),
        "label_ai": request.label_ai,
    }


def request_from_spec(config: StudioConfig, spec: dict[str, Any]) -> RenderRequest:
    """The request a task carries, its files resolved under this machine's data folder (and only there)."""
    paths = {}
    for key in ("photo", "driving"):
        path = (config.home / spec[key]).resolve()
        if not path.is_relative_to(config.farm_inputs_dir.resolve()):
            raise RenderRefused("a queued render may only read its inputs from the shared farm-inputs folder")
        paths[key] = path
    return RenderRequest(
        photo=paths["photo"],
        driving=paths["driving"],
        credential_id=str(spec["credential_id"]),
        purpose=str(spec["purpose"]),
        project=str(spec["project"]),
        operator=str(spec["operator"]),
        animator=str(spec.get("animator", "auto")),
        options=AnimationOptions(**spec.get("options", {})),
        label_ai=spec.get("label_ai"),
    )


def _remove_inputs(config: StudioConfig, render_id: str) -> None:
    shutil.rmtree(config.farm_inputs_dir / render_id, ignore_errors=True)


# ---------------------------------------------------------------------------------- web side

class Farm:
    """Admit here, render on a worker, wait for the ledger to say how it ended."""

    def __init__(self, pipeline: RenderPipeline, celery: Any | None = None) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.celery = celery if celery is not None else make_celery(self.config)

    def render(self, request: RenderRequest, progress: ProgressCallback | None = None) -> RenderResult:
        return self.wait(self.submit(request, progress), progress)

    def submit(self, request: RenderRequest, progress: ProgressCallback | None = None) -> str:
        """Admit ``request`` (a refusal raises, logged) and queue it; returns its render id.

        The inputs are copied under the shared data folder first (the admitted hashes are of
        those copies). A queue that cannot be reached fails the admitted render in the ledger,
        with the reason, and raises ``QueueUnavailable``.
        """
        staging = self.config.farm_inputs_dir / f"incoming-{os.urandom(8).hex()}"
        staging.mkdir(parents=True, mode=0o700)
        try:
            photo = staging / f"photo{Path(request.photo).suffix.lower()[:8]}"
            driving = staging / f"driving{Path(request.driving).suffix.lower()[:8]}"
            shutil.copyfile(request.photo, photo)
            shutil.copyfile(request.driving, driving)
            admission = self.pipeline.admit(
                RenderRequest(**{**_fields(request), "photo": photo, "driving": driving}), progress, queued=True
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        render_id = admission.render_id
        folder = self.config.farm_inputs_dir / render_id
        os.replace(staging, folder)
        queued = RenderRequest(**{**_fields(admission.job.request), "photo": folder / photo.name,
                                  "driving": folder / driving.name})
        try:
            self.celery.send_task(TASK_NAME, args=[render_id, spec_of(self.config, queued)], task_id=render_id,
                                  queue=QUEUE_NAME, retry=True,
                                  retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5})
        except Exception as exc:  # noqa: BLE001 - any broker failure: fail the render, loudly
            reason = f"could not be queued: the render queue is unreachable ({type(exc).__name__})"
            self.pipeline.ledger.render_failed(render_id=render_id, reason=reason, error="QueueUnavailable")
            shutil.rmtree(folder, ignore_errors=True)
            raise QueueUnavailable(f"the render {reason}; it is recorded as failed in the ledger") from exc
        if progress is not None:
            progress("queued", 0, None)
        return render_id

    def wait(self, render_id: str, progress: ProgressCallback | None = None, *, timeout: float | None = None) -> RenderResult:
        """Block until the ledger closes ``render_id`` (or the render that replaced it after a
        watermark retry); returns the delivered result or raises with the ledger's reason."""
        ledger = self.pipeline.ledger
        deadline = time.monotonic() + (timeout if timeout is not None else self.config.max_render_seconds * 3)
        shown = None
        while True:
            record = ledger.find_render(render_id)
            if record is None:
                raise RenderFailed(f"render {render_id} is not in the ledger")
            if record.status == "finished":
                result = self._delivered(render_id)
                if result is not None:
                    return result
            elif record.status in ("refused", "lost"):
                raise (RenderRefused if record.status == "refused" else RenderFailed)(
                    f"{record.failure_reason} (render {render_id}, recorded in the ledger)")
            elif record.status == "failed":
                final = self._final(render_id)
                if record.error != "WatermarkNotConfirmed" or (final is not None and final.get("status") != "finished"):
                    raise RenderFailed(f"{record.failure_reason} (render {render_id}, recorded in the ledger)")
                if final is not None:  # the render was made again under a new id on the worker
                    render_id = final["render_id"]
                    continue
            info = self._progress(render_id)
            if progress is not None and info is not None and info != shown:
                shown = info
                progress(str(info.get("stage", "rendering")), int(info.get("done") or 0), info.get("total"))
            if time.monotonic() > deadline:
                raise RenderTimedOut(f"render {render_id} did not finish in time; its state is in the ledger")
            time.sleep(_POLL_SECONDS)

    def _delivered(self, render_id: str) -> RenderResult | None:
        import json

        out = self.config.outputs_dir / f"{render_id}.mp4"
        receipt_path = self.config.outputs_dir / f"{render_id}.receipt.json"
        if not (out.is_file() and receipt_path.is_file()):
            return None  # committed, still being moved into place
        receipt = json.loads(receipt_path.read_text())
        return RenderResult(video_path=out, receipt_path=receipt_path, render_id=render_id, receipt=receipt,
                            stage_seconds=dict(receipt.get("stage_seconds", {})))

    def _task(self, render_id: str) -> Any:
        return self.celery.AsyncResult(render_id)

    def _progress(self, render_id: str) -> dict[str, Any] | None:
        try:
            result = self._task(render_id)
            return result.info if result.state == "PROGRESS" and isinstance(result.info, dict) else None
        except Exception:  # noqa: BLE001 - progress is best effort
            return None

    def _final(self, render_id: str) -> dict[str, Any] | None:
        try:
            result = self._task(render_id)
            return result.result if result.state == "SUCCESS" and isinstance(result.result, dict) else None
        except Exception:  # noqa: BLE001
            return None


def _fields(request: RenderRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in RenderRequest.__dataclass_fields__}


# ------------------------------------------------------------------------------- queue status

def queue_status(config: StudioConfig, pipeline: RenderPipeline) -> dict[str, Any]:
    """Queued/running/finished per worker, from the ledger (the truth) and Redis (what waits)."""
    import json as _json

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from studio.ledger.tables import EventRow  # the claims are events: who took which render

    ledger = pipeline.ledger
    waiting = None
    try:
        app = make_celery(config)
        with app.connection_for_write() as conn:
            client = conn.default_channel.client
            waiting = int(client.llen(QUEUE_NAME))
    except Exception as exc:  # noqa: BLE001 - report the queue as unreachable, still show the ledger
        waiting = f"unreachable ({type(exc).__name__})"
    leases = ledger.render_leases()
    queued = [lease.render_id for lease in leases if lease.status == "started" and lease.owner_host == QUEUED_OWNER]
    running = [lease for lease in leases if lease.status == "started" and lease.owner_host != QUEUED_OWNER]
    claims: dict[str, str] = {}
    with Session(ledger.engine) as session:
        for (data,) in session.execute(select(EventRow.data).where(EventRow.kind == "render.claimed")):
            item = _json.loads(data)
            claims[item["render_id"]] = item["worker"]  # the last claim wins
    per_worker: dict[str, dict[str, int]] = {}
    for render_id, worker in claims.items():
        record = ledger.find_render(render_id)
        status = "running" if record is not None and record.status == "started" else (record.status if record else "?")
        counts = per_worker.setdefault(worker, {})
        counts[status] = counts.get(status, 0) + 1
    missing: Any = None
    try:
        held = _tasks_in_broker(config)
        missing = sum(1 for render_id in queued if render_id not in held)
    except Exception as exc:  # noqa: BLE001
        missing = f"unknown ({type(exc).__name__})"
    return {
        "broker_waiting": waiting,
        "admitted_not_claimed": len(queued),
        "admitted_not_in_broker": missing,  # lost from Redis (or being queued right now): `queue reap`
        "running": [{"render_id": lease.render_id, "host": lease.owner_host, "pid": lease.owner_pid,
                     "heartbeat_at": lease.heartbeat_at.isoformat()} for lease in running],
        "per_worker": per_worker,
    }


def _tasks_in_broker(config: StudioConfig) -> set[str]:
    """Ids of the render tasks Redis holds: waiting in the queue or delivered and not yet acknowledged."""
    import json as _json

    ids: set[str] = set()
    app = make_celery(config)
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        raw = list(client.lrange(QUEUE_NAME, 0, -1))
        raw += [_json.dumps(_json.loads(v)[0]) for v in client.hvals("unacked")]  # [message, exchange, key]
    for item in raw:
        try:
            ids.add(str(_json.loads(item)["headers"]["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def reap_lost(config: StudioConfig, pipeline: RenderPipeline, *, older_than_seconds: float = 300.0) -> list[str]:
    """Fail, with the reason, every admitted render that no worker claimed and that Redis no
    longer holds (Redis lost its data): reported in the ledger, never silently dropped.
    Renders admitted in the last ``older_than_seconds`` are left alone (they may be being queued)."""
    from datetime import datetime, timezone

    held = _tasks_in_broker(config)  # raises when Redis is unreachable: then nothing is judged lost
    now = datetime.now(timezone.utc)
    lost = []
    for lease in pipeline.ledger.render_leases():
        if lease.status != "started" or lease.owner_host != QUEUED_OWNER or lease.owner_pid is not None:
            continue
        if lease.render_id in held or (now - lease.heartbeat_at).total_seconds() < older_than_seconds:
            continue
        reason = "lost from the render queue before any worker took it (Redis no longer holds the task); nothing was rendered"
        try:
            pipeline.ledger.render_failed(render_id=lease.render_id, reason=reason, error="QueueLost")
        except StudioError:
            continue  # claimed or closed meanwhile
        _remove_inputs(config, lease.render_id)
        lost.append(lease.render_id)
    return lost


def run_worker(config: StudioConfig, *, concurrency: int = 1, name: str | None = None, loglevel: str = "INFO") -> None:
    """Run a Celery worker on ``config`` until stopped. One render in this process when
    ``concurrency`` is 1 (its recovery runs at once), else a pool of that many processes."""
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = make_celery(config)
    _WORKER["config"] = config
    if concurrency == 1:
        _worker_pipeline()
    else:  # the pool's pipelines load it again after the fork; this fails at start if it is unusable
        from studio.identity import load_c2pa_signer

        load_c2pa_signer(config)
    app.worker_main([
        "worker",
        f"--concurrency={concurrency}",
        "--pool=solo" if concurrency == 1 else "--pool=prefork",
        f"--hostname={name or f'worker-{os.getpid()}@%h'}",
        f"--loglevel={loglevel}",
        f"--queues={QUEUE_NAME}",
        "--without-gossip",
        "--without-mingle",
    ])
