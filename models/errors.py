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


class CheckpointError(MotionError):
    """A motion-model checkpoint cannot be used. The leaves below name why; messages never
    contain the file's path (the caller knows which file it passed)."""


class CheckpointNotFound(CheckpointError):
    """No checkpoint file or converted checkpoint folder exists at the given location."""


class CheckpointUnsafe(CheckpointError):
    """The file is a pickle that would run code when loaded; it is refused without running it."""


class CheckpointCorrupt(CheckpointError):
    """The file is truncated or damaged and cannot be read."""


class CheckpointInvalid(CheckpointError):
    """The file can be read but is not a FOMM checkpoint (no 'generator' / 'kp_detector' weights)."""


class CheckpointMismatch(CheckpointError):
    """The weights do not fit the networks: keys are missing, unexpected or have the wrong shape."""
