"""Errors raised by the watermark package (one base class, leaves name the condition)."""


class WatermarkError(Exception):
    """Base class: a watermark or provenance operation failed."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__
