"""What a user sees in the terminal: the studio's own lines, not mediapipe's C++ start-up
chatter (TFLite, absl) nor Gradio's share=True hint.

The studio is started as a user starts it (``avatar-studio serve --demo``, in its own
process, on a free port with an empty data folder: making the demo runs face analysis in the
server), then a render runs through the CLI in another process; both consoles are captured
whole (stdout and stderr, file descriptors included).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio_support import free_port, short_driving_clip, wait_until_serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHATTER = ("TensorFlow Lite", "XNNPACK", "absl::", "W0000", "I0000", "E0000", "inference_feedback_manager",
           "landmark_projection_calculator", "share=True", "public link")


def _env(home: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, STUDIO_HOME=str(home), PYTHONPATH=path, PYTHONUNBUFFERED="1")


def _chatter(console: str) -> list[str]:
    return [line for line in console.splitlines() if any(part in line for part in CHATTER)]


def test_serve_and_render_print_only_the_studios_own_lines(tmp_path: Path, astronaut) -> None:
    home = tmp_path / "home"
    port = free_port()
    console = tmp_path / "serve.log"
    with console.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", "--demo", "--port", str(port)],
                                  env=_env(home), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            wait_until_serving(port, server)
            credential = next(line.split()[2] for line in console.read_text().splitlines()
                               if line.strip().startswith("Demo credential:"))
            clip = short_driving_clip(tmp_path / "clip.mp4", astronaut, frames=8)
            render = subprocess.run(
                [sys.executable, "-m", "studio.cli", "render", "--credential", credential,
                 "--photo", str(home / "demo" / "astronaut.png"), "--driving", str(clip),
                 "--purpose", "education", "--project", "Orbit (demo documentary)", "--out", str(tmp_path / "out.mp4")],
                env=_env(home), capture_output=True, text=True, timeout=300, cwd=tmp_path,
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
    served = console.read_text()
    assert "Making the demo material" in served and "Demo credential:" in served
    assert f"Serving on http://127.0.0.1:{port}" in served
    assert _chatter(served) == []
    assert render.returncode == 0, render.stderr
    assert (tmp_path / "out.mp4").is_file()
    assert _chatter(render.stdout + render.stderr) == []


def test_the_filter_keeps_what_is_not_chatter(capfd: pytest.CaptureFixture[str]) -> None:
    """Anything else written to file descriptor 2 while the filter is on comes through."""
    from models.face import _native_chatter_filtered

    with _native_chatter_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"a real problem the user must see\n")
        print("from Python", file=sys.stderr)
    err = capfd.readouterr().err
    assert "a real problem the user must see" in err and "from Python" in err and "XNNPACK" not in err
