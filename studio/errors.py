"""Errors raised by the studio layer (I/O, ledger, pipeline, users).

``USER_FACING`` lists the base classes whose messages may be shown to users; the Gradio app
and the CLI are the only places that turn them into output.
"""

from consent.errors import ConsentError
from models.errors import MotionError
from watermark.errors import WatermarkError


class StudioError(Exception):
    """Base class for studio errors; ``user_message()`` is what a user sees."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__


USER_FACING: tuple[type[Exception], ...] = (StudioError, ConsentError, MotionError, WatermarkError)


# ---------------------------------------------------------------- the render (studio.render)
class RenderRefused(StudioError):
    """The render was refused by a check of its terms (the reason is in the message)."""


class LabelRequired(RenderRefused):
    """The request drops the visible AI label that the consent credential requires."""


class TermsExceeded(RenderRefused):
    """The decoded frames went past the consent's duration or a studio limit; the render was stopped."""


class InputsChanged(RenderRefused):
    """A queued render's input files are not the bytes that were admitted for it."""


class WatermarkNotConfirmed(StudioError):
    """The output did not read back with its own watermark; nothing was delivered."""


class ConsentRevokedDuringRender(StudioError):
    """The credential was revoked while the render was running; the output was discarded."""


class RenderCancelled(StudioError):
    """Someone cancelled the render (it is failed in the ledger with who and when); nothing was delivered."""


class UnknownAnimator(StudioError):
    """The requested animator is not available in this studio."""
