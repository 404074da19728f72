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
