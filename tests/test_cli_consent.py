"""`avatar-studio consent ...` end to end, in-process, against a real data folder."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from consent.keys import did_key_from_public, generate_keypair
from studio_support import issue_credential
from studio_support import run_cli as _run


@pytest.fixture()
def issuer() -> Any:
    return generate_keypair()


@pytest.fixture()
def credential_file(tmp_path: Path, issuer: Any) -> Path:
    valid_until = datetime.now(timezone.utc) + timedelta(days=30)
    path = tmp_path / "consent.json"
    path.write_text(json.dumps(issue_credential(issuer, valid_until=valid_until)))
    return path


def test_enrol_import_verify_revoke_list(studio_home: Path, credential_file: Path, issuer: Any, capsys: Any) -> None:
    did = did_key_from_public(issuer.public_key())
    file = str(credential_file)
    credential_id = json.loads(credential_file.read_text())["id"]

    rc, _, err = _run(capsys, "consent", "import", file, "--actor", "officer")
    assert rc == 2 and "not enrolled" in err and "Traceback" not in err  # import needs an enrolled issuer

    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Orbit")
    assert rc == 1 and "not enrolled" in err and "Traceback" not in err

    assert _run(capsys, "consent", "enroll", did, "--name", "Eileen M. Collins")[0] == 0
    rc, out, _ = _run(capsys, "consent", "import", file, "--actor", "officer")
    assert rc == 0 and credential_id in out
    rc, out, _ = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Orbit", "--duration", "30")
    assert rc == 0 and "consent valid" in out and "likeness NOT checked" in out

    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Other")
    assert rc == 1 and "project" in err
    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "advertising", "--project", "Orbit")
    assert rc == 1 and "purpose" in err
    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Orbit", "--duration", "600")
    assert rc == 1 and "at most 60 s" in err
    later = (datetime.now(timezone.utc) + timedelta(days=60)).isoformat()
    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Orbit", "--at", later)
    assert rc == 1 and "expired" in err
    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Orbit", "--at", "yesterday")
    assert rc == 1 and "--at" in err

    rc, out, _ = _run(capsys, "consent", "list")
    assert rc == 0 and credential_id in out and "active" in out

    rc, out, _ = _run(capsys, "consent", "revoke", credential_id, "--reason", "subject asked")
    assert rc == 0
    rc, _, err = _run(capsys, "consent", "verify", file, "--purpose", "film", "--project", "Orbit")
    assert rc == 1 and "revoked" in err
    rc, out, _ = _run(capsys, "consent", "list")
    assert "REVOKED" in out
    rc, _, err = _run(capsys, "consent", "revoke", credential_id)
    assert rc == 2 and "already revoked" in err

    assert _run(capsys, "consent", "withdraw", did)[0] == 0
    rc, _, err = _run(capsys, "consent", "withdraw", did)
    assert rc == 2 and "not enrolled" in err

    rc, out, _ = _run(capsys, "log", "verify")
    # enrol, import, revoke, withdraw, and the 7 refused attempts (1 import, 6 verify) before them
    assert rc == 0 and "chain intact: 11 events" in out


def test_verify_reports_the_credentials_own_duration_limit(studio_home: Path, tmp_path: Path, issuer: Any, capsys: Any) -> None:
    """`consent verify` says how long the credential allows (here 120 s), not the length it was
    asked about; with --duration it says the requested output is within that limit."""
    until = datetime(2031, 5, 1, 12, 30, tzinfo=timezone.utc)
    path = tmp_path / "consent-120.json"
    path.write_text(json.dumps(issue_credential(issuer, max_duration_seconds=120, valid_until=until)))
    assert _run(capsys, "consent", "enroll", did_key_from_public(issuer.public_key()), "--name", "Eileen")[0] == 0
    assert _run(capsys, "consent", "import", str(path))[0] == 0

    rc, out, _ = _run(capsys, "consent", "verify", str(path), "--purpose", "film", "--project", "Orbit")
    assert rc == 0 and "up to 120 s" in out and "valid until 2031-05-01 12:30 UTC" in out
    assert " 1 s" not in out
    rc, out, _ = _run(capsys, "consent", "verify", str(path), "--purpose", "film", "--project", "Orbit", "--duration", "90")
    assert rc == 0 and "up to 120 s" in out and "a 90 s output is within it" in out


def test_import_errors_are_one_line(
    studio_home: Path, credential_file: Path, issuer: Any, tmp_path: Path, capsys: Any
) -> None:
    assert _run(capsys, "consent", "enroll", did_key_from_public(issuer.public_key()), "--name", "Eileen")[0] == 0
    assert _run(capsys, "consent", "import", str(credential_file))[0] == 0
    rc, _, err = _run(capsys, "consent", "import", str(credential_file))
    assert rc == 2 and "already imported" in err

    big = tmp_path / "big.json"
    big.write_text('{"pad": "' + "x" * (1024 * 1024) + '"}')
    rc, _, err = _run(capsys, "consent", "import", str(big))
    assert rc == 2 and "1 MiB" in err and str(tmp_path) not in err

    tampered = tmp_path / "tampered.json"
    document = json.loads(credential_file.read_text())
    document["credentialSubject"]["uses"]["project"] = "Something else"
    tampered.write_text(json.dumps(document))
    rc, _, err = _run(capsys, "consent", "import", str(tampered))
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    rc, _, err = _run(capsys, "consent", "import", str(garbage))
    assert rc == 2 and "JSON" in err

    rc, _, err = _run(capsys, "consent", "import", str(tmp_path / "missing.json"))
    assert rc == 1 and "no such file: missing.json" in err

    rc, _, err = _run(capsys, "consent", "enroll", "did:key:zNotAKey", "--name", "x")
    assert rc == 2 and "Traceback" not in err

    rc, out, _ = _run(capsys, "consent", "list")
    assert rc == 0 and out.count("\n") == 1  # just the one imported credential


@pytest.mark.slow
def test_verify_with_photo_checks_the_likeness(
    studio_home: Path, tmp_path: Path, issuer: Any, astronaut: Any, grace_hopper: Any, capsys: Any
) -> None:
    from PIL import Image

    from models.face import FaceAnalyzer

    embedding = FaceAnalyzer().analyze(astronaut).embedding
    path = tmp_path / "consent.json"
    path.write_text(json.dumps(issue_credential(issuer, face_vector=[float(v) for v in embedding])))
    photos = {}
    for name, image in (("astronaut", astronaut), ("grace", grace_hopper)):
        photos[name] = tmp_path / f"{name}.png"
        Image.fromarray(image).save(photos[name])
    did = did_key_from_public(issuer.public_key())
    assert _run(capsys, "consent", "enroll", did, "--name", "Eileen M. Collins")[0] == 0
    args = ("consent", "verify", str(path), "--purpose", "film", "--project", "Orbit", "--photo")

    rc, out, _ = _run(capsys, *args, str(photos["astronaut"]))
    assert rc == 0 and "likeness matches" in out and "NOT" not in out
    rc, _, err = _run(capsys, *args, str(photos["grace"]))
    assert rc == 1 and "does not match" in err
