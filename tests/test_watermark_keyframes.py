"""Keyframes: the embedder analyses a frame only when the host changed, and reuses the
rounded mark otherwise. Marking in place must equal marking into a new array, a still host
must cost one analysis, moving content and cuts must be re-analysed, and the reused mark
must still read back on a mostly static clip (an animated face over a still photo)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from studio.media.attacks import h264, panning_clip
from watermark import Watermarker
from watermark.embed import _MAX_KEY_INTERVAL, _MIN_KEY_INTERVAL
from watermark.errors import UnsupportedFrames

KEY = b"studio-secret-for-keyframe-tests-0123"
PAYLOAD = 0x1234_5678_9ABC


@pytest.fixture(scope="module")
def wm() -> Watermarker:
    cv2.setNumThreads(1)
    return Watermarker(KEY)


def _talking_photo(image: np.ndarray, frames: int) -> np.ndarray:
    """A still 320x480 photo where only a 64x64 patch moves (like a pasted-back face)."""
    base = np.ascontiguousarray(cv2.resize(image, (480, 320), interpolation=cv2.INTER_AREA))
    clip = np.repeat(base[None], frames, axis=0)  # (T, 320, 480, 3)
    patch = base[100:164, 200:264]
    for t in range(frames):
        clip[t, 100:164, 200:264] = np.roll(patch, shift=(t % 7, 2 * (t % 5)), axis=(0, 1))
    return clip


def test_marking_in_place_equals_marking_into_a_new_array(wm: Watermarker, astronaut: np.ndarray) -> None:
    clip = panning_clip(astronaut, height=160, width=200, frames=10)
    expected = wm.embedder(160, 200, PAYLOAD).embed(clip)
    inplace = clip.copy()
    returned = wm.embedder(160, 200, PAYLOAD).embed(inplace, out=inplace)
    assert returned is inplace
    assert np.array_equal(inplace, expected)
    assert not np.array_equal(clip, expected)  # the mark changed something


def test_large_frames_marked_in_bands_of_rows_on_threads_equal_one_pass(
    wm: Watermarker, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watermark import embed

    clip = panning_clip(astronaut, height=720, width=1280, frames=6)
    assert 720 * 1280 >= embed._PARALLEL_ADD_PIXELS
    monkeypatch.setattr(embed, "_ADD_THREADS", 1)
    one_pass = wm.embedder(720, 1280, PAYLOAD).embed(clip)
    monkeypatch.setattr(embed, "_ADD_THREADS", 3)  # three bands, whatever this machine's cores
    embedder = wm.embedder(720, 1280, PAYLOAD)
    banded = np.concatenate([embedder.embed(clip[:4]), embedder.embed(clip[4:])])
    inplace = clip.copy()
    embedder = wm.embedder(720, 1280, PAYLOAD)
    embedder.embed(inplace, out=inplace)
    assert np.array_equal(banded, one_pass) and np.array_equal(inplace, one_pass)
    assert not np.array_equal(one_pass, clip)


def test_out_must_match_the_frames(wm: Watermarker, astronaut: np.ndarray) -> None:
    clip = panning_clip(astronaut, height=160, width=200, frames=2)
    emb = wm.embedder(160, 200, PAYLOAD)
    with pytest.raises(UnsupportedFrames, match="out must be"):
        emb.embed(clip, out=np.empty((1, 160, 200, 3), np.uint8))
    with pytest.raises(UnsupportedFrames, match="out must be"):
        emb.embed(clip, out=np.empty(clip.shape, np.float32))


def test_a_still_host_is_analysed_once_and_moving_content_again(wm: Watermarker, astronaut: np.ndarray) -> None:
    still = np.repeat(cv2.resize(astronaut, (256, 256))[None], 24, axis=0)
    emb = wm.embedder(256, 256, PAYLOAD)
    for chunk in np.split(still, 3):
        emb.embed(chunk)
    assert emb.keyframes == 1

    talking = _talking_photo(astronaut, 24)
    emb = wm.embedder(320, 480, PAYLOAD)
    emb.embed(talking)
    assert emb.keyframes == 1  # a 64x64 moving patch is under 3 % of the probe pixels

    panning = panning_clip(astronaut, height=256, width=256, frames=24, zoom=0.5)
    emb = wm.embedder(256, 256, PAYLOAD)
    emb.embed(panning)
    assert 24 // _MIN_KEY_INTERVAL - 1 <= emb.keyframes <= 24 // _MIN_KEY_INTERVAL + 1


def test_a_cut_is_analysed_at_once_and_a_long_still_is_refreshed(wm: Watermarker, astronaut: np.ndarray,
                                                                  grace_hopper: np.ndarray) -> None:
    a = cv2.resize(astronaut, (256, 256))
    b = cv2.resize(grace_hopper, (256, 256))
    emb = wm.embedder(256, 256, PAYLOAD)
    emb.embed(np.stack([a, a, b]))
    assert emb.keyframes == 2  # the cut at frame 2 did not wait for the minimum interval

    emb = wm.embedder(256, 256, PAYLOAD)
    emb.embed(np.repeat(a[None], _MAX_KEY_INTERVAL + 1, axis=0))
    assert emb.keyframes == 2


def test_a_reused_mark_reads_back_after_h264(wm: Watermarker, astronaut: np.ndarray) -> None:
    clip = _talking_photo(astronaut, 25)
    emb = wm.embedder(320, 480, PAYLOAD)
    marked = np.concatenate([emb.embed(chunk) for chunk in np.array_split(clip, 4)])
    assert emb.keyframes == 1
    found = wm.detect(h264(marked, crf=23))
    assert found.payload == PAYLOAD


def test_the_decoders_luma_plane_reads_the_mark_like_rgb_frames(wm: Watermarker, astronaut: np.ndarray,
                                                                tmp_path) -> None:
    from studio import media

    clip = _talking_photo(astronaut, 16)
    marked = wm.embedder(320, 480, PAYLOAD).embed(clip)
    path = tmp_path / "marked.mp4"
    media.write_video(path, marked, fps=25)
    from_luma = wm.accumulator()
    for plane in media.VideoReader(path).luma():
        from_luma.add_luma(plane)
    from_rgb = wm.accumulator()
    for chunk in media.VideoReader(path).chunks(8):
        from_rgb.add(chunk)
    assert from_luma.result().payload == from_rgb.result().payload == PAYLOAD
    unmarked = wm.accumulator()
    unmarked.add_luma(cv2.cvtColor(clip[0], cv2.COLOR_RGB2GRAY))
    assert unmarked.result().payload is None


def test_add_luma_rejects_what_it_cannot_read(wm: Watermarker) -> None:
    from watermark.errors import FrameTooSmall

    acc = wm.accumulator()
    with pytest.raises(UnsupportedFrames):
        acc.add_luma(np.zeros((2, 200, 200, 3), np.uint8))  # RGB is what add() takes
    with pytest.raises(UnsupportedFrames):
        acc.add_luma(np.zeros((200, 200), np.float32))
    with pytest.raises(UnsupportedFrames):
        acc.add_luma(np.zeros((0, 200, 200), np.uint8))
    with pytest.raises(FrameTooSmall):
        acc.add_luma(np.zeros((40, 200), np.uint8))
    acc.add_luma(np.full((200, 300), 7, np.uint8))
    with pytest.raises(UnsupportedFrames, match="size changed"):
        acc.add_luma(np.full((200, 320), 7, np.uint8))


@pytest.mark.parametrize("seed", range(8))
def test_small_moving_clips_read_back_under_many_keys(seed: int) -> None:
    """128 px moving bars over static grain through H.264: both of the detector's views of
    the clip compete (the per-frame view alone missed about 1 key in 20 here)."""
    from provenance_media import make_frames

    key = np.random.default_rng(seed).bytes(32)
    payload = int(np.random.default_rng(100 + seed).integers(0, 2**48))
    wm = Watermarker(key)
    marked = wm.embed(make_frames(), payload)
    assert wm.detect(marked).payload == payload
    assert wm.detect(h264(marked, crf=18)).payload == payload
