"""Kill the web server during a render, restart: no stray output, chain valid, render marked failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from studio_support import free_port, short_driving_clip, small_pipeline, wait_until_serving

pytestmark = pytest.mark.slow


def test_server_killed_mid_render_leaves_nothing_and_restart_marks_it_failed(tmp_path, astronaut):
    from gradio_client import Client, handle_file

    home = tmp_path / "home"
    port = free_port()
    env = dict(os.environ, STUDIO_HOME=str(home), PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", "--demo", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(port, server)
        state = json.loads((home / "demo" / "demo.json").read_text())
        clip = short_driving_clip(tmp_path / "long.mp4", astronaut, frames=500)
        client = Client(f"http://127.0.0.1:{port}/", auth=("operator", state["logins"]["operator"]), verbose=False,
                        download_files=str(tmp_path / "dl"), analytics_enabled=False)
        client.submit(state["credential_id"], handle_file(str(home / "demo" / "astronaut.png")), False,
                      handle_file(str(clip)), "film", "Orbit (demo documentary)", "auto", True, True, True,
                      api_name="/render")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any((home / "work").glob("*/encoded.mp4")):
            time.sleep(0.2)  # the render has started encoding watermarked frames
        assert any((home / "work").glob("*/encoded.mp4")), "the render never got going"
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()

    assert not list((home / "outputs").glob("*")), "nothing reaches the output folder before the ledger commit"
    restarted = small_pipeline(home)  # from_config runs recover()
    assert not list(restarted.config.outputs_dir.glob("*"))
    assert not any(restarted.work_dir.iterdir()), "partial files are cleaned at restart"
    renders = restarted.ledger.list_renders(limit=10)
    killed = [r for r in renders if r.status == "failed"]
    assert len(killed) == 1 and "interrupted" in killed[0].failure_reason
    assert restarted.ledger.verify().ok
