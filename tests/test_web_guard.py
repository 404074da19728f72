"""The web handlers' one guard, called in-process on the real app as Gradio calls them: a role
refusal or a consent refusal is one log line and a status-panel outcome (reason, next step,
ledger reference); a crash is told apart; a cancel asked before the render is in the ledger
still stops it, and nothing is delivered."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from studio_support import short_driving_clip, small_pipeline


@pytest.fixture(scope="module")
def studio(tmp_path_factory, astronaut):
    from studio.demo import ensure_demo
    from studio.web.app import build_app

    home = tmp_path_factory.mktemp("guard-home")
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    app = build_app(pipeline)
    handlers = {f.api_name: f.fn for f in app.fns.values() if isinstance(f.api_name, str)}
    return pipeline, demo, handlers, home


def _request(user: str, session: str) -> gr.Request:
    return gr.Request(username=user, session_hash=session)


def _outcome(handler, session: str):
    return handler.__self__.ctx.board.take(session)


def test_a_role_refusal_is_one_log_line_and_a_panel_outcome(studio, caplog) -> None:
    _, _, handlers, _ = studio
    caplog.set_level(logging.WARNING)
    with pytest.raises(gr.Error, match="role") as info:
        handlers["list_credentials"](_request("auditor", "s-role"))
    assert info.value.visible is False and info.value.print_exception is False  # the panel shows it, not a toast
    outcome = _outcome(handlers["list_credentials"], "s-role")
    assert outcome.kind == "refused" and "auditor" in outcome.reason and "admin" in outcome.next_step
    records = [r for r in caplog.records if "PermissionDenied" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None


def test_a_refused_render_names_the_project_to_ask_for_and_its_ledger_record(studio, tmp_path, astronaut) -> None:
    pipeline, demo, handlers, _ = studio
    clip = short_driving_clip(tmp_path / "clip.mp4", astronaut, frames=8)
    with pytest.raises(gr.Error, match="Refused: .*Nothing was rendered"):
        handlers["render"](demo.credential_id, str(demo.photo), False, str(clip), "education", "Apollo", "auto",
                           True, True, True, _request("operator", "s-project"), progress=lambda *a, **k: None)
    outcome = _outcome(handlers["render"], "s-project")
    refusal = [e for e in pipeline.ledger.events() if e.kind == "render.refused"][-1]
    assert refusal.data["error"] == "ProjectNotCovered"
    assert outcome.kind == "refused" and "covers project \u201cApollo\u201d" in outcome.next_step
    assert outcome.reference == f"render {refusal.data['render_id']}, ledger event #{refusal.seq} (render.refused)"
    html = outcome.to_html()
    assert 'class="status-refused"' in html and "What to do next" in html


def test_a_crash_is_told_apart_from_a_refusal(studio, caplog) -> None:
    _, _, handlers, _ = studio
    caplog.set_level(logging.WARNING)
    with pytest.raises(gr.Error, match="internal error, reference [0-9a-f]{12}") as info:
        handlers["enroll"](None, "no did given", True, _request("officer", "s-crash"))  # a value no widget sends
    outcome = _outcome(handlers["enroll"], "s-crash")
    assert outcome.kind == "crash" and outcome.reference in str(info.value)
    assert 'class="status-crash"' in outcome.to_html()
    (record,) = [r for r in caplog.records if outcome.reference in r.getMessage()]
    assert record.exc_info is not None  # the traceback is in the log, under the reference


def test_a_cancel_asked_while_the_render_is_still_checked_stops_it_once_recorded(studio, tmp_path, astronaut) -> None:
    pipeline, demo, handlers, _ = studio
    clip = short_driving_clip(tmp_path / "long.mp4", astronaut, frames=120)
    outputs_before = sorted(pipeline.config.outputs_dir.glob("*"))
    said: list[str] = []

    def progress(*_args, desc: str = "", **_kwargs) -> None:
        if not said:  # the first report ("reading inputs"): no render is in the ledger yet
            said.append(handlers["cancel_render"](_request("operator", "s-cancel-2")))

    with pytest.raises(gr.Error, match="cancelled by operator"):
        handlers["render"](demo.credential_id, str(demo.photo), False, str(clip), "education",
                           "Orbit (demo documentary)", "auto", True, True, True, _request("operator", "s-cancel"),
                           progress=progress)
    assert said and said[0].startswith("Cancelled 1 render")
    assert _outcome(handlers["render"], "s-cancel").kind == "cancelled"
    (failed,) = [e for e in pipeline.ledger.events() if e.kind == "render.failed"]
    assert failed.data["error"] == "RenderCancelled"
    asked = [e for e in pipeline.ledger.events() if e.kind == "render.cancel_requested"]
    assert [(e.actor, e.data["render_id"]) for e in asked] == [("operator", failed.data["render_id"])]
    assert sorted(pipeline.config.outputs_dir.glob("*")) == outputs_before
    assert pipeline.ledger.find_render(failed.data["render_id"]).status == "failed"


def test_dropping_a_required_label_is_refused_with_what_to_do(studio, tmp_path, astronaut) -> None:
    _, demo, handlers, _ = studio
    clip = short_driving_clip(tmp_path / "clip.mp4", astronaut, frames=8)
    with pytest.raises(gr.Error, match="label"):
        handlers["render"](demo.credential_id, str(demo.photo), False, str(clip), "education",
                           "Orbit (demo documentary)", "auto", True, True, False, _request("operator", "s-label"),
                           progress=lambda *a, **k: None)
    outcome = _outcome(handlers["render"], "s-label")
    assert outcome.kind == "refused" and "label" in outcome.next_step and "(render.refused)" in outcome.reference


def test_render_progress_names_the_six_stages_frames_and_time_left() -> None:
    from studio.web.handlers import RenderProgress

    seen: list[tuple[float | None, str]] = []
    now = [100.0]
    progress = RenderProgress(lambda fraction, desc: seen.append((fraction, desc)), clock=lambda: now[0])
    progress("verifying consent", 0, None)
    for done in (10, 30):  # 20 frames in 4 s: 70 frames left take 14 s
        progress("animating", done, 100)
        now[0] += 4.0
    progress("signing provenance", 0, None)
    assert seen[0] == (None, "▶verify ·animate ·watermark ·encode ·sign ·log — verifying consent")
    assert seen[1] == (0.1, "✓verify ▶animate ▶watermark ▶encode ·sign ·log — frame 10/100")
    assert seen[2] == (0.3, "✓verify ▶animate ▶watermark ▶encode ·sign ·log — frame 30/100, ~14 s left")
    assert seen[3][1].startswith("✓verify ✓animate ✓watermark ✓encode ▶sign ·log")
