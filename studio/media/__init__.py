"""Image and video I/O for the studio: checked inputs in, browser-playable MP4 out.

Everything a user uploads passes through here before any model sees it, so this package
is where hostile or merely odd files become either plain RGB arrays or one of the specific
errors in :mod:`studio.media.errors` (re-exported here):

- ``read_image``: Pillow, declared size checked before decoding, EXIF orientation applied,
  every colour mode (CMYK, 16-bit, grayscale, palette, alpha) turned into 8-bit RGB;
- ``probe_video`` / ``VideoReader``: PyAV (FFmpeg) from a short list of container formats,
  streamed frame by frame in constant memory, rotated as phones ask, optionally downscaled
  while decoding;
- ``VideoWriter`` / ``write_video``: H.264 yuv420p in MP4 (BT.709 tags, ``+faststart``)
  with the driving video's audio copied (AAC) or re-encoded to AAC, trimmed to the video.

Example::

    from studio import media

    info = media.probe_video("driving.mov")
    with media.VideoWriter("out.mp4", fps=info.fps, width=info.width, height=info.height,
                           audio_from="driving.mov") as writer:
        for frames in media.VideoReader("driving.mov").chunks(16):   # (<=16, H, W, 3)
            writer.write(255 - frames)
    print(media.sha256_file("out.mp4"))
"""

from studio.media.digest import sha256_file
from studio.media.errors import (
    EmptyVideo,
    ImageTooLarge,
    MediaError,
    MediaFileMissing,
    NotAVideo,
    UnreadableImage,
    UnreadableVideo,
    VideoExceedsLimit,
    VideoTooLarge,
)
from studio.media.image import read_image
from studio.media.limits import MAX_FPS, MAX_IMAGE_PIXELS, MAX_SIDE, MAX_VIDEO_SECONDS, DecodedLimits
from studio.media.probe import VideoInfo, probe_video
from studio.media.reader import VideoReader, luma_planes
from studio.media.writer import VideoWriter, write_video

__all__ = [
    "MAX_FPS",
    "DecodedLimits",
    "VideoExceedsLimit",
    "MAX_IMAGE_PIXELS",
    "MAX_SIDE",
    "MAX_VIDEO_SECONDS",
    "EmptyVideo",
    "ImageTooLarge",
    "MediaError",
    "MediaFileMissing",
    "NotAVideo",
    "UnreadableImage",
    "UnreadableVideo",
    "VideoInfo",
    "VideoReader",
    "VideoTooLarge",
    "VideoWriter",
    "probe_video",
    "read_image",
    "sha256_file",
    "luma_planes",
    "write_video",
]
