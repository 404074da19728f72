"""User-facing errors from face analysis and animation.

Bad shapes or configurations passed by code are programming errors and raise ``ValueError``
(diffusers style); conditions caused by the user's material (no face, several faces, a face
too small, a checkpoint that does not fit) raise a ``MotionError`` leaf.
"""


class MotionError(Exception):
    """Base class: the photo, video or model cannot be animated as given."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__


class NoFaceFound(MotionError):
    """No face could be found in the photo (or in any frame of the driving video)."""


class MultipleFaces(MotionError):
    """The photo shows several faces and none was chosen; the message lists them so the
    caller can pick one with ``face_index``. We never guess which person is meant."""


class FaceTooSmall(MotionError):
    """The face is too small to animate (fewer pixels across than the analyser needs)."""


class FaceCutOff(MotionError):
    """The face runs past the edge of the photo, so part of it would have to be invented."""
