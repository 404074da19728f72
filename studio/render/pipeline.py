"""The one render entry point: ``RenderPipeline.render(request, progress)``.

Every frame the studio produces goes through here, in this order::

    1 read inputs -> 2 analyse the face -> 3 verify consent (this face, use, time)
    -> 4 animate -> 5 watermark (and read it back) -> 6 encode + C2PA -> 7 ledger -> move into place

Refusals stop at step 3, before any animation, and are logged with their reason; so does a
request that drops the visible label a credential requires. The consent's duration and the
studio's own limits are enforced again on the decoded frames (``media.DecodedLimits``): a file
whose header under-declares its length is stopped at the first frame past the limit and the
render fails with that reason, delivering nothing.

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

import itertools
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from consent.errors import ConsentError
from consent.verify import ConsentRequest, VerifiedConsent, verify_consent
from models.animate import AnimationOptions, Animator
from models.errors import MotionError
from studio import media
from studio.config import StudioConfig
from studio.errors import StudioError
from studio.ledger.records import QUEUED_OWNER  # a render admitted for the farm and not yet claimed
from studio.render.receipt import Receipt

if TYPE_CHECKING:  # pragma: no cover
    from studio.ledger import Ledger

log = logging.getLogger(__name__)

# progress(stage, done, total): total is None while unknown
ProgressCallback = Callable[[str, int, "int | None"], None]

_PAYLOAD_BITS = 48
_CHUNK = 8  # frames per watermark/encode batch
# Frames the read-back check has read when it asks the detector (the mark is in every frame):
# an unaltered file reads from the first few without a search (the detector's untouched-geometry
# stage), and more frames are read only if they do not.
_CHECK_POINTS = (4, 16, 64)
_MARK_ATTEMPTS = 3  # renders (each under a fresh render id) before a failed watermark check is final
LEASE_TIMEOUT_SECONDS = 60.0  # an open render whose heartbeat is older than this has no live owner
HEARTBEAT_SECONDS = 5.0  # how often a running render refreshes its heartbeat

# Render ids this process is running now: recovery never touches them, even when a dead
# process that owned another render had the same pid as this one.
_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


class RenderRefused(StudioError):
    """The render was refused before any animation (the reason is in the message)."""


class WatermarkNotConfirmed(StudioError):
    """The encoded output did not read back with its own watermark; nothing was delivered."""


class ConsentRevokedDuringRender(StudioError):
    """The credential was revoked while the render was running; the output was discarded."""


class RenderCancelled(StudioError):
    """Someone cancelled the render (it is failed in the ledger with who and when); nothing was delivered."""


class LabelRequired(RenderRefused):
    """The request drops the visible AI label that the consent credential requires."""


class TermsExceeded(RenderRefused):
    """The decoded frames went past the consent's duration or a studio limit; the render was stopped."""


class InputsChanged(RenderRefused):
    """A queued render's input files are not the bytes that were admitted for it."""


class UnknownAnimator(StudioError):
    """The requested animator is not available in this studio."""


@dataclass(frozen=True, kw_only=True)
class RenderRequest:
    """What an operator asks for. Paths point at uploaded or local files."""

    photo: Path
    driving: Path
    credential_id: str
    purpose: str
    project: str
    operator: str
    animator: str = "auto"  # "auto" | "landmark" | "fomm"
    options: AnimationOptions = field(default_factory=AnimationOptions)
    label_ai: bool | None = None  # None: follow the credential's disclosure commitment


