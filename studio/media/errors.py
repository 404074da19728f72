"""Errors that ``studio.media`` raises for images and videos a user supplies.

Each leaf names the condition, so the pipeline and the UI can react to it (refuse the upload,
suggest a smaller file) without parsing messages. Messages describe the file's problem in
words a user can act on; they never contain file paths, because uploads are saved under
server-side names that mean nothing to the user and may reveal the data folder.
"""

from __future__ import annotations

from studio.errors import StudioError


class MediaError(StudioError):
    """An image or video supplied by a user cannot be used."""


class MediaFileMissing(MediaError):
    """The file named as input does not exist or cannot be opened for reading."""


class UnreadableImage(MediaError):
    """The image is corrupt, truncated, or in a format or colour mode the studio does not read."""


class ImageTooLarge(MediaError):
    """The image's declared size exceeds the limits (refused before its pixels are decoded)."""


class NotAVideo(MediaError):
    """The file is a valid media file but holds no video: audio only, or a still image."""


class EmptyVideo(MediaError):
    """The file is a video container with no frames in it."""


class UnreadableVideo(MediaError):
    """The video is corrupt or truncated, or not in a container format the studio reads."""


class VideoTooLarge(MediaError):
    """The video's frames are larger than the limit, or it runs longer than allowed."""


class VideoExceedsLimit(VideoTooLarge):
    """While decoding, the frames went past a limit their header did not show (length, rate, size)."""
