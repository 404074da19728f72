"""The real Gradio app over HTTP with gradio_client: roles enforced on every API endpoint,
anonymous clients get nothing, and four renders at once through the queue keep the chain intact."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from studio_support import free_port, short_driving_clip, small_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, astronaut):
    from studio.demo import ensure_demo
    from studio.web.app import build_app, launch

    home = tmp_path_factory.mktemp("app-home")
    pipeline = small_pipeline(home, max_concurrent_renders=2, login_log_window_seconds=1)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(home / "clip.mp4", astronaut, frames=8)
    port = free_port()
    app = build_app(pipeline)
    launch(app, pipeline, host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}/", pipeline, demo, clip, tmp_path_factory.mktemp("downloads")
    app.close()


def _client(url: str, user: str | None, password: str | None, downloads: Path):
    from gradio_client import Client

    return Client(url, auth=(user, password) if user else None, verbose=False, download_files=str(downloads),
                  analytics_enabled=False)


def _render_args(demo, clip, photo=None):
    from gradio_client import handle_file

    return dict(
        credential_id=demo.credential_id,
        photo=handle_file(str(photo or demo.photo)),
        use_reference=False,
        driving=handle_file(str(clip)),
        purpose="education",
        project="Orbit (demo documentary)",
        animator="auto",
        relative=True,
        paste_back=True,
        label_ai=True,
    )


def test_anonymous_client_gets_nothing(server):
    url, _, _, _, downloads = server
    with pytest.raises(Exception) as info:
        _client(url, None, None, downloads).predict(api_name="/verify_ledger")
    assert "login" in str(info.value).lower() or "401" in str(info.value) or "auth" in str(info.value).lower()


def test_wrong_password_is_refused_and_logged(server):
    url, pipeline, demo, _, downloads = server
    with pytest.raises(ValueError):
        _client(url, "operator", "not-the-password", downloads)
    deadline = time.monotonic() + 10  # failures are logged as counts when the (1 s) window closes
    while time.monotonic() < deadline:
        failed = [e for e in pipeline.ledger.events() if e.kind == "user.login_failed"]
        if failed:
            break
        time.sleep(0.2)
    assert [(e.data["account"], e.data["failures"]) for e in failed] == [("operator", 1)]
    assert not any("not-the-password" in repr(e.data) for e in pipeline.ledger.events())


@pytest.mark.parametrize(
    ("user", "api_name", "args"),
    [
        ("operator", "/verify_ledger", ()),
        ("operator", "/export_ledger", ()),
        ("operator", "/revoke", ("x", "y")),
        ("operator", "/enroll", ("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "x", True)),
        ("operator", "/list_users", ()),
        ("auditor", "/revoke", ("x", "y")),
        ("auditor", "/list_credentials", ()),
        ("officer", "/verify_ledger", ()),
        ("officer", "/add_user", ("mallory", "admin", "")),
    ],
)
def test_roles_are_enforced_on_api_endpoints(server, user, api_name, args):
    url, pipeline, demo, _, downloads = server
    client = _client(url, user, demo.logins[user], downloads)
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=api_name)
    assert "role" in str(info.value).lower()
    assert pipeline.ledger.get_user("mallory") is None


def test_auditor_cannot_render(server):
    url, _, demo, clip, downloads = server
    client = _client(url, "auditor", demo.logins["auditor"], downloads)
    with pytest.raises(Exception) as info:
        client.predict(**_render_args(demo, clip), api_name="/render")
    assert "role" in str(info.value).lower()


def test_allowed_roles_reach_their_endpoints(server):
    url, _, demo, _, downloads = server
    auditor = _client(url, "auditor", demo.logins["auditor"], downloads)
    assert "intact" in auditor.predict(api_name="/verify_ledger")
    officer = _client(url, "officer", demo.logins["officer"], downloads)
    rows = officer.predict(api_name="/list_credentials")
    assert demo.credential_id in str(rows)


def test_four_renders_at_once_through_the_queue(server, astronaut, tmp_path):
    """Four operators' renders queued together (two run at a time): all finish, chain intact.

    Each job uploads its own files: Gradio stores uploads by content, and the studio deletes an
    upload when its render ends, so byte-identical uploads racing each other would share one file.
    """
    from PIL import Image

    url, pipeline, demo, _, downloads = server
    client = _client(url, "operator", demo.logins["operator"], downloads)
    jobs = []
    for i in range(4):
        photo = np.array(astronaut)
        photo[0, i] ^= 1  # one pixel apart: a distinct upload
        Image.fromarray(photo).save(tmp_path / f"photo{i}.png")
        clip = short_driving_clip(tmp_path / f"clip{i}.mp4", astronaut, frames=8 + i)
        jobs.append(client.submit(**_render_args(demo, clip, photo=tmp_path / f"photo{i}.png"), api_name="/render"))
    results = [job.result(timeout=600) for job in jobs]
    videos = {Path(r[0]["video"] if isinstance(r[0], dict) else r[0]).name for r in results}
    assert len(videos) == 4
    finished = [r for r in pipeline.ledger.list_renders(limit=100) if r.status == "finished"]
    assert len(finished) >= 4
    report = pipeline.ledger.verify()
    assert report.ok, report.reason