@dataclass(frozen=True)
class RenderResult:
    video_path: Path
    receipt_path: Path
    render_id: str
    receipt: dict[str, Any]  # the delivered receipt's fields (its bytes are in receipt_path)
    # Every stage's wall time, including those measured after the receipt was frozen (ledger).
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class StageTimer:
    """Wall time per stage, reported in the receipt and by the benchmark."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass(frozen=True)
class _Job:
    """A verified request on its way through the render attempts (the same for each)."""

    request: RenderRequest
    verified: VerifiedConsent
    animator: Animator
    photo: np.ndarray
    info: media.VideoInfo
    inputs: dict[str, Any]
    timer: StageTimer  # one for every attempt: the receipt's stage times are what the render cost in all
    report: ProgressCallback
    attempt: int = 1  # which render id of the request this is (1 to _MARK_ATTEMPTS)


@dataclass(frozen=True)
class Admission:
    """An admitted render: consent verified, ``render.started`` committed under ``render_id``."""

    job: _Job
    render_id: str
    payload: int


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_render_id() -> tuple[str, int]:
    """A fresh render id and its 48-bit watermark payload (the id's first 12 hex digits)."""
    payload = secrets.randbits(_PAYLOAD_BITS)
    return f"{payload:012x}{secrets.token_hex(10)}", payload


def payload_of(render_id: str) -> int:
    return int(render_id[:12], 16)


class RenderPipeline:
    """Consent-gated rendering. Build it with ``from_config``; tests pass tiny parts."""

    def __init__(
        self,
        *,
        config: StudioConfig,
        ledger: Ledger,
        watermark_key: bytes,
        signer: Any,
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
        self.signer = signer
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
    def from_config(cls, config: StudioConfig, **options: Any) -> RenderPipeline:
        """The studio's pipeline; ``options`` are passed to the constructor (limits, lease times)."""
        from models.face import FaceAnalyzer
        from models.landmark_animator import LandmarkAnimator
        from studio.identity import load_or_create_watermark_key
        from studio.ledger import Ledger
        from watermark.certs import StudioSigner

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
            signer=StudioSigner.load_or_create(config.home / "c2pa"),
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
        """Steps 1-3 and ``render.started``: read, analyse, verify consent, then open the render.

        A failure before the render is opened is a refusal, logged and raised. In-process
        (``queued=False``) this process takes the render's lease at once; for the farm
        (``queued=True``) the render is opened without an owner, marked queued, and a worker
        claims it (``studio.render.farm``).
        """
        job = self._check(request, progress)
        render_id, payload = new_render_id()
        self._open(job, render_id, payload, queued=queued)
        return Admission(job=job, render_id=render_id, payload=payload)

    def produce(self, admission: Admission) -> RenderResult:
        """Steps 4-7 of an admitted render this process holds the lease of; raises on failure."""
        job = admission.job
        # 4-7: animate, watermark, encode, confirm, sign, log. An attempt whose first marked
        # frames or encoded file do not read back with its own mark is discarded and logged as
        # failed; the mark's strength on a given picture depends a little on the payload (the
        # render id), so it is rendered again under a fresh id, at most ``_MARK_ATTEMPTS`` times
        # in all, before giving up.
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

    def _check(
        self, request: RenderRequest, progress: ProgressCallback | None, *, admitted: tuple[str, dict] | None = None
    ) -> _Job:
        """Steps 1-3: read, analyse, verify. Any failure here is a refusal: nothing is animated.

        ``admitted`` (render id, its started inputs): re-checking a render admitted before; the
        input files must hash as then, and a refusal closes that render instead of a new one.
        """
        report = progress or (lambda stage, done, total: None)
        timer = StageTimer()
        inputs: dict[str, Any] = {"photo": None, "driving": None}
        try:
            t0 = time.perf_counter()
            report("reading inputs", 0, None)
            inputs["photo"] = media.sha256_file(request.photo)
            inputs["driving"] = media.sha256_file(request.driving)
            if admitted is not None and (admitted[1].get("photo"), admitted[1].get("driving")) != (
                inputs["photo"], inputs["driving"]
            ):
                raise InputsChanged("the input files are not the ones admitted for this render (their hashes differ)")
            photo = media.read_image(request.photo)
            info = media.probe_video(request.driving, max_duration_seconds=self.max_video_seconds)
            timer.add("read", time.perf_counter() - t0)

            t0 = time.perf_counter()
            report("analysing the face", 0, None)
            face = self.face_analyzer().analyze(photo, face_index=request.options.face_index)
            timer.add("face", time.perf_counter() - t0)

            t0 = time.perf_counter()
            report("verifying consent", 0, None)
            verified = self._verify(request, duration=info.duration_seconds, embedding=face.embedding)
            if verified.credential.disclosure_required and request.label_ai is False:
                raise LabelRequired(
                    "the consent credential requires a visible \"AI-generated\" label on every frame "
                    "(disclosure: label-as-ai-generated), so a render without it is refused; "
                    "render with the label instead"
                )
            animator = self._animator(request.animator)
            timer.add("consent", time.perf_counter() - t0)
        except (ConsentError, MotionError, StudioError) as exc:
            if admitted is not None:
                self.ledger.refuse_started(render_id=admitted[0], reason=exc.user_message(), error=type(exc).__name__)
                raise
            self.ledger.render_refused(
                operator=request.operator,
                credential_id=request.credential_id,
                reason=exc.user_message(),
                error=type(exc).__name__,
                inputs={k: v for k, v in inputs.items() if v},
            )
            raise
        return _Job(request, verified, animator, photo, info, inputs, timer, report)

    def _open(self, job: _Job, render_id: str, payload: int, *, queued: bool) -> None:
        """``render.started`` for ``render_id``, its lease held by this process (or queued)."""
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
                        "label_applied": _label_of(job)},
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

    def _attempt(self, job: _Job, render_id: str, payload: int) -> RenderResult:
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

    def _verify(self, request: RenderRequest, *, duration: float, embedding: Any) -> VerifiedConsent:
        credential = self.ledger.get_credential(request.credential_id)
        return verify_consent(
            credential,
            request=ConsentRequest(purpose=request.purpose, project=request.project, duration_seconds=duration),
            trust=self.ledger.trust(),
            status=self.ledger.revocation_status(),
            likeness=None if embedding is None else [float(v) for v in embedding],
            now=self._clock(),
            max_distance_ceiling=self.config.max_face_distance,
        )

    def _produce(
        self, job: _Job, render_id: str, payload: int, job_dir: Path, *, cancelled: Callable[[], str | None] = lambda: None
    ) -> RenderResult:
        from watermark import Watermarker
        from watermark.provenance import read_manifest, sign_mp4

        request, verified, animator, photo, info = job.request, job.verified, job.animator, job.photo, job.info
        inputs, timer, report = job.inputs, job.timer, job.report
        # The log as of this render's start, signed: an auditor holding the receipt detects a rollback.
        ledger_checkpoint = self.ledger.signed_checkpoint().to_note()

        marker = Watermarker(self.watermark_key)
        label = _label_of(job)  # the same decision render.started recorded
        total = info.frame_count
        encoded = job_dir / "encoded.mp4"
        signed = job_dir / "signed.mp4"

        # 4-6a: animate, label, watermark and encode, streaming in small batches.
        options = request.options
        # The consent's duration and the studio's limits hold on the decoded frames, not the header.
        if verified.credential.max_duration_seconds <= self.max_video_seconds:
            limits = media.DecodedLimits(seconds=verified.credential.max_duration_seconds, seconds_source="the consent")
        else:
            limits = media.DecodedLimits(seconds=self.max_video_seconds, seconds_source="the studio's limit")
        driving = media.VideoReader(request.driving, max_duration_seconds=self.max_video_seconds, limits=limits)
        frames = _stop_past_limits(animator.animate(
            verified,
            photo,
            driving,
            options=options,
            progress=lambda done, n: report("animating", done, n or total),
            total_frames=total,
        ))
        writer: media.VideoWriter | None = None
        embedder = None
        written = 0
        t_first_check = 0.0
        t_anim = t_label = t_mark = t_enc = 0.0
        try:
            for batch, produce_seconds in _timed_batches(frames, _CHUNK):
                _stop_if_cancelled(cancelled)
                t_anim += produce_seconds
                if label:
                    t0 = time.perf_counter()
                    for frame in batch:  # the batch is ours: label it in place
                        draw_ai_label(frame, out=frame)
                    t_label += time.perf_counter() - t0
                t0 = time.perf_counter()
                if embedder is None:
                    embedder = marker.embedder(batch.shape[1], batch.shape[2], payload)
                marked = embedder.embed(batch, out=batch)  # the batch is ours: mark it in place
                t_mark += time.perf_counter() - t0
                if written == 0:
                    # Does the mark hold on this picture at all? A photo that is fine texture
                    # everywhere (grass, gravel) behind the face can leave it too little room even
                    # before encoding; stop here rather than animate the whole clip for nothing.
                    t0 = time.perf_counter()
                    first = marker.accumulator()
                    # Luma at full size first (one SIMD pass), then the detector's own shrink of a
                    # luma plane: 30 % cheaper at 1080p than shrinking the RGB frames.
                    first.add_luma(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in marked]))
                    holds = first.confirms(payload)
                    t_first_check = time.perf_counter() - t0
                    if not holds:
                        raise WatermarkNotConfirmed(
                            "the first frames did not read back with their watermark (before encoding); "
                            "the render was stopped and nothing was delivered"
                        )
                t0 = time.perf_counter()
                if writer is None:
                    writer = media.VideoWriter(
                        encoded, fps=info.fps, width=batch.shape[2], height=batch.shape[1], audio_from=request.driving
                    )
                writer.write(marked)
                t_enc += time.perf_counter() - t0
                written += len(batch)
            if writer is None:
                raise StudioError("the driving video produced no frames")
            t0 = time.perf_counter()
            writer.close()
            t_enc += time.perf_counter() - t0
        except BaseException:
            if writer is not None:
                writer.abort()  # closes the encoder and deletes the partial file
            raise
        timer.add("animate", t_anim)
        if label:
            timer.add("label", t_label)
        timer.add("watermark", t_mark)
        timer.add("encode", t_enc)

        # 5b: the delivered bytes must carry the mark: decode the encoded file and detect.
        t0 = time.perf_counter()
        report("confirming the watermark", 0, None)
        acc = marker.accumulator()
        # The detector reads brightness at ~320 px, so the read-back takes the decoder's luma
        # plane as it is (no colour conversion, no second probe of a file written just now) and
        # stops early; it still reads the delivered bytes. The first frames almost always
        # suffice; more are read only if they do not.
        checked, detection = 0, None
        for plane in media.luma_planes(encoded):
            acc.add_luma(plane)
            checked += 1
            if checked in _CHECK_POINTS:
                detection = acc.result()
                if detection.payload == payload or checked == _CHECK_POINTS[-1]:
                    break
                detection = None  # read on
        if detection is None:
            detection = acc.result()  # a clip shorter than the next check point
        timer.add("watermark_check", time.perf_counter() - t0 + t_first_check)
        if detection.payload != payload:
            raise WatermarkNotConfirmed("the rendered video did not read back with its watermark; it was discarded")

        # 6b: C2PA manifest.
        t0 = time.perf_counter()
        report("signing provenance", 0, None)
        sign_mp4(
            encoded,
            signed,
            signer=self.signer,
            render_id=render_id,
            consent_id=verified.credential.credential_id,
            watermark_payload=payload,
            ledger_checkpoint=ledger_checkpoint,  # the file itself proves the log it was made in
        )
        manifest = read_manifest(signed, trust_anchor_pem=self.signer.trust_anchor_pem)
        timer.add("provenance", time.perf_counter() - t0)

        # 7: last revocation and cancel checks, ledger commit, then move into place.
        t0 = time.perf_counter()
        _stop_if_cancelled(lambda: cancelled() or self.ledger.cancel_requested(render_id))
        if self.ledger.revocation_status().is_revoked(verified.credential.credential_id):
            raise ConsentRevokedDuringRender("the consent credential was revoked during the render; output discarded")
        fields = {
            "render_id": render_id,
            "credential_id": verified.credential.credential_id,
            "subject": verified.credential.subject_name,
            "operator": request.operator,
            "purpose": request.purpose,
            "project": request.project,
            "animator": animator.name,
            "options": asdict(options),
            "ai_label": bool(label),
            "ai_label_required": bool(verified.credential.disclosure_required),
            "inputs": {"photo_sha256": inputs["photo"], "driving_sha256": inputs["driving"]},
            "output_sha256": media.sha256_file(signed),
            "frames": written,
            "fps": info.fps,
            "watermark_payload": payload,
            "watermark": {"payload": f"{payload:012x}", "confidence": float(detection.confidence),
                          "frames_checked": checked},
            "manifest": {"status": manifest.status},
            "likeness_distance": verified.likeness_distance,
            "consent_verified_at": verified.verified_at.isoformat(),
            "finished_at": self._clock().isoformat(),
            "stage_seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
            # Render ids tried for this request (the earlier ones are failed renders in the
            # ledger); stage_seconds above add up every attempt's stages.
            "attempts": job.attempt,
            "ledger_checkpoint": ledger_checkpoint,
        }
        # Frozen before the commit: the ledger hashes these bytes and they are what is delivered.
        receipt = Receipt.freeze(fields)
        receipt_tmp = job_dir / "receipt.json"
        receipt_tmp.write_bytes(receipt.text)
        self.ledger.render_finished(render_id=render_id, receipt=receipt)
        timer.add("ledger", time.perf_counter() - t0)

        # Committed: from here a crash leaves a finished, undelivered render that recover() settles.
        report("delivering", written, written)
        out = self.config.outputs_dir / f"{render_id}.mp4"
        receipt_path = self.config.outputs_dir / f"{render_id}.receipt.json"
        os.replace(signed, out)
        os.replace(receipt_tmp, receipt_path)
        try:
            self.ledger.render_delivered(render_id=render_id)
        except StudioError:  # delivered all the same; the next start sees the file in place and marks it
            log.warning("render %s: delivered, but the delivery mark was not written", render_id, exc_info=True)
        stage_seconds = {k: round(v, 3) for k, v in timer.seconds.items()}
        log.info("render %s delivered: %d frames; stage seconds %s", render_id, written, stage_seconds)
        report("done", written, written)
        return RenderResult(video_path=out, receipt_path=receipt_path, render_id=render_id, receipt=receipt.fields,
                            stage_seconds=stage_seconds)


