"""End to end in Debian's headless chromium driven by Playwright, against `avatar-studio serve --demo`.

Path 1: log in, enrol an issuer and import a credential issued with the CLI, render, the video
plays in the page, download it, audit it and find the render in the ledger.
Path 2: a photo of another person (Grace Hopper) with the astronaut's credential is refused with
a clear message, nothing is rendered, and the refusal is in the ledger.
Screenshots go to the test's temporary folder (and to $STUDIO_SCREENSHOTS when set).
"""

from __future__ import annotations

import json
import time

import pytest

from browser_support import browser_page, cli, login, require_chromium, serving_demo, shot
from studio_support import short_driving_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture(scope="module")
def served(tmp_path_factory, astronaut):
    require_chromium()
    home = tmp_path_factory.mktemp("browser-home")
    work = tmp_path_factory.mktemp("browser-work")
    with serving_demo(home, work / "server.log") as url:
        logins = json.loads((home / "demo" / "demo.json").read_text())["logins"]
        yield url, home, work, logins


@pytest.fixture()
def page(served):
    with browser_page() as page:
        yield page




def _choose_credential(page, label_part: str) -> None:
    page.locator("#refresh-credentials").click()
    time.sleep(1.0)
    page.locator("#credential input").click()
    page.get_by_role("option").filter(has_text=label_part).first.click()
    page.locator("#credential-info").get_by_text("Project:").wait_for(timeout=30_000)


def test_login_import_render_play_download_audit(served, page, astronaut):
    url, home, work, logins = served
    from PIL import Image

    # A new subject signs a credential with the CLI on "their" machine.
    photo = work / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    key = work / "subject.pem"
    did = cli(home, "keys", "new", str(key), "--no-passphrase").strip().split()[-1]
    cred = work / "credential.json"
    cli(home, "consent", "issue", "--key", str(key), "--subject-name", "Eileen Collins (e2e)",
         "--grantee", "E2E Studio", "--project", "E2E project", "--purpose", "education", "--max-duration", "30",
         "--photo", str(photo), "--out", str(cred))
    credential_id = json.loads(cred.read_text())["id"]
    clip = short_driving_clip(work / "driving.mp4", astronaut, frames=10)

    login(page, url, "admin", logins["admin"])
    shot(page, work, "01-logged-in")

    page.get_by_role("tab", name="Consent").click()
    page.locator("#enroll-did textarea, #enroll-did input").first.fill(did)
    page.locator("#enroll-name textarea, #enroll-name input").first.fill("E2E subject")
    page.locator("#enroll-confirm").get_by_text("E2E subject").wait_for(timeout=60_000)
    page.locator("#enroll-checked input").check()  # "I checked this issuer's identity"
    page.locator("#enroll-btn").click()
    page.get_by_text("Enrolled issuer").wait_for(timeout=30_000)
    page.locator("#cred-file input[type=file]").set_input_files(str(cred))
    page.locator("#import-btn").click()
    page.locator("#import-out").get_by_text("Imported credential").wait_for(timeout=30_000)
    shot(page, work, "02-credential-imported")

    page.get_by_role("tab", name="Render").click()
    _choose_credential(page, "E2E project")
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.locator("#driving input[type=file]").set_input_files(str(clip))
    time.sleep(1.0)
    page.locator("#render-btn").click()
    page.locator("#render-summary").get_by_text("Render").wait_for(timeout=300_000)
    video = page.locator("#result-video video")
    video.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video video'); return v && v.readyState >= 1 && v.duration > 0; }",
        timeout=60_000,
    )
    duration = page.evaluate("() => document.querySelector('#result-video video').duration")
    assert duration > 0
    shot(page, work, "03-rendered")

    # Download the rendered video through the page's own URL (with the session cookie).
    src = page.evaluate("() => document.querySelector('#result-video video').currentSrc")
    response = page.request.get(src)
    assert response.ok
    downloaded = work / "downloaded.mp4"
    downloaded.write_bytes(response.body())
    outputs = list((home / "outputs").glob("*.mp4"))
    assert len(outputs) == 1 and outputs[0].read_bytes() == downloaded.read_bytes()
    render_id = outputs[0].stem

    page.get_by_role("tab", name="Audit").click()
    page.locator("#audit-file input[type=file]").set_input_files(str(downloaded))
    page.locator("#audit-btn").click()
    report = page.locator("#audit-report")
    report.get_by_text(render_id).first.wait_for(timeout=120_000)
    text = report.inner_text()
    assert credential_id in text and "ledger" in text.lower()
    page.locator("#verify-ledger-btn").click()
    page.locator("#verify-ledger-out").get_by_text("chain intact").wait_for(timeout=60_000)
    shot(page, work, "04-audited")


def test_other_person_is_refused_in_the_browser(served, page, grace_hopper):
    url, home, work, logins = served
    demo_dir = home / "demo"
    before = sorted((home / "outputs").glob("*.mp4")) if (home / "outputs").exists() else []
    login(page, url, "operator", logins["operator"])
    _choose_credential(page, "Orbit")
    page.locator("#photo input[type=file]").set_input_files(str(demo_dir / "grace_hopper.jpg"))
    page.locator("#driving input[type=file]").set_input_files(str(demo_dir / "driving.mp4"))
    time.sleep(1.0)
    page.locator("#render-btn").click()
    page.get_by_text("does not match").first.wait_for(timeout=120_000)
    shot(page, work, "05-refused")
    after = sorted((home / "outputs").glob("*.mp4"))
    assert after == before
    lines = cli(home, "log", "export").splitlines()
    refusals = [json.loads(line) for line in lines if '"render.refused"' in line]
    assert refusals and json.loads(refusals[-1]["data"])["error"] == "LikenessMismatch"
