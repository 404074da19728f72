"""Issue 20, items 1, 2 and 6: consent terms hold on what is rendered, and the delivered receipt is
the one the ledger hashed. Real pipeline, real credential, real H.264 files at small size."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from mp4_atoms import declare_duration
from studio import media
from studio.errors import RenderRefused
from studio.render.pipeline import RenderRequest
from studio_support import short_driving_clip, small_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(tmp_path_factory, astronaut):
    from studio.demo import ensure_demo

    home = tmp_path_factory.mktemp("terms-home")
    pipeline = small_pipeline(home)
    demo = ensure_demo(pipeline.config, pipeline)
    clip = short_driving_clip(home / "short.mp4", astronaut, frames=8, size=256)
    return pipeline, demo, clip


def _issue(pipeline, demo, **terms):
    """A credential from the demo subject for the demo face, with the given terms, imported."""
    from consent.credential import issue_consent
    from consent.keys import load_private_key

    first = pipeline.ledger.get_credential(demo.credential_id)
    now = datetime.now(timezone.utc)
    fields = dict(
        subject_did=first.subject_id, subject_name="Eileen M. Collins (demo)", grantor={"role": "self"},
        grantee_name="Avatar Studio demo", reference_image_sha256=[media.sha256_file(demo.photo)],
        face_vector=list(first.face_vector), project="Orbit (demo documentary)", purposes=["education"],
        max_duration_seconds=60, valid_from=now - timedelta(days=1), now=now,
    )
    fields.update(terms)
    document = issue_consent(issuer_key=load_private_key(demo.folder / "subject-demo-key.pem", passphrase=None), **fields)
    return pipeline.ledger.import_credential(document, actor="officer").credential_id


def _request(demo, clip, **kw):
    fields = dict(photo=demo.photo, driving=clip, credential_id=demo.credential_id, purpose="education",
                  project="Orbit (demo documentary)", operator="tester")
    fields.update(kw)
    return RenderRequest(**fields)


def _events(pipeline, kind):
    return [e for e in pipeline.ledger.events() if e.kind == kind]


@pytest.fixture(scope="module")
def lying_clip(studio, astronaut, tmp_path_factory):
    """6 s of real frames (24 at 4 fps) whose mvhd, tkhd and mdhd all declare 1 s."""
    path = short_driving_clip(tmp_path_factory.mktemp("lying") / "six-seconds.mp4", astronaut, frames=24, fps=4)
    assert declare_duration(path, 1.0) == {b"mvhd": 1, b"tkhd": 1, b"mdhd": 1}
    info = media.probe_video(path)
    assert info.duration_seconds == pytest.approx(1.0) and info.frame_count == 24  # the header lies
    return path


def _assert_nothing_delivered(pipeline, before):
    assert set(pipeline.config.outputs_dir.iterdir()) == before
    assert not any(pipeline.work_dir.iterdir())


# --- item 1: duration from the frames ------------------------------------------------------------

def test_a_clip_longer_than_its_header_says_stops_at_the_consented_duration(studio, lying_clip):
    pipeline, demo, _ = studio
    two_seconds = _issue(pipeline, demo, max_duration_seconds=2)
    before = set(pipeline.config.outputs_dir.iterdir())

    with pytest.raises(RenderRefused) as info:
        pipeline.render(_request(demo, lying_clip, credential_id=two_seconds))

    message = info.value.user_message()
    assert "2 s" in message and "consent" in message and "nothing was delivered" in message
    _assert_nothing_delivered(pipeline, before)
    failed = _events(pipeline, "render.failed")[-1]
    assert "consent" in failed.data["reason"] and "2 s" in failed.data["reason"]
    # The stop is recorded as the refusal it is: the event and the render's row name its class.
    assert failed.data["error"] == "TermsExceeded"
    assert pipeline.ledger.find_render(failed.data["render_id"]).error == "TermsExceeded"
    started = [e for e in _events(pipeline, "render.started") if e.data["render_id"] == failed.data["render_id"]]
    assert started and started[0].data["credential_id"] == two_seconds
    assert pipeline.ledger.verify().ok


def test_a_clip_longer_than_its_header_says_stops_at_the_studio_limit(studio, lying_clip):
    from studio.render.pipeline import RenderPipeline

    pipeline, demo, _ = studio
    strict = RenderPipeline.from_config(pipeline.config, max_video_seconds=3.0)  # the demo consent allows 60 s
    before = set(pipeline.config.outputs_dir.iterdir())

    with pytest.raises(RenderRefused) as info:
        strict.render(_request(demo, lying_clip))

    assert "3 s" in info.value.user_message() and "studio" in info.value.user_message()
    _assert_nothing_delivered(pipeline, before)
    assert "studio" in _events(pipeline, "render.failed")[-1].data["reason"]


def test_a_clip_within_the_terms_renders_all_its_frames(studio, astronaut, tmp_path):
    # The guard counts frames; it must not cut an honest clip one frame short.
    pipeline, demo, _ = studio
    two_seconds = _issue(pipeline, demo, max_duration_seconds=2)
    clip = short_driving_clip(tmp_path / "two-seconds.mp4", astronaut, frames=8, fps=4)
    result = pipeline.render(_request(demo, clip, credential_id=two_seconds))
    assert media.probe_video(result.video_path).frame_count == 8


# --- item 2: the disclosure label is not optional ------------------------------------------------

def test_dropping_a_required_label_is_refused_and_logged(studio):
    pipeline, demo, clip = studio
    assert pipeline.ledger.get_credential(demo.credential_id).disclosure_required
    before = set(pipeline.config.outputs_dir.iterdir())

    with pytest.raises(RenderRefused) as info:
        pipeline.render(_request(demo, clip, label_ai=False))

    assert "label" in info.value.user_message() and "requires" in info.value.user_message()
    _assert_nothing_delivered(pipeline, before)
    refusal = _events(pipeline, "render.refused")[-1]
    assert refusal.data["error"] == "LabelRequired" and "label" in refusal.data["reason"]


def test_the_cli_no_label_flag_gets_the_same_refusal(studio, capsys):
    from studio.cli import main

    pipeline, demo, clip = studio
    rc = main(["--home", str(pipeline.config.home), "render", "--credential", demo.credential_id,
               "--photo", str(demo.photo), "--driving", str(clip), "--purpose", "education",
               "--project", "Orbit (demo documentary)", "--out", str(clip.parent / "cli-out.mp4"), "--no-label"])
    err = capsys.readouterr().err
    assert rc == 2 and "label" in err and "requires" in err
    assert not (clip.parent / "cli-out.mp4").exists()


def test_the_ledger_and_audit_say_whether_the_label_was_required_and_applied(studio, capsys):
    from studio.cli import main

    pipeline, demo, clip = studio
    optional = _issue(pipeline, demo, disclosure="none")
    labelled = pipeline.render(_request(demo, clip))
    plain = pipeline.render(_request(demo, clip, credential_id=optional, label_ai=False))

    started = {e.data["render_id"]: e.data["inputs"] for e in _events(pipeline, "render.started")}
    assert started[labelled.render_id]["label_required"] is True and started[labelled.render_id]["label_applied"] is True
    assert started[plain.render_id]["label_required"] is False and started[plain.render_id]["label_applied"] is False

    home = str(pipeline.config.home)
    assert main(["--home", home, "audit", "inspect", str(labelled.video_path)]) == 0
    assert "label:      required yes, present yes" in capsys.readouterr().out
    assert main(["--home", home, "audit", "inspect", str(plain.video_path)]) == 0
    assert "label:      required no, present no" in capsys.readouterr().out


def test_a_receipt_that_drops_a_required_label_is_flagged(studio, tmp_path, capsys):
    from studio.audit import EXIT_RECORDS_DISAGREE
    from studio.cli import main

    pipeline, demo, clip = studio
    result = pipeline.render(_request(demo, clip))
    edited = json.loads(result.receipt_path.read_bytes())
    edited["ai_label"] = False
    copy = tmp_path / "copy.receipt.json"
    copy.write_text(json.dumps(edited))

    rc = main(["--home", str(pipeline.config.home), "audit", "inspect", str(result.video_path), "--receipt", str(copy)])
    out = capsys.readouterr().out
    assert rc == EXIT_RECORDS_DISAGREE != 0
    assert "label:      required yes, present NO" in out
    assert "does not match the ledger" in out


# --- item 6: the delivered receipt is the one the ledger hashed ----------------------------------

def test_the_delivered_receipt_is_the_one_the_ledger_hashed(studio):
    pipeline, demo, clip = studio
    result = pipeline.render(_request(demo, clip))
    delivered = result.receipt_path.read_bytes()
    finished = [e for e in _events(pipeline, "render.finished") if e.data["render_id"] == result.render_id][0]
    assert hashlib.sha256(delivered).hexdigest() == finished.data["receipt_sha256"]
    assert json.loads(delivered)["output_sha256"] == media.sha256_file(result.video_path) == finished.data["output_sha256"]
    assert "ledger" not in json.loads(delivered)["stage_seconds"]  # measured after the commit: not in the receipt
    assert "ledger" in result.stage_seconds


def test_audit_inspect_verifies_a_receipt_against_the_ledger(studio, tmp_path, capsys):
    from studio.audit import EXIT_OURS, EXIT_RECORDS_DISAGREE
    from studio.cli import main

    pipeline, demo, clip = studio
    result = pipeline.render(_request(demo, clip))
    home = str(pipeline.config.home)

    assert main(["--home", home, "audit", "inspect", "--receipt", str(result.receipt_path)]) == EXIT_OURS
    out = capsys.readouterr().out
    assert f"receipt:    render {result.render_id}: matches the ledger" in out

    assert main(["--home", home, "audit", "inspect", str(result.video_path), "--receipt", str(result.receipt_path)]) == 0
    assert "this file is the output the receipt names" in capsys.readouterr().out

    tampered = tmp_path / "tampered.receipt.json"
    tampered.write_bytes(result.receipt_path.read_bytes().replace(b'"purpose":"education"', b'"purpose":"film"'))
    assert main(["--home", home, "audit", "inspect", "--receipt", str(tampered)]) == EXIT_RECORDS_DISAGREE
    assert "does not match the ledger" in capsys.readouterr().out


def test_the_web_label_checkbox_is_locked_on_when_the_credential_requires_it(studio):
    # The real Gradio app over HTTP: picking a credential returns the checkbox's new state.
    from gradio_client import Client

    from studio.web.app import build_app, launch
    from studio_support import free_port

    pipeline, demo, _ = studio
    optional = _issue(pipeline, demo, disclosure="none")
    port = free_port()
    app = build_app(pipeline)
    launch(app, pipeline, host="127.0.0.1", port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", auth=("operator", demo.logins["operator"]), verbose=False,
                        analytics_enabled=False)
        *_, required_box = client.predict(demo.credential_id, api_name="/credential_info")
        *_, optional_box = client.predict(optional, api_name="/credential_info")
    finally:
        app.close()
    assert required_box["value"] is True and required_box["interactive"] is False
    assert "required by this credential" in required_box["info"].lower()
    assert optional_box["value"] is False and optional_box["interactive"] is True
