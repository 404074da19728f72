"""The studio, not the credential, sets how loose a face match may be.

Attack: a subject's key signs ``faceTemplate.maxDistance: 100`` for the astronaut's template, and
any face (Grace Hopper here) then "matches". The studio's ceiling (dlib's 0.6 by default, only
ever stricter by configuration) refuses such a credential at import and at every verification.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from consent.keys import did_key_from_public, generate_keypair
from consent.verify import ConsentRequest, RevocationList, TrustList, verify_consent
from studio_support import issue_credential


def _decide(document: Any, did: str, likeness: Any, **policy: Any) -> Any:
    return verify_consent(
        document,
        request=ConsentRequest(purpose="film", project="Orbit", duration_seconds=5),
        trust=TrustList([did]),
        status=RevocationList(),
        likeness=likeness,
        now=datetime.now(timezone.utc),
        **policy,
    )


def test_verify_refuses_a_credential_looser_than_the_ceiling() -> None:
    from consent.errors import FaceThresholdAboveCeiling

    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    loose = issue_credential(key, max_distance=100.0)
    far_face = [5.0] * 128  # nowhere near the template of zeros
    with pytest.raises(FaceThresholdAboveCeiling) as info:
        _decide(loose, did, far_face)  # the default ceiling is dlib's 0.6
    assert "0.6" in info.value.user_message() and "100" in info.value.user_message()
    with pytest.raises(FaceThresholdAboveCeiling):
        _decide(issue_credential(key, max_distance=0.55), did, [0.0] * 128, max_distance_ceiling=0.5)
    assert _decide(issue_credential(key, max_distance=0.5), did, [0.01] * 128, max_distance_ceiling=0.5)
    with pytest.raises(ValueError):
        _decide(issue_credential(key), did, [0.0] * 128, max_distance_ceiling=0.9)  # only ever stricter


def test_the_ceiling_is_configurable_only_to_be_stricter(monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.config import ConfigError, StudioConfig

    monkeypatch.delenv("STUDIO_MAX_FACE_DISTANCE", raising=False)
    assert StudioConfig.from_env().max_face_distance == 0.6
    monkeypatch.setenv("STUDIO_MAX_FACE_DISTANCE", "0.45")
    assert StudioConfig.from_env().max_face_distance == 0.45
    for bad in ("0.61", "100", "0", "-1", "nan", "strict"):
        monkeypatch.setenv("STUDIO_MAX_FACE_DISTANCE", bad)
        with pytest.raises(ConfigError) as info:
            StudioConfig.from_env()
        assert "STUDIO_MAX_FACE_DISTANCE" in info.value.user_message()


def test_import_refuses_a_credential_looser_than_the_ceiling(tmp_path: Path) -> None:
    from consent.errors import FaceThresholdAboveCeiling
    from studio.ledger import Ledger

    issuer = generate_keypair()
    with Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite3'}", studio_key=generate_keypair()) as ledger:
        ledger.enroll_issuer(did_key_from_public(issuer.public_key()), name="Eileen", actor="officer")
        with pytest.raises(FaceThresholdAboveCeiling):
            ledger.import_credential(issue_credential(issuer, max_distance=100.0), actor="officer")
        assert ledger.list_credentials() == []
        stricter = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite3'}", studio_key=generate_keypair(), face_ceiling=0.4)
        with stricter, pytest.raises(FaceThresholdAboveCeiling):
            stricter.import_credential(issue_credential(issuer, max_distance=0.5), actor="officer")


@pytest.mark.slow
def test_import_with_a_reference_photo_of_another_face_is_refused(
    studio_home: Path, tmp_path: Path, astronaut: Any, grace_hopper: Any, capsys: Any
) -> None:
    from PIL import Image

    from models.face import FaceAnalyzer
    from studio.cli import main

    issuer = generate_keypair()
    embedding = FaceAnalyzer().analyze(astronaut).embedding
    path = tmp_path / "consent.json"
    path.write_text(json.dumps(issue_credential(issuer, face_vector=[float(v) for v in embedding])))
    photos = {}
    for name, image in (("astronaut", astronaut), ("grace", grace_hopper)):
        photos[name] = tmp_path / f"{name}.png"
        Image.fromarray(image).save(photos[name])
    assert main(["consent", "enroll", did_key_from_public(issuer.public_key()), "--name", "Eileen"]) == 0
    capsys.readouterr()

    rc = main(["consent", "import", str(path), "--photo", str(photos["grace"])])
    out, err = capsys.readouterr()
    assert rc == 2 and "reference photo" in err and "template" in err
    rc = main(["consent", "import", str(path), "--photo", str(photos["astronaut"])])
    out, err = capsys.readouterr()
    assert rc == 0 and "imported" in out and "reference photo matches" in out
