"""Each role's first minute in Debian's headless chromium, against `avatar-studio serve --demo`.

Every role lands on its own tab with its content loaded and no error toast; a refusal stays in
the status panel with its reason, next step and ledger reference; a cancelled render delivers
nothing and the cancel is in the ledger; the login page offers no API link. Screenshots of each
first screen go to the test's temporary folder (and to $STUDIO_SCREENSHOTS when set).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser_support import browser_page, login, require_chromium, serving_demo, shot
from studio_support import short_driving_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_TOAST = '[data-testid="toast-body"]'


def _events(home: Path) -> list[dict]:
    env = dict(os.environ, STUDIO_HOME=str(home))
    out = subprocess.run([sys.executable, "-m", "studio.cli", "log", "export"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    events = [line for line in lines if line["type"] == "event"]
    for event in events:
        event["data"] = json.loads(event["data"])
    return events


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_chromium()
    home = tmp_path_factory.mktemp("roles-home")
    work = tmp_path_factory.mktemp("roles-work")
    log_path = work / "server.log"
    with serving_demo(home, log_path) as url:
        logins = json.loads((home / "demo" / "demo.json").read_text())["logins"]
        yield url, home, work, logins, log_path


@pytest.fixture()
def page(served):
    with browser_page() as page:
        yield page




# role -> (tabs shown, tab selected, an element of that tab's first screen, text it holds once loaded)
_FIRST_SCREENS = {
    "operator": (["Render"], "Render", "#credential-info", "Project:"),
    "officer": (["Consent"], "Consent", "#credentials-table", "Eileen M. Collins"),
    "auditor": (["Audit"], "Audit", "#ledger-state", "events"),
    "admin": (["Render", "Consent", "Audit", "Users"], "Users", "#users-table", "auditor"),
}


@pytest.mark.parametrize("role", list(_FIRST_SCREENS))
def test_each_role_lands_on_its_own_work(served, page, role):
    url, _, work, logins, log_path = served
    tabs, selected, element, text = _FIRST_SCREENS[role]
    login(page, url, role, logins[role])
    from playwright.sync_api import expect

    expect(page.locator(element)).to_contain_text(text, timeout=60_000)
    page.wait_for_load_state("networkidle")
    screen = shot(page, work, f"first-screen-{role}")
    assert screen.stat().st_size > 0
    assert page.get_by_role("tab").all_inner_texts() == tabs
    assert page.get_by_role("tab", name=selected, selected=True).count() == 1
    assert page.locator(_TOAST).count() == 0, page.locator(_TOAST).all_inner_texts()
    assert page.locator("#status-panel").inner_text().strip() == ""
    assert "cannot do this" not in log_path.read_text()


def test_a_refusal_stays_on_screen_with_its_reason_next_step_and_ledger_reference(served, page):
    url, home, work, logins, log_path = served
    demo = home / "demo"
    before = sorted((home / "outputs").glob("*")) if (home / "outputs").exists() else []
    login(page, url, "operator", logins["operator"])
    page.locator("#credential-info").get_by_text("Orbit").first.wait_for(timeout=60_000)  # the demo credential
    page.locator("#photo input[type=file]").set_input_files(str(demo / "grace_hopper.jpg"))
    page.locator("#driving input[type=file]").set_input_files(str(demo / "driving.mp4"))
    page.locator("#photo-preview img").wait_for(timeout=30_000)
    page.locator("#render-btn").click()
    panel = page.locator("#status-panel .status-refused")
    panel.get_by_text("does not match").wait_for(timeout=120_000)

    refusal = [e for e in _events(home) if e["kind"] == "render.refused"][-1]
    assert refusal["data"]["error"] == "LikenessMismatch" and refusal["actor"] == "operator"
    time.sleep(30)  # the one long wait: the reason must outlive a toast (about 10 s)
    text = panel.inner_text()
    assert "does not match" in text
    assert "What to do next" in text and "photo of the person the credential names" in text
    assert f"render {refusal['data']['render_id']}, ledger event #{refusal['seq']}" in text
    assert page.locator(_TOAST).count() == 0
    shot(page, work, "refused-30s-later")
    assert sorted((home / "outputs").glob("*")) == before
    log = log_path.read_text()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "LikenessMismatch" in line]) == 1


def test_a_cancelled_render_delivers_nothing_and_the_cancel_is_logged(served, page, astronaut):
    from playwright.sync_api import expect

    url, home, work, logins, _ = served
    clip = short_driving_clip(work / "long.mp4", astronaut, frames=400)
    before = sorted((home / "outputs").glob("*")) if (home / "outputs").exists() else []
    login(page, url, "operator", logins["operator"])
    page.locator("#credential-info").get_by_text("Orbit").first.wait_for(timeout=60_000)
    page.locator("#photo input[type=file]").set_input_files(str(home / "demo" / "astronaut.png"))
    page.locator("#driving input[type=file]").set_input_files(str(clip))
    page.locator("#photo-preview img").wait_for(timeout=30_000)
    page.locator("#render-btn").click()
    progress = page.get_by_text(re.compile(r"▶animate ▶watermark ▶encode ·sign ·log — frame \d+/400")).first
    progress.wait_for(timeout=180_000)
    assert "✓verify" in progress.inner_text()
    shot(page, work, "render-in-progress")
    page.locator("#cancel-btn").click()
    page.locator("#render-summary").get_by_text("Cancelled 1 render").wait_for(timeout=30_000)
    expect(page.locator("#status-panel .status-cancelled")).to_contain_text("Cancelled:", timeout=60_000)

    deadline = time.monotonic() + 120
    while True:
        events = _events(home)
        failed = [e for e in events if e["kind"] == "render.failed" and e["data"].get("error") == "RenderCancelled"]
        if failed:
            break
        assert time.monotonic() < deadline, "the render was not stopped"
        time.sleep(1)
    render_id = failed[-1]["data"]["render_id"]
    asked = [e for e in events if e["kind"] == "render.cancel_requested" and e["data"]["render_id"] == render_id]
    assert [e["actor"] for e in asked] == ["operator"]
    assert not [e for e in events if e["kind"] == "render.finished" and e["data"].get("render_id") == render_id]
    assert sorted((home / "outputs").glob("*")) == before
    shot(page, work, "render-cancelled")


def test_the_login_page_offers_no_api_link(served, page):
    url = served[0]
    page.goto(url)
    page.locator("input[type=password]").wait_for(timeout=60_000)
    assert page.get_by_text("Use via API").count() == 0
    assert page.locator("a[href*='view=api']").count() == 0
    assert page.request.get(url + "gradio_api/info").status in (401, 403)
