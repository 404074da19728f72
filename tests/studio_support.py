"""Helpers shared by the tests: a real pipeline in a temporary data folder with the demo
material (astronaut credential, synthetic driving clip) made by the product itself, a signed
test credential (``issue_credential``), a verified consent (``verified_consent``), the CLI run
in-process (``run_cli``), and a server's port and start-up (``free_port``, ``wait_until_serving``)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from studio.config import StudioConfig
from studio.demo import short_driving_clip  # noqa: F401 - re-exported for the tests


def small_pipeline(home: Path, **overrides):
    from studio.render.pipeline import RenderPipeline

    config = StudioConfig(home=home, **overrides)
    return RenderPipeline.from_config(config)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(port: int, proc, *, timeout: float = 240.0) -> None:  # noqa: ANN001 - subprocess.Popen
    """Poll http://127.0.0.1:port/ until it answers; fail if the server process exits first."""
    import http.client
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"the server exited early with code {proc.returncode}")
        time.sleep(0.5)
    pytest.fail("the server did not come up")


def verified_consent(embedding, *, now):  # noqa: ANN001, ANN201 - test helper
    """A real, freshly verified consent for the face with this ``embedding`` (education use,
    project "Orbit", 60 s), as the animator tests need one: real Ed25519 key, real proof."""
    from datetime import timedelta

    from consent.credential import issue_consent
    from consent.keys import did_key_from_public, generate_keypair
    from consent.verify import ConsentRequest, RevocationList, TrustList, verify_consent

    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    credential = issue_consent(
        issuer_key=key, subject_did=did, subject_name="Eileen M. Collins", grantor={"role": "self"},
        grantee_name="Example Studio", reference_image_sha256=["ab" * 32],
        face_vector=[float(v) for v in embedding], project="Orbit", purposes=["education"],
        max_duration_seconds=60, valid_from=now - timedelta(days=1), now=now - timedelta(days=1),
    )
    return verify_consent(credential, request=ConsentRequest(purpose="education", project="Orbit", duration_seconds=2),
                          trust=TrustList([did]), status=RevocationList([]), likeness=embedding, now=now)


def issue_credential(issuer_key: Any, *, project: str = "Orbit", purposes: tuple[str, ...] = ("film",), **extra: Any) -> dict[str, Any]:
    """A real signed LikenessConsent for tests (subject: the public-domain astronaut portrait)."""
    from consent.credential import issue_consent
    from consent.keys import did_key_from_public

    now = datetime.now(timezone.utc)
    did = did_key_from_public(issuer_key.public_key())
    fields: dict[str, Any] = dict(
        issuer_key=issuer_key,
        subject_did=did,
        subject_name="Eileen M. Collins",
        grantor={"role": "self"},
        grantee_name="Example Studio",
        reference_image_sha256=["0" * 64],
        face_vector=[0.0] * 128,
        project=project,
        purposes=list(purposes),
        max_duration_seconds=60,
        valid_from=now.replace(microsecond=0),
        now=now,
    )
    fields.update(extra)
    return issue_consent(**fields)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``avatar-studio ARGV...`` in-process: (exit code, stdout, stderr)."""
    from studio.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err
