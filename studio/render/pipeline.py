"""The one render entry point: ``RenderPipeline.render(request, progress)``.

Every frame the studio produces goes through here, one call per step::

    admit:    1 read and probe the inputs -> 2 analyse the face -> 3 verify consent (this face,
              use, time; the label it requires) -> 4 open the render in the ledger (render.started)
    produce:  5 animate, label, watermark, encode (``studio.render.loop``) -> 6 read the mark back
              -> 7 sign C2PA -> 8 freeze the receipt -> 9 commit (render.finished) -> 10 deliver

Refusals stop at step 3, before any animation, and are logged with their reason; so does a
request that drops the visible label a credential requires. The consent's duration and the
studio's own limits are enforced again on the decoded frames (``media.DecodedLimits``): a file
whose header under-declares its length is stopped at the first frame past the limit and the
render fails with that reason, delivering nothing. The farm runs steps 1-4 on the web machine
and 1-3 again, then 5-10, on a worker (``studio.render.farm``).

The receipt is frozen (``studio.render.receipt.Receipt``, RFC 8785 bytes) before the ledger commit; the
ledger hashes exactly those bytes and they are what ``<id>.receipt.json`` holds. Output is
written to ``work/<render id>/`` and moved into ``outputs`` only after the ledger has committed
the render, then marked delivered. Each open render holds a lease in the ledger (owner pid and
host, heartbeat); ``recover()``, run at every start, touches only renders whose owner is gone:
a started one is marked failed and its work folder deleted; a finished one that was never
delivered is delivered from its work folder when the signed file there has the recorded hash,
and is otherwise recorded as ``render.lost``. Renders owned by live processes are left alone.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from consent.errors import ConsentError
from consent.verify import ConsentRequest, VerifiedConsent, verify_consent
from models.animate import Animator
from models.errors import MotionError
from studio import media
from studio.config import StudioConfig
from studio.errors import (
    ConsentRevokedDuringRender,
    InputsChanged,
    LabelRequired,
    StudioError,
    UnknownAnimator,
    WatermarkNotConfirmed,
)
from studio.ledger.records import QUEUED_OWNER  # a render admitted for the farm and not yet claimed
from studio.render.confirm import ReadBack, read_back
from studio.render.loop import Encoded, animate_label_mark_encode, stop_if_cancelled
from studio.render.receipt import Receipt
from studio.render.types import Admission, Job, ProgressCallback, RenderRequest, RenderResult, StageTimer

if TYPE_CHECKING:  # pragma: no cover
    from studio.ledger import Ledger

__all__ = ["Admission", "ProgressCallback", "RenderPipeline", "RenderRequest", "RenderResult", "new_render_id"]

log = logging.getLogger(__name__)

_PAYLOAD_BITS = 48
_MARK_ATTEMPTS = 3  # renders (each under a fresh render id) before a failed watermark check is final
LEASE_TIMEOUT_SECONDS = 60.0  # an open render whose heartbeat is older than this has no live owner
HEARTBEAT_SECONDS = 5.0  # how often a running render refreshes its heartbeat

# Render ids this process is running now: recovery never touches them, even when a dead
# process that owned another render had the same pid as this one.
_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_render_id() -> tuple[str, int]:
    """A fresh render id and its 48-bit watermark payload (the id's first 12 hex digits)."""
    payload = secrets.randbits(_PAYLOAD_BITS)
    return f"{payload:012x}{secrets.token_hex(10)}", payload


class RenderPipeline:
    """Consent-gated rendering. Build it with ``from_config``; tests pass tiny parts."""

    def __init__(
        self,
        *,
        config: StudioConfig,
        ledger: Ledger,
        watermark_key: bytes,
        signer: Any = None,
        load_signer: Callable[[], Any] | None = None,
        animators: dict[str, Callable[[], Animator]],
        face_analyzer: Callable[[], Any],
        clock: Callable[[], datetime] = _utcnow,
        max_video_seconds: float = media.MAX_VIDEO_SECONDS,
        lease_timeout_seconds: float = LEASE_TIMEOUT_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.watermark_key = watermark_key
        if (signer is None) == (load_signer is None):
            raise TypeError("give the C2PA signer or a function that loads it (not both)")
        self._signer = signer
        self._load_signer = load_signer
        self._signer_lock = threading.Lock()
        self._animator_factories = animators
        self._face_analyzer_factory = face_analyzer
        self._clock = clock
        self.max_video_seconds = max_video_seconds  # the studio's own length limit, on decoded frames too
        self.lease_timeout_seconds = lease_timeout_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._local = threading.local()
        config.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: StudioConfig, *, signs: bool | None = None, **options: Any) -> RenderPipeline:
        """The studio's pipeline; ``options`` are passed to the constructor (limits, lease times).

        ``signs``: whether this process renders (and so signs C2PA manifests) from the start:
        its signer is loaded now, and a missing or unreadable key fails here. Default: yes
        without a render farm; with one (``STUDIO_BROKER_URL``) the web machine only admits
        and audits, so the signer is loaded on first use and the C2PA key is never needed.
        """
        from models.face import FaceAnalyzer
        from models.landmark import LandmarkAnimator
        from studio.identity import load_c2pa_signer, load_or_create_watermark_key
        from studio.ledger import Ledger

        ledger = Ledger.from_config(config)
        animators: dict[str, Callable[[], Animator]] = {"landmark": LandmarkAnimator}
        if config.fomm_checkpoint is not None:
            ckpt = config.fomm_checkpoint

            def _fomm() -> Animator:
                from models.fomm.animator import FommAnimator

                return FommAnimator.from_checkpoint(ckpt, device=config.device)

            animators["fomm"] = _fomm
        pipeline = cls(
            config=config,
            ledger=ledger,
            watermark_key=load_or_create_watermark_key(config),
            **({"signer": load_c2pa_signer(config)} if (signs if signs is not None else not config.broker_url)
               else {"load_signer": lambda: load_c2pa_signer(config)}),
            animators=animators,
            face_analyzer=FaceAnalyzer,
            **options,
        )
        pipeline.recover()
        return pipeline

    @property
    def work_dir(self) -> Path:
        return self.config.work_dir

    @property
    def signer(self) -> Any:
        """The C2PA signer (``watermark.certs.StudioSigner``), loaded on first use where it was not given."""
        with self._signer_lock:
            if self._signer is None:
                assert self._load_signer is not None
                self._signer = self._load_signer()
            return self._signer

    @property
    def trust_anchor_pem(self) -> str | None:
        """The root certificate the studio's manifests chain to, for audits: the signer's when
        loaded, else ``<home>/c2pa/ca.pem`` as provisioned (no private key read); None if absent."""
        if self._signer is not None:
            return self._signer.trust_anchor_pem
        ca = self.config.home / "c2pa" / "ca.pem"
        return ca.read_text() if ca.is_file() else None

    @property
    def default_animator(self) -> str:
        return "fomm" if "fomm" in self._animator_factories else "landmark"

    def animator_names(self) -> list[str]:
        return sorted(self._animator_factories)

    def recover(self) -> int:
        """Settle the open renders whose owner is gone; returns how many started ones were failed.

        Started renders of a gone owner are marked failed and their work folders deleted.
        Finished renders of a gone owner that were never moved into place are delivered from
        their work folder when the signed file there has the recorded hash, else recorded as
        lost. Renders of live owners (this process, or another with a fresh heartbeat) and
        their work folders are not touched.
        """
        leases = self.ledger.render_leases()
        live = {lease.render_id for lease in leases if self._owner_alive(lease)}
        gone = [lease for lease in leases if lease.render_id not in live]
        interrupted = [lease.render_id for lease in gone if lease.status == "started"]
        for render_id in interrupted:
            _remove(self.work_dir / render_id)
        failed = self.ledger.mark_interrupted_renders(actor="studio", render_ids=interrupted)
        for lease in gone:
            if lease.status == "finished":
                self._settle_undelivered(lease.render_id)
        # Anything else in work/ belongs to no open render (or to one settled above), except
        # a folder younger than a lease: it may be a render that is starting right now.
        horizon = time.time() - self.lease_timeout_seconds
        for entry in self.work_dir.iterdir():
            if entry.name in live:
                continue
            if entry.name not in {lease.render_id for lease in gone} and entry.stat().st_mtime > horizon:
                continue
            _remove(entry)
        return failed

    def _owner_alive(self, lease: Any) -> bool:
        """Whether the process that holds ``lease`` (a ``studio.ledger.RenderLease``) may still run it."""
        with _ACTIVE_LOCK:
            if lease.render_id in _ACTIVE:
                return True
        if lease.owner_host == QUEUED_OWNER and lease.owner_pid is None:
            return True  # admitted for the farm, not yet claimed: the queue holds it (see studio.render.farm)
        age = (_utcnow() - lease.heartbeat_at).total_seconds()  # wall time, not the consent clock
        if age > self.lease_timeout_seconds:
            return False
        if lease.owner_pid is None or lease.owner_host != socket.gethostname():
            return True  # another host (a shared database) or an old row: only the heartbeat can tell
        if lease.owner_pid == os.getpid():
            return False  # our pid, but not one of our renders: a dead process had this pid before
        return _pid_alive(lease.owner_pid)

    def _settle_undelivered(self, render_id: str) -> None:
        """Finish the move of a committed render whose owner died before it, or record the loss."""
        record = self.ledger.find_render(render_id)
        if record is None or record.receipt is None or record.output_sha256 is None:
            return
        out = self.config.outputs_dir / f"{render_id}.mp4"
        receipt_path = self.config.outputs_dir / f"{render_id}.receipt.json"
        signed = self.work_dir / render_id / "signed.mp4"
        if out.is_file() and media.sha256_file(out) == record.output_sha256:
            source = None  # moved already; only the receipt and the delivery mark may be missing
        elif signed.is_file() and media.sha256_file(signed) == record.output_sha256:
            source = signed
        else:
            reason = ("lost before delivery: the studio stopped after the ledger commit and the signed "
                      "output was neither in outputs/ nor intact in the work folder")
            self.ledger.render_lost(render_id=render_id, reason=reason)
            log.warning("render %s: %s", render_id, reason)
            _remove(self.work_dir / render_id)
            return
        receipt = Receipt.freeze(record.receipt)
        tmp = self.work_dir / f"{render_id}.receipt.tmp"
        tmp.write_bytes(receipt.text)
        if source is not None:
            os.replace(source, out)
        os.replace(tmp, receipt_path)
        self.ledger.render_delivered(render_id=render_id)
        _remove(self.work_dir / render_id)
        log.warning("render %s: delivered at start-up (its process stopped after the ledger commit)", render_id)

    # ------------------------------------------------------------------ per-thread parts
    def face_analyzer(self) -> Any:
        analyzer = getattr(self._local, "face", None)
        if analyzer is None:
            analyzer = self._face_analyzer_factory()
            self._local.face = analyzer
        return analyzer

    def _animator(self, name: str) -> Animator:
        if name == "auto":
            name = self.default_animator
        cache = getattr(self._local, "animators", None)
        if cache is None:
            cache = self._local.animators = {}
        if name not in cache:
            factory = self._animator_factories.get(name)
            if factory is None:
                raise UnknownAnimator(
                    f"animator '{name}' is not available here (available: {', '.join(self.animator_names())}); "
                    "the FOMM animator needs STUDIO_FOMM_CHECKPOINT"
                )
            cache[name] = factory()
        return cache[name]

    # ------------------------------------------------------------------ the entry point
    def render(self, request: RenderRequest, progress: ProgressCallback | None = None) -> RenderResult:
        """Render ``request`` or raise; every outcome is in the ledger (``admit`` then ``produce``)."""
        return self.produce(self.admit(request, progress))

    def admit(
        self, request: RenderRequest, progress: ProgressCallback | None = None, *, queued: bool = False
    ) -> Admission:
        """Steps 1-4: read, analyse, verify consent, then open the render in the ledger.

        A failure before the render is opened is a refusal, logged and raised. In-process
        (``queued=False``) this process takes the render's lease at once; for the farm
        (``queued=True``) the render is opened without an owner, marked queued, and a worker
        claims it (``studio.render.farm``).
        """
        job = self._check(request, progress)  # 1-3
        render_id, payload = new_render_id()
        self._open(job, render_id, payload, queued=queued)  # 4
        return Admission(job=job, render_id=render_id, payload=payload)

    def readmit(self, request: RenderRequest, render_id: str, progress: ProgressCallback | None = None) -> Admission:
        """Steps 1-3 again for a render admitted elsewhere and claimed by this process (a farm
        worker), right before animating: the inputs must be the bytes admitted, and consent must
        still hold now. A refusal closes the admitted render as refused (logged) and raises."""
        record = self.ledger.find_render(render_id)
        if record is None or record.status != "started":
            from studio.ledger.errors import UnknownRender

            raise UnknownRender("no admitted render in progress has this id")
        job = self._check(replace(request, animator=str(record.inputs.get("animator", request.animator))), progress,
                          admitted=(render_id, record.inputs))
        return Admission(job=job, render_id=render_id, payload=int(record.inputs["payload"]))

    def produce(self, admission: Admission) -> RenderResult:
        """Steps 5-10 of an admitted render this process holds the lease of; raises on failure.

        An attempt whose first marked frames or encoded file do not read back with its own mark
        is discarded and logged as failed; the mark's strength on a given picture depends a
        little on the payload (the render id), so it is rendered again under a fresh id (step 4
        again), at most ``_MARK_ATTEMPTS`` times in all, before giving up.
        """
        job = admission.job
        render_id, payload = admission.render_id, admission.payload
        for attempt in range(1, _MARK_ATTEMPTS + 1):
            try:
                if attempt > 1:
                    render_id, payload = new_render_id()
                    self._open(replace(job, attempt=attempt), render_id, payload, queued=False)
                return self._attempt(replace(job, attempt=attempt), render_id, payload)
            except WatermarkNotConfirmed as exc:
                if attempt == _MARK_ATTEMPTS:
                    raise WatermarkNotConfirmed(
                        f"the studio's watermark could not be confirmed on this render under {attempt} render ids "
                        "in a row, so nothing was delivered (each attempt is in the ledger as a failed render). "
                        "A photo that is fine texture everywhere behind the face, such as grass or gravel, can "
                        "leave the mark too little room, most of all at small output sizes; a photo with a "
                        "plainer background helps"
                    ) from exc
                log.warning("render attempt %d did not read back with its watermark; rendering again", attempt)
                job.report(f"the watermark did not read back: rendering again under a new render id "
                           f"({attempt + 1} of {_MARK_ATTEMPTS})", 0, None)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ steps 1-4: admission
    def _check(
        self, request: RenderRequest, progress: ProgressCallback | None, *, admitted: tuple[str, dict] | None = None
    ) -> Job:
        """Steps 1-3: read, analyse, verify. Any failure here is a refusal: nothing is animated.

        ``admitted`` (render id, its started inputs): re-checking a render admitted before; the
        input files must hash as then, and a refusal closes that render instead of a new one.
        """
        report = progress or (lambda stage, done, total: None)
        timer = StageTimer()
        inputs: dict[str, Any] = {"photo": None, "driving": None}
        try:
            photo, info = self._read_inputs(request, inputs, report, timer,  # 1
                                            admitted=None if admitted is None else admitted[1])
            embedding = self._analyse_face(request, photo, report, timer)  # 2
            verified, animator = self._verify_consent(request, info, embedding, report, timer)  # 3
        except (ConsentError, MotionError, StudioError) as exc:
            self._log_refusal(request, exc, inputs, admitted_id=None if admitted is None else admitted[0])
            raise
        return Job(request, verified, animator, photo, info, inputs, timer, report)

    def _read_inputs(
        self, request: RenderRequest, inputs: dict[str, Any], report: ProgressCallback, timer: StageTimer,
        *, admitted: dict | None,
    ) -> tuple[np.ndarray, media.VideoInfo]:
        """Step 1: hash both files (into ``inputs``), read the photo, probe the driving video."""
        with timer.measure("read"):
            report("reading inputs", 0, None)
            inputs["photo"] = media.sha256_file(request.photo)
            inputs["driving"] = media.sha256_file(request.driving)
            if admitted is not None and (admitted.get("photo"), admitted.get("driving")) != (
                inputs["photo"], inputs["driving"]
            ):
                raise InputsChanged("the input files are not the ones admitted for this render (their hashes differ)")
            photo = media.read_image(request.photo)
            info = media.probe_video(request.driving, max_duration_seconds=self.max_video_seconds)
        return photo, info

    def _analyse_face(self, request: RenderRequest, photo: np.ndarray, report: ProgressCallback,
                      timer: StageTimer) -> Any:
        """Step 2: find the face to animate; its embedding (None where the analyser has none)."""
        with timer.measure("face"):
            report("analysing the face", 0, None)
            face = self.face_analyzer().analyze(photo, face_index=request.options.face_index)
        return face.embedding

    def _verify_consent(
        self, request: RenderRequest, info: media.VideoInfo, embedding: Any, report: ProgressCallback,
        timer: StageTimer,
    ) -> tuple[VerifiedConsent, Animator]:
        """Step 3: consent for this face, use, duration and time; the label it requires; the animator."""
        with timer.measure("consent"):
            report("verifying consent", 0, None)
            credential = self.ledger.get_credential(request.credential_id)
            verified = verify_consent(
                credential,
                request=ConsentRequest(purpose=request.purpose, project=request.project,
                                       duration_seconds=info.duration_seconds),
                trust=self.ledger.trust(),
                status=self.ledger.revocation_status(),
                likeness=None if embedding is None else [float(v) for v in embedding],
                now=self._clock(),
                max_distance_ceiling=self.config.max_face_distance,
            )
            if verified.credential.disclosure_required and request.label_ai is False:
                raise LabelRequired(
                    "the consent credential requires a visible \"AI-generated\" label on every frame "
                    "(disclosure: label-as-ai-generated), so a render without it is refused; "
                    "render with the label instead"
                )
            animator = self._animator(request.animator)
        return verified, animator

    def _log_refusal(self, request: RenderRequest, exc: Exception, inputs: dict[str, Any], *,
                     admitted_id: str | None) -> None:
        """A refusal at steps 1-3 in the ledger: a new ``render.refused``, or the admitted render closed as refused."""
        reason = exc.user_message()  # type: ignore[attr-defined]
        if admitted_id is not None:
            self.ledger.refuse_started(render_id=admitted_id, reason=reason, error=type(exc).__name__)
            return
        self.ledger.render_refused(
            operator=request.operator,
            credential_id=request.credential_id,
            reason=reason,
            error=type(exc).__name__,
            inputs={k: v for k, v in inputs.items() if v},
        )

    def _open(self, job: Job, render_id: str, payload: int, *, queued: bool) -> None:
        """Step 4: ``render.started`` for ``render_id``, its lease held by this process (or queued)."""
        request = job.request
        if not queued:
            with _ACTIVE_LOCK:
                _ACTIVE.add(render_id)
        try:
            self.ledger.render_started(
                render_id=render_id,
                credential_id=request.credential_id,
                operator=request.operator,
                purpose=request.purpose,
                project=request.project,
                inputs={**job.inputs, "animator": job.animator.name, "payload": payload,
                        "label_required": job.verified.credential.disclosure_required,
                        "label_applied": job.label},
                owner_pid=None if queued else os.getpid(),
                owner_host=QUEUED_OWNER if queued else socket.gethostname(),
            )
        except BaseException:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(render_id)
            raise

    def hold(self, render_id: str) -> None:
        """Mark ``render_id`` as run by this process (a worker's claim): recovery leaves it alone."""
        with _ACTIVE_LOCK:
            _ACTIVE.add(render_id)

    def release(self, render_id: str) -> None:
        """Undo ``hold`` (the render ended here, or the claim was lost)."""
        with _ACTIVE_LOCK:
            _ACTIVE.discard(render_id)

    def owner_alive(self, lease: Any) -> bool:
        """Whether the holder of ``lease`` (a ``studio.ledger.RenderLease``) may still be running it."""
        return self._owner_alive(lease)

    # ------------------------------------------------------------------ steps 5-10: production
    def _attempt(self, job: Job, render_id: str, payload: int) -> RenderResult:
        """One render under ``render_id`` (opened, its lease ours): finished or failed in the ledger."""
        heartbeat = _Heartbeat(self.ledger, render_id, every=self.heartbeat_seconds)
        try:
            heartbeat.start()
            job_dir = self.work_dir / render_id
            try:
                job_dir.mkdir(parents=True)
                result = self._produce(job, render_id, payload, job_dir, cancelled=heartbeat.cancelled_by)
            except BaseException as exc:  # noqa: BLE001 - log every failure, then let it propagate
                reason = exc.user_message() if hasattr(exc, "user_message") else f"{type(exc).__name__}: {exc}"
                try:
                    self.ledger.render_failed(render_id=render_id, reason=reason, error=type(exc).__name__)
                finally:
                    shutil.rmtree(job_dir, ignore_errors=True)
                raise
            shutil.rmtree(job_dir, ignore_errors=True)
            return result
        finally:
            heartbeat.stop()
            with _ACTIVE_LOCK:
                _ACTIVE.discard(render_id)

    def _produce(
        self, job: Job, render_id: str, payload: int, job_dir: Path, *, cancelled: Callable[[], str | None] = lambda: None
    ) -> RenderResult:
        """Steps 5-10 of one attempt, one call each; the output stays in ``job_dir`` until step 10."""
        from watermark import Watermarker

        # The log as of this render's start, signed: an auditor holding the receipt detects a rollback.
        ledger_checkpoint = self.ledger.signed_checkpoint().to_note()
        marker = Watermarker(self.watermark_key)

        # 5: animate, label, watermark and encode, streaming in small batches.
        encoded = animate_label_mark_encode(job, marker=marker, payload=payload, out=job_dir / "encoded.mp4",
                                            max_video_seconds=self.max_video_seconds, cancelled=cancelled)
        for stage, seconds in encoded.stage_seconds.items():
            job.timer.add(stage, seconds)
        # 6: the delivered bytes must carry the mark: decode the encoded file and detect.
        mark = self._read_back_mark(job, marker, encoded, payload)
        # 7: the C2PA manifest, signed.
        signed = job_dir / "signed.mp4"
        manifest_status = self._sign_c2pa(job, render_id, payload, encoded.path, signed, ledger_checkpoint)
        with job.timer.measure("ledger"):
            self._last_checks(job, render_id, cancelled)
            # 8: the receipt, frozen before the commit: the ledger hashes these bytes and they are delivered.
            receipt = self._freeze_receipt(job, render_id, payload, signed, encoded.frames, mark, manifest_status,
                                           ledger_checkpoint)
            receipt_tmp = job_dir / "receipt.json"
            receipt_tmp.write_bytes(receipt.text)
            # 9: commit. From here a crash leaves a finished, undelivered render that recover() settles.
            self.ledger.render_finished(render_id=render_id, receipt=receipt)
        # 10: move video and receipt into outputs/, mark delivered.
        return self._deliver(job, render_id, signed, receipt_tmp, receipt, encoded.frames)

    def _read_back_mark(self, job: Job, marker: Any, encoded: Encoded, payload: int) -> ReadBack:
        """Step 6: the encoded file reads back with ``payload``, or ``WatermarkNotConfirmed``."""
        t0 = time.perf_counter()
        job.report("confirming the watermark", 0, None)
        mark = read_back(marker, encoded.path, payload)
        job.timer.add("watermark_check", time.perf_counter() - t0 + encoded.first_check_seconds)
        return mark

    def _sign_c2pa(self, job: Job, render_id: str, payload: int, encoded: Path, signed: Path,
                   ledger_checkpoint: str) -> str:
        """Step 7: ``signed`` = ``encoded`` with the studio's C2PA manifest; the manifest's status as read back."""
        from watermark.provenance import read_manifest, sign_mp4

        with job.timer.measure("provenance"):
            job.report("signing provenance", 0, None)
            signer = self.signer
            sign_mp4(
                encoded,
                signed,
                signer=signer,
                render_id=render_id,
                consent_id=job.verified.credential.credential_id,
                watermark_payload=payload,
                ledger_checkpoint=ledger_checkpoint,  # the file itself proves the log it was made in
            )
            return read_manifest(signed, trust_anchor_pem=signer.trust_anchor_pem).status

    def _last_checks(self, job: Job, render_id: str, cancelled: Callable[[], str | None]) -> None:
        """Right before the commit: nobody cancelled the render and the credential is not revoked."""
        stop_if_cancelled(lambda: cancelled() or self.ledger.cancel_requested(render_id))
        if self.ledger.revocation_status().is_revoked(job.verified.credential.credential_id):
            raise ConsentRevokedDuringRender("the consent credential was revoked during the render; output discarded")

    def _freeze_receipt(self, job: Job, render_id: str, payload: int, signed: Path, frames: int, mark: ReadBack,
                        manifest_status: str, ledger_checkpoint: str) -> Receipt:
        """Step 8: the receipt's fields in their one canonical byte form."""
        request, verified = job.request, job.verified
        return Receipt.freeze({
            "render_id": render_id,
            "credential_id": verified.credential.credential_id,
            "subject": verified.credential.subject_name,
            "operator": request.operator,
            "purpose": request.purpose,
            "project": request.project,
            "animator": job.animator.name,
            "options": asdict(request.options),
            "ai_label": job.label,
            "ai_label_required": bool(verified.credential.disclosure_required),
            "inputs": {"photo_sha256": job.inputs["photo"], "driving_sha256": job.inputs["driving"]},
            "output_sha256": media.sha256_file(signed),
            "frames": frames,
            "fps": job.info.fps,
            "watermark_payload": payload,
            "watermark": {"payload": f"{payload:012x}", "confidence": mark.confidence,
                          "frames_checked": mark.frames_checked},
            "manifest": {"status": manifest_status},
            "likeness_distance": verified.likeness_distance,
            "consent_verified_at": verified.verified_at.isoformat(),
            "finished_at": self._clock().isoformat(),
            "stage_seconds": job.timer.rounded(),  # up to here: the ledger commit is not in the receipt
            # Render ids tried for this request (the earlier ones are failed renders in the
            # ledger); stage_seconds above add up every attempt's stages.
            "attempts": job.attempt,
            "ledger_checkpoint": ledger_checkpoint,
        })

    def _deliver(self, job: Job, render_id: str, signed: Path, receipt_tmp: Path, receipt: Receipt,
                 frames: int) -> RenderResult:
        """Step 10: move the committed video and receipt into ``outputs/`` and mark the render delivered."""
        job.report("delivering", frames, frames)
        out = self.config.outputs_dir / f"{render_id}.mp4"
        receipt_path = self.config.outputs_dir / f"{render_id}.receipt.json"
        os.replace(signed, out)
        os.replace(receipt_tmp, receipt_path)
        try:
            self.ledger.render_delivered(render_id=render_id)
        except StudioError:  # delivered all the same; the next start sees the file in place and marks it
            log.warning("render %s: delivered, but the delivery mark was not written", render_id, exc_info=True)
        stage_seconds = job.timer.rounded()
        log.info("render %s delivered: %d frames; stage seconds %s", render_id, frames, stage_seconds)
        job.report("done", frames, frames)
        return RenderResult(video_path=out, receipt_path=receipt_path, render_id=render_id, receipt=receipt.fields,
                            stage_seconds=stage_seconds)


class _Heartbeat:
    """Refreshes a running render's lease in the ledger every ``every`` seconds from a daemon
    thread, and looks for a cancel request at least every second (``cancelled_by``)."""

    def __init__(self, ledger: Ledger, render_id: str, *, every: float) -> None:
        self._ledger, self._render_id, self._every = ledger, render_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{render_id[:12]}", daemon=True)
        self._cancelled_by: str | None = None

    def cancelled_by(self) -> str | None:
        """Who asked to cancel this render (None: nobody, as far as the last look saw)."""
        return self._cancelled_by

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        look = min(self._every, 1.0)
        next_beat = time.monotonic() + self._every
        while not self._stop.wait(look):
            try:
                if self._cancelled_by is None:
                    self._cancelled_by = self._ledger.cancel_requested(self._render_id)
            except Exception:  # noqa: BLE001 - looked at again in a second
                log.warning("render %s: cancel requests not read", self._render_id, exc_info=True)
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + self._every
            try:
                self._ledger.heartbeat(self._render_id)
            except Exception:  # noqa: BLE001 - a busy ledger skips one beat; the lease timeout allows many
                log.warning("render %s: heartbeat not written", self._render_id, exc_info=True)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
