"""Uploads are deleted after use, but not under another request using the same file.

Gradio files an upload under a hash of its bytes, so byte-identical uploads share one path;
the render or audit that finishes first must leave it to one still running, the page keeps
pointing at the file (Render pressed again), and a request whose file is already gone gets a
clear error instead of a failed read.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pytest

from studio.web.janitor import UploadJanitor


@pytest.fixture()
def janitor() -> UploadJanitor:
    return UploadJanitor(keep_seconds=0)  # deleted at once


@pytest.fixture()
def upload(tmp_path: Path) -> str:
    path = tmp_path / "gradio" / "0123abcd" / "driving.mp4"  # the shape of Gradio's upload paths
    path.parent.mkdir(parents=True)
    path.write_bytes(b"same bytes from two people")
    return str(path)


def test_the_last_request_using_an_upload_deletes_it(janitor, upload: str) -> None:
    first: list[str] = []
    second: list[str] = []
    janitor.claim(upload, first)
    janitor.claim(upload, second)
    janitor.release(upload, first)
    assert Path(upload).is_file()  # the second request still reads it
    janitor.release(upload, second)
    assert not Path(upload).exists()
    assert first == second == []


def test_a_request_that_never_claimed_the_file_does_not_delete_it_under_another(janitor, upload: str) -> None:
    running: list[str] = []
    janitor.claim(upload, running)
    janitor.release(upload)  # e.g. a request refused before it got to use the file
    assert Path(upload).is_file()
    janitor.release(upload, running)
    assert not Path(upload).exists()


def test_an_unused_upload_is_deleted_even_when_the_request_failed_early(janitor, upload: str) -> None:
    janitor.release(upload)
    assert not Path(upload).exists()


def test_an_upload_already_gone_gets_a_clear_error_and_releases_its_claim(janitor, upload: str) -> None:
    Path(upload).unlink()
    claims: list[str] = []
    with pytest.raises(gr.Error, match="no longer on the server.*Upload it again"):
        janitor.claim(upload, claims)
    janitor.release(upload, claims)
    assert claims == []
    Path(upload).write_bytes(b"uploaded again")
    janitor.release(upload)  # nobody holds it any more: deleted
    assert not Path(upload).exists()


def test_by_default_an_upload_outlives_its_render_so_render_can_be_pressed_again() -> None:
    from studio.config import StudioConfig

    assert StudioConfig().keep_uploads_seconds == 600


def test_a_kept_upload_is_deleted_after_the_delay_unless_claimed_again(tmp_path: Path, upload: str) -> None:
    keeping = UploadJanitor(keep_seconds=1)
    first: list[str] = []
    keeping.claim(upload, first)
    keeping.release(upload, first)
    assert Path(upload).is_file()  # Render pressed again now still finds it
    second: list[str] = []
    keeping.claim(upload, second)  # ... and holds it past the first deletion time
    time.sleep(1.5)
    assert Path(upload).is_file()
    keeping.release(upload, second)
    assert Path(upload).is_file()  # a full delay after this last use, not the first one's
    deadline = time.monotonic() + 10
    while Path(upload).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(upload).exists()


def test_an_earlier_release_does_not_cut_short_the_delay_of_a_later_one(tmp_path: Path, upload: str) -> None:
    keeping = UploadJanitor(keep_seconds=1)
    for _ in range(2):  # two renders of the same files, half a second apart
        claims: list[str] = []
        keeping.claim(upload, claims)
        keeping.release(upload, claims)
        time.sleep(0.5)
    time.sleep(0.2)  # the first release's deletion time has passed, the second's has not
    assert Path(upload).is_file()
    deadline = time.monotonic() + 10
    while Path(upload).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(upload).exists()


def test_the_same_file_uploaded_again_after_a_release_is_not_deleted_by_that_release(tmp_path: Path, upload: str) -> None:
    keeping = UploadJanitor(keep_seconds=1)
    first: list[str] = []
    keeping.claim(upload, first)
    keeping.release(upload, first)
    time.sleep(0.2)
    Path(upload).write_bytes(b"same bytes from two people")  # Gradio stores the new upload at the same path
    time.sleep(1.5)  # the first release's deletion time has passed; the new upload is not yet claimed
    assert Path(upload).is_file()


def test_the_sweeper_deletes_old_uploads_and_exports_but_not_one_a_request_holds(tmp_path: Path, upload: str) -> None:
    import os
    from types import SimpleNamespace

    from studio.web.janitor import Sweeper

    exports = tmp_path / "exports"
    export = exports / "ledger-export-x" / "ledger.jsonl"
    export.parent.mkdir(parents=True)
    export.write_text("{}\n")
    old = time.time() - 120
    for path in (upload, export):
        os.utime(path, (old, old))
    files = {upload}
    keeping = UploadJanitor(keep_seconds=600)
    sweeper = Sweeper(SimpleNamespace(temp_file_sets=[files]), exports, keeping, keep_seconds=60)
    running: list[str] = []
    keeping.claim(upload, running)
    sweeper.sweep()
    assert Path(upload).is_file() and not export.exists()  # in use: kept; the old export: gone
    keeping.release(upload, running)
    sweeper.sweep()
    assert not Path(upload).exists() and files == set()
