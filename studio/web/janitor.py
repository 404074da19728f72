"""What the web server keeps of users' files, and when it deletes them.

Uploaded photos and videos are personal data. ``UploadJanitor`` deletes each one a set time
after the last request using it ends; ``Sweeper`` deletes what nobody claimed (uploads never
rendered, Gradio's copies of served outputs, ledger exports) once older than that time.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)


class UploadJanitor:
    """Counts the requests using each uploaded file and deletes it ``keep_seconds`` after the
    last one ends (0: at once).

    Gradio files an upload under a hash of its bytes, so two people uploading the same file get
    the same path: a render that finished first must not delete the file under one still
    running. Not at once by default: the page keeps pointing at the uploaded file, so pressing
    Render again on the same inputs (or a second identical upload queued behind the first)
    needs it, and Gradio reads it before any handler could say what is wrong.
    """

    def __init__(self, *, keep_seconds: int) -> None:
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        self._in_use: Counter[str] = Counter()
        self._released: Counter[str] = Counter()  # releases so far per path: only the last one's timer deletes

    def claim(self, path: str, claims: list[str]) -> None:
        """Mark ``path`` as in use by this request (recorded in ``claims``) until ``release``;
        a clear error if it is already gone."""
        with self._lock:
            self._in_use[path] += 1
        claims.append(path)
        if not Path(path).is_file():
            raise gr.Error("The uploaded file is no longer on the server (uploads are deleted after use). "
                           "Upload it again.")

    def release(self, path: str | None, claims: list[str] | None = None) -> None:
        """This request is done with ``path`` (its claim in ``claims``, if any, is dropped);
        schedule its deletion unless another request still uses it."""
        if not path:
            return
        with self._lock:
            if claims is not None and path in claims:
                claims.remove(path)
                self._in_use[path] -= 1
            if self._in_use[path] > 0:
                return
            del self._in_use[path]
            self._released[path] += 1
            release = self._released[path]
        released_at = time.time()
        if self.keep_seconds <= 0:
            self._delete_if_unused(path, release, released_at)
        else:
            timer = threading.Timer(self.keep_seconds, self._delete_if_unused, args=(path, release, released_at))
            timer.daemon = True
            timer.start()

    def delete_if_unclaimed(self, path: str, cutoff: float) -> bool:
        """Delete ``path`` if no request holds it and it is older than ``cutoff``; whether it went."""
        with self._lock:
            if self._in_use[path] > 0 or not older_than(Path(path), cutoff):
                return False
            Path(path).unlink(missing_ok=True)
            return True

    def _delete_if_unused(self, path: str, release: int, released_at: float) -> None:
        """Delete ``path`` unless it was claimed or released again since ``release`` (then a later
        release's deletion, at its own time, is the one that counts), or uploaded again since
        ``released_at`` (same bytes, same path: a request about to claim it; the sweeper deletes
        it later if none does)."""
        with self._lock:
            if self._in_use[path] > 0 or self._released[path] != release:
                return
            del self._released[path]
            if not older_than(Path(path), released_at + 1e-3):
                return
            Path(path).unlink(missing_ok=True)


class Sweeper(threading.Thread):
    """Deletes what the server keeps of users' files once older than the keep time: uploads
    nobody has claimed, Gradio's copies of served outputs and previews, and ledger exports.
    Gradio's own ``delete_cache`` only runs hourly and knows nothing of renders still reading
    an upload."""

    def __init__(self, demo: Any, exports: Path, janitor: UploadJanitor, *, keep_seconds: int) -> None:
        super().__init__(name="upload-sweeper", daemon=True)
        self._demo = demo  # anything with Gradio's ``temp_file_sets``
        self._exports = exports
        self._janitor = janitor
        # keep 0 deletes uploads at once after use; one never used goes after a minute
        self._age = keep_seconds if keep_seconds > 0 else 60
        self._every = min(60.0, max(0.5, self._age / 2))

    def run(self) -> None:
        while True:
            time.sleep(self._every)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a sweep that fails is retried next round
                log.exception("sweeping old uploads failed")

    def sweep(self) -> None:
        cutoff = time.time() - self._age
        for file_set in list(self._demo.temp_file_sets):
            for name in list(file_set):
                if self._janitor.delete_if_unclaimed(name, cutoff):
                    file_set.discard(name)
        # Gradio's multipart parser leaves its temporary file behind when an upload is cut off
        for leftover in Path(gr.utils.get_upload_folder()).glob("tmp*"):
            if leftover.is_file() and older_than(leftover, cutoff):
                leftover.unlink(missing_ok=True)
        for export in self._exports.glob("*/*"):
            if older_than(export, cutoff):
                shutil.rmtree(export.parent, ignore_errors=True)


def make_private(folder: Path) -> None:
    """Create ``folder`` owner-only, or narrow it to 0700 if this user owns it (Gradio makes
    its cache, by default in the shared temp folder, 0755 with copies of outputs 0644 inside)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        os.chmod(folder, 0o700)


def older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False
