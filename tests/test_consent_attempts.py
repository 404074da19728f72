"""Refused credentials at `consent import` / `consent verify`: one message per failure class,
one bounded `credential.refused` event per attempt, in a real data folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from consent.keys import did_key_from_public, generate_keypair
from studio.config import StudioConfig
from studio.ledger import Ledger
from studio_support import issue_credential
from studio_support import run_cli as _run


def _refusals() -> list[Any]:
    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        return [e for e in ledger.events() if e.kind == "credential.refused"]


@pytest.fixture()
def issuer(studio_home: Path, capsys: Any) -> Any:
    key = generate_keypair()
    assert _run(capsys, "consent", "enroll", did_key_from_public(key.public_key()), "--name", "Eileen")[0] == 0
    return key


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def test_each_refused_import_has_its_own_message_and_one_event(
    studio_home: Path, tmp_path: Path, issuer: Any, capsys: Any
) -> None:
    good = issue_credential(issuer)
    tampered = json.loads(json.dumps(good))
    tampered["credentialSubject"]["uses"]["maxDurationSeconds"] = 6000
    malformed = json.loads(json.dumps(good))
    malformed["credentialSubject"]["uses"]["maxDurationSeconds"] = "sixty"
    unknown = issue_credential(generate_keypair())  # signed by a key nobody enrolled
    loose = issue_credential(issuer, max_distance=100.0)
    cases = {
        "SignatureInvalid": (tampered, "signature"),
        "UnknownIssuer": (unknown, "not enrolled"),
        "MalformedCredential": (malformed, "maxDurationSeconds"),
        "NotIJson": ('{"a": 1, "a": 2}', "appears twice"),
        "FaceThresholdAboveCeiling": (loose, "ceiling"),
    }
    messages = {}
    for name, (document, phrase) in cases.items():
        path = _write(tmp_path / f"{name}.json", document)
        rc, out, err = _run(capsys, "consent", "import", str(path), "--actor", "officer")
        assert rc == 2 and out == "" and phrase in err and "Traceback" not in err, (name, err)
        messages[name] = err
        refusal = _refusals()[-1]
        assert refusal.data["error"] == name and refusal.data["action"] == "import" and refusal.actor == "officer"
        assert refusal.data["submitted_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(set(messages.values())) == len(cases)
    assert len(_refusals()) == len(cases)

    path = _write(tmp_path / "good.json", good)
    assert _run(capsys, "consent", "import", str(path))[0] == 0
    rc, _, err = _run(capsys, "consent", "import", str(path))
    assert rc == 2 and "already imported" in err
    refusal = _refusals()[-1]
    assert refusal.data["error"] == "DuplicateCredential" and refusal.data["credential_id"] == good["id"]
    assert len(_refusals()) == len(cases) + 1
    with Ledger.from_config(StudioConfig.from_env()) as ledger:
        assert ledger.verify().ok


def test_refused_verify_is_logged_and_bounded(studio_home: Path, tmp_path: Path, issuer: Any, capsys: Any) -> None:
    tampered = issue_credential(issuer, credential_id="urn:x:" + "y" * 5000)
    tampered["credentialSubject"]["name"] = "Someone else"
    path = _write(tmp_path / "tampered.json", tampered)
    rc, _, err = _run(capsys, "consent", "verify", str(path), "--purpose", "film", "--project", "Orbit",
                      "--actor", "auditor-1")
    assert rc == 1 and "signature" in err
    (refusal,) = _refusals()
    assert refusal.data["action"] == "verify" and refusal.data["error"] == "SignatureInvalid"
    assert refusal.actor == "auditor-1"
    assert len(refusal.data["credential_id"]) <= 200 and refusal.data["credential_id"].startswith("urn:x:yyy")
    assert len(json.dumps(refusal.data)) < 600  # bounded, whatever was submitted


def test_ledger_import_records_refusals_for_every_caller(tmp_path: Path) -> None:
    from consent.errors import SignatureInvalid
    from consent.keys import generate_keypair as new_key

    with Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite3'}", studio_key=new_key()) as ledger:
        document = issue_credential(new_key())
        document["credentialSubject"]["uses"]["project"] = "Elsewhere"
        raw = json.dumps(document).encode()
        with pytest.raises(SignatureInvalid):
            ledger.import_credential(raw, actor="web:officer")
        (event,) = ledger.events()
        assert event.kind == "credential.refused" and event.data["submitted_sha256"] == hashlib.sha256(raw).hexdigest()
        assert ledger.list_credentials() == []


def test_web_import_refusals_are_logged_with_their_own_message(tmp_path: Path) -> None:
    """The real Gradio app's import handler (called in-process as a logged-in consent officer)."""
    import gradio as gr

    from studio.users import Role, create_user
    from studio.web.app import build_app
    from studio_support import small_pipeline

    pipeline = small_pipeline(tmp_path / "home")
    create_user(pipeline.ledger, "officer", "correct horse battery", Role.CONSENT_OFFICER, actor="admin")
    issuer = generate_keypair()
    pipeline.ledger.enroll_issuer(did_key_from_public(issuer.public_key()), name="Eileen", actor="officer")
    app = build_app(pipeline)
    (on_import,) = [f.fn for f in app.fns.values() if f.api_name == "import_credential"]
    request = gr.Request(username="officer")

    tampered = issue_credential(issuer)
    tampered["credentialSubject"]["uses"]["project"] = "Elsewhere"
    cases = {"SignatureInvalid": tampered, "UnknownIssuer": issue_credential(generate_keypair())}
    messages = set()
    for name, document in cases.items():
        path = _write(tmp_path / f"{name}.json", document)
        with pytest.raises(gr.Error) as info:
            on_import(str(path), None, request)
        messages.add(str(info.value))
        refusal = [e for e in pipeline.ledger.events() if e.kind == "credential.refused"][-1]
        assert refusal.data["error"] == name and refusal.data["action"] == "import"
        assert refusal.actor == "officer"
    assert len(messages) == len(cases)
    path = _write(tmp_path / "good.json", issue_credential(issuer))
    text, _table = on_import(str(path), None, request)
    assert "Imported credential" in text
    assert len([e for e in pipeline.ledger.events() if e.kind == "credential.refused"]) == len(cases)


@pytest.mark.slow
def test_web_import_with_another_face_as_reference_photo_is_refused(
    tmp_path: Path, astronaut: Any, grace_hopper: Any
) -> None:
    import gradio as gr
    from PIL import Image

    from studio.users import Role, create_user
    from studio.web.app import build_app
    from studio_support import small_pipeline

    pipeline = small_pipeline(tmp_path / "home")
    create_user(pipeline.ledger, "officer", "correct horse battery", Role.CONSENT_OFFICER, actor="admin")
    issuer = generate_keypair()
    pipeline.ledger.enroll_issuer(did_key_from_public(issuer.public_key()), name="Eileen", actor="officer")
    (on_import,) = [f.fn for f in build_app(pipeline).fns.values() if f.api_name == "import_credential"]
    template = [float(v) for v in pipeline.face_analyzer().analyze(astronaut).embedding]
    path = _write(tmp_path / "consent.json", issue_credential(issuer, face_vector=template))
    grace = tmp_path / "grace.png"
    Image.fromarray(grace_hopper).save(grace)

    with pytest.raises(gr.Error) as info:
        on_import(str(path), str(grace), gr.Request(username="officer"))
    assert "reference photo" in str(info.value)
    refusal = [e for e in pipeline.ledger.events() if e.kind == "credential.refused"][-1]
    assert refusal.data["error"] == "ReferencePhotoMismatch"
    assert pipeline.ledger.list_credentials() == []
