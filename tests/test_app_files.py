"""The served studio with its data folder outside the working and temp folders: renders reach
the user, private files are private, uploads and exports expire, and an image bomb is refused
from its header, with a message and a ledger row, without the server decoding it.

One real ``avatar-studio serve --demo`` subprocess (so its peak memory can be read from /proc)
with ``STUDIO_HOME`` under the user's home directory and a keep time of two seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pytest

from studio_support import free_port, short_driving_clip, wait_until_serving

pytestmark = pytest.mark.slow

_KEEP_SECONDS = 2


def _outside_temp_and_cwd() -> Path:
    """A fresh folder that is neither under the temp folder nor under the working directory."""
    try:
        folder = Path(tempfile.mkdtemp(prefix=".avatar-studio-test-", dir=Path.home())).resolve()
    except OSError:
        pytest.skip("the home directory is not writable here")
    for parent in (Path(tempfile.gettempdir()).resolve(), Path.cwd().resolve()):
        if folder.is_relative_to(parent):
            shutil.rmtree(folder)
            pytest.skip("the home directory is inside the temp or working folder here")
    return folder


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A real grayscale PNG of ``width`` x ``height`` zero pixels: tiny on disk, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's zero pixels
    parts = []
    for start in range(0, height, 256):
        parts.append(packer.compress(row * min(256, height - start)))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory, astronaut):
    home = _outside_temp_and_cwd() / "studio"
    work = tmp_path_factory.mktemp("files-work")
    port = free_port()
    env = dict(os.environ, STUDIO_HOME=str(home), PYTHONUNBUFFERED="1", GRADIO_TEMP_DIR=str(work / "gradio"),
               STUDIO_KEEP_UPLOADS_SECONDS=str(_KEEP_SECONDS))
    env.pop("DATABASE_URL", None)
    log = (work / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", "--demo", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        wait_until_serving(port, proc)
        state = json.loads((home / "demo" / "demo.json").read_text())
        clip = short_driving_clip(work / "clip.mp4", astronaut, frames=8)
        yield f"http://127.0.0.1:{port}/", home, work, state, clip, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home.parent, ignore_errors=True)


def _client(url: str, user: str, password: str, downloads: Path):
    from gradio_client import Client

    return Client(url, auth=(user, password), verbose=False, download_files=str(downloads), analytics_enabled=False)


def _render(client, state: dict, photo: Path, clip: Path):
    from gradio_client import handle_file

    return client.predict(state["credential_id"], handle_file(str(photo)), False, handle_file(str(clip)), "education",
                          "Orbit (demo documentary)", "auto", True, True, True, api_name="/render")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _ledger(home: Path):
    from studio.config import StudioConfig
    from studio.ledger import Ledger

    return Ledger.from_config(StudioConfig(home=home))


def test_a_web_render_reaches_the_user_from_a_data_folder_anywhere(served, tmp_path):
    url, home, _, state, clip, _ = served
    photo = home / "demo" / "astronaut.png"
    video, receipt_file, summary = _render(_client(url, "operator", state["logins"]["operator"], tmp_path), state, photo, clip)
    assert Path(video).stat().st_size > 10_000 and "Render" in summary
    receipt = json.loads(Path(receipt_file).read_text())
    # the photo hash in the receipt is the hash of the very file that was uploaded
    assert receipt["inputs"]["photo_sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()


def test_private_files_are_private_after_a_fresh_serve(served, tmp_path):
    url, home, work, state, clip, _ = served
    _render(_client(url, "operator", state["logins"]["operator"], tmp_path), state, home / "demo" / "astronaut.png", clip)
    for folder in ("", "keys", "outputs", "work", "references", "c2pa", "demo", "exports"):
        assert _mode(home / folder) == 0o700, folder
    for secret in [*(home / "keys").iterdir(), *(home / "c2pa").glob("*key*"), *home.glob("ledger.sqlite3*")]:
        assert _mode(secret) == 0o600, secret.name
    assert (home / "ledger.sqlite3").exists()
    assert _mode(work / "gradio") == 0o700, "Gradio's cache holds uploads and copies of outputs"


def test_uploads_and_ledger_exports_expire_after_the_keep_time(served, tmp_path):
    url, home, work, state, clip, _ = served
    _render(_client(url, "operator", state["logins"]["operator"], tmp_path), state, home / "demo" / "astronaut.png", clip)
    export = _client(url, "auditor", state["logins"]["auditor"], tmp_path).predict(api_name="/export_ledger")
    assert Path(export).stat().st_size > 0
    cache = work / "gradio"
    deadline = time.monotonic() + _KEEP_SECONDS + 20
    while time.monotonic() < deadline:
        left = [p for p in cache.rglob("*") if p.is_file()]
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"still in the upload cache after the keep time: {[p.name for p in left]}"
    assert not list((home / "exports").glob("*/*")), "the ledger export outlived the keep time"


def _peak_rss_reset(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current resident size


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.parametrize("side", [12_000, 30_000])
def test_an_image_bomb_is_refused_from_its_header_and_logged(served, tmp_path, side):
    url, home, _, state, clip, proc = served
    client = _client(url, "operator", state["logins"]["operator"], tmp_path)
    bomb = bomb_png(tmp_path / "bomb.png", side, side) if side <= 12_000 else _header_only_png(tmp_path / "bomb.png", side)
    assert bomb.stat().st_size < 1_000_000
    with _ledger(home) as ledger:
        before = {r.render_id for r in ledger.list_renders(limit=1000)}
    _peak_rss_reset(proc.pid)
    start = _peak_rss_mb(proc.pid)
    with pytest.raises(Exception) as info:
        _render(client, state, bomb, clip)
    grown = _peak_rss_mb(proc.pid) - start
    assert f"{side} x {side}" in str(info.value) or "decompression bomb" in str(info.value), str(info.value)
    assert grown < 150, f"the server's peak memory grew by {grown:.0f} MB on a refused upload"
    with _ledger(home) as ledger:
        new = [r for r in ledger.list_renders(limit=1000) if r.render_id not in before]
    assert [r.status for r in new] == ["refused"] and new[0].error == "ImageTooLarge"


def _header_only_png(path: Path, side: int) -> Path:
    """A PNG that declares ``side`` x ``side`` pixels and carries a token IDAT."""
    bomb_png(path, 16, 16)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path
