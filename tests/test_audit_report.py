"""The audit report (issue 21, item 4): every question an auditor asks about a real render, answered
in the report object, its canonical JSON and its one-page HTML; and ``audit inspect --report``.

Real pipeline at small size (demo credential, real H.264 output, real C2PA chain, real SQLite
ledger), edited with raw SQL where an attacker would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from studio.audit import TRUSTED_MEANS, audit_video
from studio.audit_report import report_cards
from studio.config import StudioConfig
from studio.render.pipeline import RenderRequest
from studio_support import short_driving_clip, small_pipeline

pytestmark = pytest.mark.slow

# Every fact of issue 21 item 4, by the key the HTML rows carry (data-field).
ITEM_4_FIELDS = ("made_here", "verdict", "render_id", "operator", "rendered_at", "credential_id", "subject", "grantor",
                 "project", "purposes", "label_required", "label_present", "watermark", "watermark_confidence",
                 "manifest", "trusted_means", "ledger_position", "log_verifies")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: Any, astronaut: Any) -> Any:
    """One delivered render of the demo credential, from a data folder the tests copy before editing."""
    from studio.demo import ensure_demo

    home = tmp_path_factory.mktemp("audit-report") / "home"
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(home.parent / "clip.mp4", astronaut, frames=6)
    request = RenderRequest(photo=demo.photo, driving=clip, credential_id=demo.credential_id, purpose="film",
                            project="Orbit (demo documentary)", operator="tester")
    result = pipeline.render(request)
    credential = pipeline.ledger.get_credential(demo.credential_id)
    pipeline.ledger.close()
    return home, result, credential


def test_the_report_answers_every_question_of_an_auditor(rendered: Any) -> None:
    home, result, credential = rendered
    report = audit_video(result.video_path, config=StudioConfig(home=home))
    facts = report.to_dict()

    assert report.exit_code == 0 and facts["made_here"] == "yes"
    ledger = facts["ledger"]
    assert ledger["render_id"] == result.render_id and ledger["operator"] == "tester"
    rendered_at = datetime.fromisoformat(ledger["rendered_at"])
    assert datetime.now(timezone.utc) - timedelta(hours=1) < rendered_at <= datetime.now(timezone.utc)
    assert facts["credential"]["credential_id"] == credential.credential_id
    assert facts["credential"]["subject_name"] == credential.subject_name
    assert facts["credential"]["grantor"] == credential.grantor
    assert facts["credential"]["project"] == "Orbit (demo documentary)"
    assert facts["credential"]["purposes"] == list(credential.purposes)
    assert ledger["label_required"] is credential.disclosure_required and ledger["label_present"] is True
    assert 0.0 < facts["watermark"]["confidence"] <= 1.0
    assert facts["manifest"]["status"] == "trusted" and facts["trusted_means"] == TRUSTED_MEANS
    position = ledger["position"]
    assert position["events"]["render.started"] < position["events"]["render.finished"] <= position["head_seq"]
    assert facts["log_verified"]["ok"] is True and facts["log_verified"]["head_seq"] == position["head_seq"]
    assert facts["audited_at"].endswith("+00:00")


def test_the_json_report_is_canonical(rendered: Any) -> None:
    home, result, _ = rendered
    report = audit_video(result.video_path, config=StudioConfig(home=home))
    text = report.to_json()

    assert text == report.to_json() and text.endswith("}\n")
    parsed = json.loads(text)
    assert parsed == json.loads(json.dumps(report.to_dict()))
    assert text == json.dumps(parsed, sort_keys=True, indent=2, ensure_ascii=False) + "\n"  # sorted keys, stable form


def test_the_html_report_is_one_self_contained_page_with_every_fact(rendered: Any) -> None:
    home, result, credential = rendered
    html = audit_video(result.video_path, config=StudioConfig(home=home)).to_html()

    for key in ITEM_4_FIELDS:
        assert f'data-field="{key}"' in html, key
    assert result.render_id in html and credential.subject_name in html
    assert "made by this studio" in html and "chains to this studio&#x27;s own root" in html
    lowered = html.lower()
    for external in ("<script", "src=", "href=", "http://", "https://", "@import", "url("):
        assert external not in lowered, external


def test_the_html_escapes_what_the_file_carries(rendered: Any, tmp_path: Any) -> None:
    home, result, _ = rendered
    hostile = tmp_path / '<img src=x onerror="alert(1)">.mp4'  # the auditor does not choose file names
    shutil.copyfile(result.video_path, hostile)
    report = audit_video(hostile, config=StudioConfig(home=home))

    for page in (report.to_html(), report_cards(report)):  # the filed page and the web page's cards
        assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.mp4" in page


def test_a_tampered_log_is_reported_as_not_verifying(rendered: Any, tmp_path: Any) -> None:
    source, result, _ = rendered
    home = tmp_path / "home"
    shutil.copytree(source, home)
    with sqlite3.connect(home / "ledger.sqlite3") as db:  # rewrite who rendered it, as an insider would
        db.execute("UPDATE events SET actor = 'someone-else' WHERE kind = 'render.started'")

    report = audit_video(home / "outputs" / result.video_path.name, config=StudioConfig(home=home))

    assert report.log_verified is not None and report.log_verified["ok"] is False
    assert 'data-field="log_verifies"><td class="label">The whole log verifies</td><td>NO: ' in report.to_html()


def test_the_cli_writes_the_report_as_json_or_html(rendered: Any, tmp_path: Any, capsys: Any) -> None:
    from studio.cli import main

    home, result, _ = rendered
    base = ["--home", str(home), "audit", "inspect", str(result.video_path), "--report"]

    assert main([*base, str(tmp_path / "report.json")]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["ledger"]["render_id"] == result.render_id
    assert main([*base, str(tmp_path / "report.html")]) == 0
    assert result.render_id in (tmp_path / "report.html").read_text()
    out = capsys.readouterr().out
    assert "log:        the whole ledger verifies" in out and "credential: subject" in out
    assert main([*base, str(tmp_path / "report.txt")]) == 2  # only .json or .html
    assert not (tmp_path / "report.txt").exists()


def test_a_video_not_made_here_still_gets_every_fact_answered(rendered: Any, tmp_path: Any, astronaut: Any) -> None:
    home, _, _ = rendered
    foreign = short_driving_clip(tmp_path / "foreign.mp4", astronaut, frames=6)  # never rendered here
    report = audit_video(foreign, config=StudioConfig(home=home))
    html = report.to_html()

    assert report.made_here == "no" and report.exit_code == 5
    for key in ITEM_4_FIELDS:
        assert f'data-field="{key}"' in html, key
    assert 'data-field="made_here"><td class="label">Made by this studio</td><td>no</td>' in html
    assert json.loads(report.to_json())["made_here"] == "no"
