"""The one animator interface: photo + driving frames + proof of consent -> animated frames.

Every animator takes a ``VerifiedConsent`` as its first argument. Only
``consent.verify_consent`` can make one, so the motion models cannot be reached without
consent, even from Python. The animator checks the type itself (fail closed) and does not
trust type hints alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from consent.verify import VerifiedConsent

# progress(done_frames, total_frames_or_None)
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True, kw_only=True)
class AnimationOptions:
    """How to animate. Defaults follow what users of the open animators expect."""

    relative: bool = True  # FOMM "relative" motion transfer (vs absolute keypoints)
    adapt_movement_scale: bool = True  # scale driving motion to the source face size
    find_best_frame: bool = True  # start from the driving frame whose pose is closest to the source
    # with find_best_frame, which frame is the reference: "resting", the driver's most typical
    # frame (the medoid), so that a different person's neutral face gives back the photo unmoved,
    # or "closest" to the source's shape (FOMM's find_best_frame; best when the photo's own
    # person drives). The FOMM animator always uses "closest".
    reference: str = "resting"
    paste_back: bool = True  # animate a face crop and blend it back into the full photo
    crop_size: int = 256  # model resolution of the face crop
    max_output_side: int = 1920  # the output keeps the photo's resolution, capped at this side
    face_index: int | None = None  # which face when the photo shows several (never guessed)

    def __post_init__(self) -> None:
        if self.reference not in ("resting", "closest"):
            raise ValueError(f"reference must be 'resting' or 'closest', not {self.reference!r}")


class Animator(ABC):
    """Base class for animators. ``driving`` must be re-iterable (a list, or a video reader
    that re-opens its file) because best-frame alignment reads it twice; frames are
    ``(h, w, 3)`` uint8 RGB, any size. Output frames are ``(H', W', 3)`` uint8 RGB, all the
    same size, yielded one by one so memory does not grow with the clip length."""

    name: str = "animator"

    def animate(
        self,
        consent: VerifiedConsent,
        source: np.ndarray,
        driving: Iterable[np.ndarray],
        *,
        options: AnimationOptions = AnimationOptions(),
        progress: ProgressCallback | None = None,
        total_frames: int | None = None,
    ) -> Iterator[np.ndarray]:
        if not isinstance(consent, VerifiedConsent):
            raise TypeError("animate() needs a VerifiedConsent from consent.verify_consent")
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ValueError(f"source must be (H, W, 3) uint8 RGB, got {source.shape} {source.dtype}")
        return self._animate(source, driving, options=options, progress=progress, total_frames=total_frames)

    @abstractmethod
    def _animate(
        self,
        source: np.ndarray,
        driving: Iterable[np.ndarray],
        *,
        options: AnimationOptions,
        progress: ProgressCallback | None,
        total_frames: int | None,
    ) -> Iterator[np.ndarray]:
        """Yield the animated frames; called only after the consent check."""
