"""Errors raised by the watermark package (one base class, leaves name the condition)."""


class WatermarkError(Exception):
    """Base class: a watermark or provenance operation failed."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__


# --- provenance (C2PA) -------------------------------------------------------------------


class ProvenanceError(WatermarkError):
    """A C2PA manifest could not be written or read."""


class SigningCredentialInvalid(ProvenanceError):
    """The signing certificate chain or private key is unusable."""


class UnreadableMedia(ProvenanceError):
    """The file is not a readable video (missing, empty, truncated or corrupt)."""


class NotAnMp4(UnreadableMedia):
    """The file is not an ISO-BMFF (MP4/MOV) container, so it cannot carry our manifest."""


# --- invisible watermark ---------------------------------------------------------------------


class FrameTooSmall(WatermarkError):
    """A frame is too small to carry (or be searched for) the watermark."""


class UnsupportedFrames(WatermarkError):
    """Frames are not 8-bit RGB arrays shaped (T, H, W, 3) or (H, W, 3), or there are none."""


class PayloadOutOfRange(WatermarkError):
    """The payload is not an integer in [0, 2**48)."""


class WeakWatermarkKey(WatermarkError):
    """The watermark key is shorter than 16 bytes (or not bytes at all)."""
