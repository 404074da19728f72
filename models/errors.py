"""User-facing errors from face analysis and animation.

Bad shapes or configurations passed by code are programming errors and raise ``ValueError``
(diffusers style); conditions caused by the user's material (no face, several faces, a face
too small, a checkpoint that does not fit) raise a ``MotionError`` leaf.
"""


class MotionError(Exception):
    """Base class: the photo, video or model cannot be animated as given."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__