def _label_of(job: _Job) -> bool:
    """Whether this render carries the visible AI label (a required one is never dropped: see render())."""
    required = job.verified.credential.disclosure_required
    return required or bool(job.request.label_ai)


def _stop_past_limits(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``frames``; a decoded frame past the consent's or studio's limits stops the render as a refusal."""
    try:
        yield from frames
    except media.VideoExceedsLimit as exc:
        raise TermsExceeded(f"{exc.user_message()} The render was stopped and nothing was delivered.") from exc


def _stop_if_cancelled(cancelled: Callable[[], str | None]) -> None:
    who = cancelled()
    if who is not None:
        raise RenderCancelled(f"the render was cancelled by {who}; nothing was delivered")


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


def _timed_batches(frames: Iterable[np.ndarray], n: int) -> Iterator[tuple[np.ndarray, float]]:
    """``(<=n, H, W, 3)`` batches of ``frames`` and the seconds spent producing each one."""
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        batch = list(itertools.islice(it, n))
        elapsed = time.perf_counter() - t0
        if not batch:
            return
        yield np.stack(batch), elapsed


def draw_ai_label(frame: np.ndarray, text: str = "AI-generated", *, out: np.ndarray | None = None) -> np.ndarray:
    """A visible disclosure label in the bottom-left corner, sized to the frame (``out=frame``: in place)."""
    import cv2

    out = frame.copy() if out is None else out
    h, w = out.shape[:2]
    scale = max(0.35, min(w, h) / 640)
    thickness = max(1, int(round(scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(3, int(6 * scale))
    x0, y1 = pad, h - pad
    y0 = y1 - th - base - 2 * pad
    box = out[max(0, y0) : y1, x0 : x0 + tw + 2 * pad]
    box[:] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    cv2.putText(out, text, (x0 + pad, y1 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
