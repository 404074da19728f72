"""The auditor's and the consent officer's pages (issue 21, items 4 and 5), end to end in Debian's
headless chromium driven by Playwright, against `avatar-studio serve --demo` on a data folder
that already holds one real render of the demo credential.

Auditor: upload the render on the Audit tab; every fact of item 4 is on the page; the JSON and
HTML reports download. Officer: enrol an issuer after the identity tick, drop a credential and
read its terms before accepting, find it among those expiring soon, see the renders under the
demo credential, revoke with a reason. Screenshots go to the test's temporary folder (and to
$STUDIO_SCREENSHOTS when set).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from browser_support import browser_page, cli, login, require_chromium, serving_demo, shot
from studio_support import short_driving_clip, small_pipeline

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every fact of item 4, as the page's cards name them (data-field), and what each must say here.
ITEM_4 = {
    "made_here": "yes", "verdict": "made by this studio", "render_id": None, "operator": "tester",
    "rendered_at": None, "credential_id": None, "subject": "Eileen M. Collins", "grantor": None, "project": "Orbit",
    "purposes": "film", "label_required": None, "label_present": "yes", "watermark": "found",
    "watermark_confidence": None, "manifest": "trusted", "trusted_means": "this studio's own root",
    "ledger_position": "render.started #", "log_verifies": "yes: chain intact",
}




@pytest.fixture(scope="module")
def served(tmp_path_factory, astronaut):
    require_chromium()
    from studio.demo import ensure_demo
    from studio.render.pipeline import RenderRequest

    home = tmp_path_factory.mktemp("officer-home")
    work = tmp_path_factory.mktemp("officer-work")
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(work / "clip.mp4", astronaut, frames=6)
    result = pipeline.render(RenderRequest(photo=demo.photo, driving=clip, credential_id=demo.credential_id,
                                           purpose="film", project="Orbit (demo documentary)", operator="tester"))
    pipeline.ledger.close()
    with serving_demo(home, work / "server.log") as url:
        yield url, home, work, demo, result


@pytest.fixture()
def page(served):
    with browser_page() as page:
        yield page




def _download(page, url: str, elem_id: str) -> bytes:
    """The file a gr.File output offers, fetched through its own link (with the session cookie)."""
    link = page.locator(f"#{elem_id} a[href]").first
    link.wait_for(timeout=60_000)
    href = link.get_attribute("href")
    response = page.request.get(href if href.startswith("http") else url.rstrip("/") + "/" + href.lstrip("/"))
    assert response.ok, response.status
    return response.body()


def test_the_auditor_sees_every_fact_on_one_screen_and_downloads_the_report(served, page):
    url, home, work, demo, result = served
    login(page, url, "auditor", demo.logins["auditor"])
    page.get_by_role("tab", name="Audit").click()
    page.locator("#audit-file input[type=file]").set_input_files(str(result.video_path))
    page.locator("#audit-btn").click()
    cards = page.locator("#audit-report")
    cards.locator('[data-field="render_id"]').get_by_text(result.render_id).wait_for(timeout=120_000)
    shot(page, work, "officer-01-audit-report")

    for key, expected in ITEM_4.items():
        text = cards.locator(f'[data-field="{key}"]').first.inner_text().strip()
        assert text and text != "unknown", key
        if expected is not None:
            assert expected in text, (key, text)
    assert demo.credential_id in cards.locator('[data-field="credential_id"]').inner_text()

    report = json.loads(_download(page, url, "audit-report-json"))
    assert report["ledger"]["render_id"] == result.render_id and report["exit_code"] == 0
    filed = _download(page, url, "audit-report-html").decode()
    assert result.render_id in filed and "<script" not in filed.lower()
    # The filed page prints on one A4 sheet (chromium's own print to PDF).
    page.set_content(filed)
    shot(page, work, "officer-04-filed-report")
    pdf = page.pdf(format="A4")
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") == 1


def test_the_consent_officer_does_their_whole_job_in_the_page(served, page):
    from playwright.sync_api import expect

    url, home, work, demo, result = served
    key = work / "subject.pem"
    did = cli(home, "keys", "new", str(key), "--no-passphrase").strip().split()[-1]
    cred = work / "credential.json"
    until = (datetime.now(timezone.utc) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cli(home, "consent", "issue", "--key", str(key), "--subject-name", "Ada Expiring", "--grantee", "E2E Studio",
         "--project", "Short project", "--purpose", "education", "--max-duration", "30",
         "--photo", str(demo.photo), "--valid-until", until, "--out", str(cred))
    credential_id = json.loads(cred.read_text())["id"]

    login(page, url, "officer", demo.logins["officer"])
    page.get_by_role("tab", name="Consent").click()

    # Enrol: the page shows exactly what will be trusted; the identity tick is required.
    page.locator("#enroll-did textarea, #enroll-did input").first.fill(did)
    page.locator("#enroll-name textarea, #enroll-name input").first.fill("Ada (checked in person)")
    page.locator("#enroll-confirm").get_by_text("Ada (checked in person)").wait_for(timeout=30_000)
    assert did in page.locator("#enroll-confirm").inner_text()
    page.locator("#enroll-checked input").check()
    page.locator("#enroll-btn").click()
    page.locator("#enroll-out").get_by_text("Enrolled issuer").wait_for(timeout=30_000)

    # Import: drop the file, read the terms, nothing is stored until Accept.
    page.locator("#cred-file input[type=file]").set_input_files(str(cred))
    preview = page.locator("#cred-preview")
    preview.get_by_text("All checks pass").wait_for(timeout=30_000)
    terms = preview.inner_text()
    for words in ("Ada Expiring", "Short project", "education", "30 s", "required on every frame", "(in 9 days)"):
        assert words in terms, words
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        stored = db.execute("SELECT count(*) FROM credentials WHERE credential_id = ?", (credential_id,)).fetchone()
    assert stored == (0,)
    shot(page, work, "officer-02-terms-before-accept")
    page.locator("#import-btn").click()
    page.locator("#import-out").get_by_text("Imported credential").wait_for(timeout=30_000)

    # It expires in 10 days: it heads the list of credentials expiring soon.
    expiring = page.locator("#expiring")
    expect(expiring).to_contain_text("Ada Expiring", timeout=30_000)

    # Every render under the demo credential: the one made before the server started.
    page.locator("#renders-cred input").click()
    page.get_by_role("option").filter(has_text="Orbit").first.click()
    renders = page.locator("#renders-under")
    expect(renders).to_contain_text(result.render_id, timeout=30_000)
    row = renders.inner_text()
    assert "tester" in row and "finished" in row
    shot(page, work, "officer-03-expiring-and-renders")

    # Revoke with a reason.
    page.locator("#revoke-id input").click()
    page.get_by_role("option").filter(has_text="Ada Expiring").first.click()
    page.locator("#revoke-reason textarea, #revoke-reason input").first.fill("the subject withdrew consent")
    page.locator("#revoke-btn").click()
    page.locator("#revoke-out").get_by_text("Revoked").wait_for(timeout=30_000)
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        assert db.execute("SELECT reason FROM revocations WHERE credential_id = ?", (credential_id,)).fetchone() == (
            "the subject withdrew consent",)
