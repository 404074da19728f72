"""`keys`, `vc` and `consent issue` end to end, in-process through ``studio.cli.main``."""

from __future__ import annotations

import hashlib
import json
import math
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from PIL import Image

from consent.credential import LikenessConsent
from consent.keys import load_private_key
from consent.verify import ConsentRequest, RevocationList, TrustList, verify_consent
from studio.cli import main
from studio_support import run_cli as _run

VECTORS = Path(__file__).resolve().parent / "data" / "vectors" / "eddsa-jcs-2022"
TEMPLATE = [math.sin(3 * i) / 9 for i in range(128)]


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command that must fail as a usage error (exit 2); return its message.

    typer 0.29 vendors click as ``typer._click``; until ``studio.cli.main`` catches that
    ClickException too, the error escapes ``main`` and is checked here directly.
    """
    try:
        code = main(list(argv))
    except typer.BadParameter as exc:
        return exc.format_message()
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    return err


@pytest.fixture()
def workdir(tmp_path: Path, studio_home: Path) -> Path:
    (tmp_path / "pass.txt").write_text("a long passphrase\n")
    return tmp_path


@pytest.fixture()
def key_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    path = workdir / "subject.pem"
    code, out, _ = _run(capsys, "keys", "new", str(path), "--passphrase-file", str(workdir / "pass.txt"))
    assert code == 0
    return path, out.strip()


# --- keys ------------------------------------------------------------------------------------------


def test_keys_new_and_show(workdir: Path, key_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, did = key_file
    assert did.startswith("did:key:z6Mk")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path, passphrase="a long passphrase")
    code, out, _ = _run(capsys, "keys", "show", str(path), "--passphrase-file", str(workdir / "pass.txt"))
    assert (code, out.strip()) == (0, did)


def test_keys_new_without_passphrase(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "plain.pem"
    code, out, _ = _run(capsys, "keys", "new", str(path), "--no-passphrase")
    assert code == 0
    assert _run(capsys, "keys", "show", str(path))[1] == out


def test_keys_new_prompts_for_passphrase(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, Any]] = []

    def fake_prompt(text: str, **kwargs: Any) -> str:
        asked.append(kwargs)
        return "typed at the prompt"

    monkeypatch.setattr(typer, "prompt", fake_prompt)
    path = workdir / "prompted.pem"
    code, out, _ = _run(capsys, "keys", "new", str(path))
    assert code == 0 and asked == [{"hide_input": True, "confirmation_prompt": True}]
    assert _run(capsys, "keys", "show", str(path))[1] == out  # show prompts too, for the encrypted key
    assert asked[1] == {"hide_input": True}


def test_keys_errors(workdir: Path, key_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = key_file
    code, _, err = _run(capsys, "keys", "new", str(path), "--no-passphrase")
    assert code == 2 and "already exists" in err
    (workdir / "wrong.txt").write_text("not it\n")
    code, _, err = _run(capsys, "keys", "show", str(path), "--passphrase-file", str(workdir / "wrong.txt"))
    assert code == 2 and err.strip() == "error: the passphrase does not decrypt the key file"
    code, _, err = _run(capsys, "keys", "show", str(workdir / "nope.pem"), "--passphrase-file", str(workdir / "pass.txt"))
    assert code == 2 and "does not exist" in err and str(workdir) not in err


def test_keys_new_refuses_both_passphrase_flags(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "keys", "new", str(workdir / "x.pem"), "--no-passphrase", "--passphrase-file", "p")
    assert "not both" in err
    assert not (workdir / "x.pem").exists()


# --- vc ----------------------------------------------------------------------------------------------


def test_vc_sign_and_verify(workdir: Path, key_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, did = key_file
    doc = workdir / "doc.json"
    doc.write_text(json.dumps({"@context": ["https://www.w3.org/ns/credentials/v2"], "claim": "é"}))
    code, out, _ = _run(capsys, "vc", "sign", str(doc), "--key", str(path), "--passphrase-file", str(workdir / "pass.txt"))
    assert code == 0
    signed = json.loads(out)
    assert signed["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert signed["proof"]["verificationMethod"].startswith(did + "#")
    signed_file = workdir / "signed.json"
    code, out, _ = _run(
        capsys, "vc", "sign", str(doc), "--key", str(path), "--passphrase-file", str(workdir / "pass.txt"),
        "--out", str(signed_file),
    )  # fmt: skip
    assert code == 0 and "signed by" in out
    code, out, _ = _run(capsys, "vc", "verify", str(signed_file))
    assert (code, out.strip()) == (0, f"valid: {signed['proof']['verificationMethod']}")

    tampered = json.loads(signed_file.read_text())
    tampered["claim"] = "e"
    signed_file.write_text(json.dumps(tampered))
    code, _, err = _run(capsys, "vc", "verify", str(signed_file))
    assert code == 1 and err.strip() == "invalid: the signature does not match the document"


def test_vc_verify_w3c_vector(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "vc", "verify", str(VECTORS / "signedJCS.json"))
    assert code == 0 and out.startswith("valid: did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#")


@pytest.mark.parametrize(
    ("content", "reason"),
    [("{", "not valid JSON"), ('{"a": 1, "a": 2}', "appears twice"), ('{"a": 1}', "no proof")],
)
def test_vc_verify_invalid_documents(workdir: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str) -> None:
    path = workdir / "bad.json"
    path.write_text(content)
    code, _, err = _run(capsys, "vc", "verify", str(path))
    assert code == 1 and err.startswith("invalid: ") and reason in err


# --- consent issue -----------------------------------------------------------------------------------


@pytest.fixture()
def photo(workdir: Path, astronaut: np.ndarray) -> Path:
    path = workdir / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


def _issue_args(workdir: Path, key: Path, photo: Path, *extra: str) -> list[str]:
    return [
        "consent", "issue", "--key", str(key), "--passphrase-file", str(workdir / "pass.txt"),
        "--subject-name", "Eileen M. Collins", "--grantee", "Example Film Studio",
        "--project", "Orbit", "--purpose", "film", "--purpose", "education", "--max-duration", "120",
        "--photo", str(photo), "--out", str(workdir / "cred.json"), *extra,
    ]  # fmt: skip


def test_consent_issue_with_template_file(
    workdir: Path, key_file: tuple[Path, str], photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, did = key_file
    template = workdir / "template.json"
    template.write_text(json.dumps(TEMPLATE))
    args = _issue_args(
        workdir, path, photo, "--template-file", str(template), "--valid-from", "2026-12-01",
        "--valid-until", "2027-12-01T00:00:00Z", "--prohibited", "political endorsement", "--no-disclosure",
    )  # fmt: skip
    code, out, _ = _run(capsys, *args)
    assert code == 0 and f"issuer {did}" in out
    assert stat.S_IMODE((workdir / "cred.json").stat().st_mode) == 0o600  # holds biometric data
    credential = LikenessConsent.from_json((workdir / "cred.json").read_bytes())
    assert out.splitlines()[0] == f"issued {credential.credential_id}"
    assert credential.issuer == credential.subject_id == did
    assert credential.reference_images == (f"sha256:{hashlib.sha256(photo.read_bytes()).hexdigest()}",)
    assert credential.purposes == ("film", "education") and credential.media == ("video",)
    assert credential.prohibited == ("political endorsement",) and not credential.disclosure_required
    assert credential.valid_from == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert _run(capsys, "vc", "verify", str(workdir / "cred.json"))[0] == 0

    verified = verify_consent(
        credential.document,
        request=ConsentRequest(purpose="film", project="Orbit", duration_seconds=60),
        trust=TrustList([did]),
        status=RevocationList(),
        likeness=TEMPLATE,
        now=datetime(2027, 1, 1, tzinfo=timezone.utc),
    )
    assert verified.likeness_distance is not None and verified.likeness_distance < 1e-6


def test_consent_issue_for_an_estate(
    workdir: Path, key_file: tuple[Path, str], photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, did = key_file
    template = workdir / "template.json"
    template.write_text(json.dumps(TEMPLATE))
    chain = workdir / "letters-testamentary.pdf"
    chain.write_bytes(b"%PDF-1.4 court order appointing the executor")
    args = _issue_args(
        workdir, path, photo, "--template-file", str(template), "--estate-of", "Eileen M. Collins",
        "--chain-of-title", str(chain),
    )  # fmt: skip
    assert _run(capsys, *args)[0] == 0
    credential = LikenessConsent.from_json((workdir / "cred.json").read_bytes())
    assert credential.grantor_role == "estate" and credential.issuer == did
    assert credential.grantor["represents"] == "Eileen M. Collins"
    assert credential.grantor["chainOfTitle"] == f"sha256:{hashlib.sha256(chain.read_bytes()).hexdigest()}"
    assert credential.subject_id.startswith("urn:uuid:")


@pytest.mark.slow
def test_consent_issue_from_real_photo(
    workdir: Path, key_file: tuple[Path, str], photo: Path, astronaut: np.ndarray, grace_hopper: np.ndarray,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    face = pytest.importorskip("models.face", reason="models.face (face embeddings) is not available")
    path, did = key_file
    code, _, err = _run(capsys, *_issue_args(workdir, path, photo))
    assert code == 0, err
    analyzer = face.FaceAnalyzer()
    request = ConsentRequest(purpose="education", project="Orbit", duration_seconds=10)
    common: dict[str, Any] = dict(
        request=request, trust=TrustList([did]), status=RevocationList(), now=datetime.now(timezone.utc)
    )
    text = (workdir / "cred.json").read_bytes()
    verified = verify_consent(text, likeness=analyzer.analyze(astronaut).embedding, **common)
    assert verified.likeness_distance is not None and verified.likeness_distance < 0.1
    from consent.errors import LikenessMismatch

    with pytest.raises(LikenessMismatch):
        verify_consent(text, likeness=analyzer.analyze(grace_hopper).embedding, **common)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--valid-from", "2027-01-01", "--valid-until", "2026-01-01"], "later than"),
        (["--valid-until", "next tuesday"], "ISO"),
        (["--estate-of", "Someone"], "go together"),
        (["--template-file", "{tmpl}"], "128 numbers"),
    ],
)
def test_consent_issue_rejects_bad_input(
    workdir: Path, key_file: tuple[Path, str], photo: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], reason: str,
) -> None:  # fmt: skip
    (workdir / "short.json").write_text(json.dumps(TEMPLATE[:10]))
    extra = [e.replace("{tmpl}", str(workdir / "short.json")) for e in extra]
    assert reason in _usage_error(capsys, *_issue_args(workdir, key_file[0], photo, *extra))
    assert not (workdir / "cred.json").exists()
