"""The values that travel through a render: what is asked, what comes back, and the job between.

``RenderRequest`` and ``RenderResult`` are the public ones (also importable from
``studio.render.pipeline``); ``Job`` and ``Admission`` carry a verified request from the
admission steps to the production steps, in one process or across the farm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from consent.verify import VerifiedConsent
from models.animate import AnimationOptions, Animator

if TYPE_CHECKING:  # pragma: no cover
    from studio import media

# progress(stage, done, total): total is None while unknown
ProgressCallback = Callable[[str, int, "int | None"], None]


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

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``stage`` (a block that raises adds nothing)."""
        t0 = time.perf_counter()
        yield
        self.add(stage, time.perf_counter() - t0)

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


@dataclass(frozen=True)
class Job:
    """A verified request on its way through the render attempts (the same for each)."""

    request: RenderRequest
    verified: VerifiedConsent
    animator: Animator
    photo: np.ndarray  # (H, W, 3) uint8 RGB
    info: media.VideoInfo
    inputs: dict[str, Any]  # the input files' sha256 ("photo", "driving")
    timer: StageTimer  # one for every attempt: the receipt's stage times are what the render cost in all
    report: ProgressCallback
    attempt: int = 1  # which render id of the request this is (1 to the pipeline's attempt limit)

    @property
    def label(self) -> bool:
        """Whether this render carries the visible AI label (a required one is never dropped)."""
        return self.verified.credential.disclosure_required or bool(self.request.label_ai)


@dataclass(frozen=True)
class Admission:
    """An admitted render: consent verified, ``render.started`` committed under ``render_id``."""

    job: Job
    render_id: str
    payload: int
