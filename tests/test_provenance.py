"""C2PA provenance: real certificates, real H.264+AAC MP4 files, real c2pa-rs validation."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from provenance_media import N_FRAMES, SIZE, decode, remux_without_manifest, write_test_mp4
from watermark.certs import StudioSigner, create_chain
from watermark.errors import NotAnMp4, SigningCredentialInvalid, UnreadableMedia
from watermark.provenance import TRAINED_ALGORITHMIC_MEDIA, read_manifest, sign_mp4

PAYLOAD = 0xA5F0_1234_C0DE

@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    write_test_mp4(path)
    return path


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> StudioSigner:
    return StudioSigner.load_or_create(tmp_path_factory.mktemp("keys") / "c2pa")


@pytest.fixture(scope="module")
def signed(clip: Path, signer: StudioSigner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("out") / "render.mp4"
    sign_mp4(clip, dst, signer=signer, render_id="render-0001", consent_id="urn:uuid:1f0e", watermark_payload=PAYLOAD)
    return dst


# --- certificates -----------------------------------------------------------------------


def test_load_or_create_writes_chain_once_with_private_key_0600(tmp_path: Path) -> None:
    first = StudioSigner.load_or_create(tmp_path / "c2pa")
    mode = stat.S_IMODE((tmp_path / "c2pa" / "key.pem").stat().st_mode)
    again = StudioSigner.load_or_create(tmp_path / "c2pa")

    assert mode == 0o600
    assert again == first
    assert first.algorithm == "ed25519"
    assert first.trust_anchor_pem == (tmp_path / "c2pa" / "ca.pem").read_text()


def test_chain_is_a_document_signing_leaf_under_a_ca() -> None:
    ca_pem, chain_pem, _ = create_chain(organization="Test Studio")
    leaf, ca = x509.load_pem_x509_certificates(chain_pem)

    assert ca.public_bytes(serialization.Encoding.PEM) == ca_pem
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert basic.value.ca is False and basic.critical
    assert usage.value.digital_signature and usage.critical
    assert ObjectIdentifier("1.3.6.1.5.5.7.3.36") in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.key_identifier
    leaf.verify_directly_issued_by(ca)


def test_from_pem_rejects_a_key_that_does_not_match_the_leaf() -> None:
    _, chain_pem, _ = create_chain()
    _, _, other_key = create_chain()
    with pytest.raises(SigningCredentialInvalid, match="does not belong"):
        StudioSigner.from_pem(chain_pem, other_key)


def test_from_files_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "chain.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(SigningCredentialInvalid, match="not valid PEM"):
        StudioSigner.from_files(tmp_path / "chain.pem", tmp_path / "key.pem")


# --- signing and reading ----------------------------------------------------------------


def test_signed_mp4_is_trusted_with_the_studio_ca(signed: Path, signer: StudioSigner) -> None:
    report = read_manifest(signed, trust_anchor_pem=signer.trust_anchor_pem)

    assert report.status == "trusted", report.failures
    assert report.failures == []
    assert report.render_id == "render-0001"
    assert report.consent_id == "urn:uuid:1f0e"
    assert report.watermark_payload == PAYLOAD
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert report.signer == signer.subject_common_name
    assert report.claim_generator == "avatar-studio"


def test_signed_mp4_is_valid_but_not_trusted_without_an_anchor(signed: Path) -> None:
    report = read_manifest(signed)
    assert report.status == "valid"
    assert report.render_id == "render-0001"


def test_manifest_signed_by_another_ca_is_untrusted(clip: Path, signer: StudioSigner, tmp_path: Path) -> None:
    stranger = StudioSigner.load_or_create(tmp_path / "stranger", organization="Someone Else")
    dst = tmp_path / "theirs.mp4"
    sign_mp4(clip, dst, signer=stranger, render_id="render-0001", consent_id="urn:uuid:1f0e", watermark_payload=PAYLOAD)

    report = read_manifest(dst, trust_anchor_pem=signer.trust_anchor_pem)

    assert report.status == "untrusted"
    assert any(f.startswith("signingCredential.untrusted") for f in report.failures)
    assert report.signer == "Someone Else Content Credentials"


def test_one_flipped_byte_in_mdat_makes_the_manifest_invalid(signed: Path, signer: StudioSigner, tmp_path: Path) -> None:
    data = bytearray(signed.read_bytes())
    mdat = data.find(b"mdat")
    assert mdat > 0
    data[mdat + 500] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))

    report = read_manifest(tampered, trust_anchor_pem=signer.trust_anchor_pem)

    assert report.status == "invalid"
    assert any("bmffHash.mismatch" in f for f in report.failures)


def test_edited_render_assertion_makes_the_manifest_invalid(signed: Path, signer: StudioSigner, tmp_path: Path) -> None:
    data = signed.read_bytes().replace(b"render-0001", b"render-0002")
    forged = tmp_path / "forged.mp4"
    forged.write_bytes(data)

    report = read_manifest(forged, trust_anchor_pem=signer.trust_anchor_pem)

    assert report.status == "invalid"
    assert any("hashedURI.mismatch" in f for f in report.failures)


def test_remuxed_copy_has_no_manifest(signed: Path, signer: StudioSigner, tmp_path: Path) -> None:
    stripped = tmp_path / "stripped.mp4"
    remux_without_manifest(signed, stripped)

    report = read_manifest(stripped, trust_anchor_pem=signer.trust_anchor_pem)

    assert report.status == "missing"
    assert (report.render_id, report.watermark_payload) == (None, None)
    assert decode(stripped)[0].shape == (N_FRAMES, SIZE, SIZE, 3)


def test_unsigned_mp4_reports_missing(clip: Path) -> None:
    assert read_manifest(clip).status == "missing"


def test_signed_mp4_still_decodes_every_frame_and_the_audio(clip: Path, signed: Path) -> None:
    original_frames, original_samples = decode(clip)
    frames, samples = decode(signed)

    assert frames.shape == (N_FRAMES, SIZE, SIZE, 3)
    np.testing.assert_array_equal(frames, original_frames)
    assert samples == original_samples > 0


def test_sign_in_place_replaces_the_file_atomically(clip: Path, signer: StudioSigner, tmp_path: Path) -> None:
    target = tmp_path / "in-place.mp4"
    target.write_bytes(clip.read_bytes())

    sign_mp4(target, target, signer=signer, render_id="r", consent_id="c", watermark_payload=1)

    assert read_manifest(target, trust_anchor_pem=signer.trust_anchor_pem).status == "trusted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in-place.mp4"]


# --- bad input --------------------------------------------------------------------------


def test_truncated_file_is_reported_as_truncated(signed: Path, tmp_path: Path) -> None:
    data = signed.read_bytes()
    for cut in (len(data) // 2, 40, 10):
        truncated = tmp_path / f"cut-{cut}.mp4"
        truncated.write_bytes(data[:cut])
        with pytest.raises(UnreadableMedia, match="truncated"):
            read_manifest(truncated)


def test_not_a_video_is_rejected(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(NotAnMp4, match="not an MP4"):
        read_manifest(text)


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableMedia, match="empty"):
        read_manifest(empty)


def test_signing_a_non_mp4_leaves_no_output(signer: StudioSigner, tmp_path: Path) -> None:
    src = tmp_path / "image.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(NotAnMp4):
        sign_mp4(src, tmp_path / "out.mp4", signer=signer, render_id="r", consent_id="c", watermark_payload=1)
    assert not (tmp_path / "out.mp4").exists()


def test_error_messages_name_no_paths(tmp_path: Path) -> None:
    secret_dir = tmp_path / "private-folder"
    secret_dir.mkdir()
    text = secret_dir / "x.mp4"
    text.write_text("nope")
    with pytest.raises(NotAnMp4) as caught:
        read_manifest(text)
    assert "private-folder" not in caught.value.user_message()


def test_expired_signing_certificate_is_refused(clip: Path, tmp_path: Path) -> None:
    import datetime as dt

    from watermark.errors import ProvenanceError

    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2000)  # the leaf lives 1825 days
    ca_pem, chain_pem, key_pem = create_chain(now=long_ago)
    expired = StudioSigner.from_pem(chain_pem, key_pem, trust_anchor_pem=ca_pem.decode())

    with pytest.raises(ProvenanceError, match="not valid at time of signing"):
        sign_mp4(clip, tmp_path / "late.mp4", signer=expired, render_id="r", consent_id="c", watermark_payload=1)
    assert list(tmp_path.iterdir()) == []


def test_quicktime_mov_is_signed_and_read(clip: Path, signer: StudioSigner, tmp_path: Path) -> None:
    mov, signed_mov = tmp_path / "clip.mov", tmp_path / "signed.mov"
    remux_without_manifest(clip, mov)
    assert mov.read_bytes()[8:12] == b"qt  "

    sign_mp4(mov, signed_mov, signer=signer, render_id="r-mov", consent_id="c", watermark_payload=7)
    report = read_manifest(signed_mov, trust_anchor_pem=signer.trust_anchor_pem)

    assert (report.status, report.render_id, report.watermark_payload) == ("trusted", "r-mov", 7)


# --- issue 20 item 14: no unregistered soft binding; c2pa's own Reader accepts the manifest ---


def _c2pa_reader_view(path: Path, *, trust_anchor_pem: str | None) -> tuple[str, list[str], list[str], dict]:
    """What c2pa-python's Reader says, with its default settings or with ``trust_anchor_pem`` as the only root."""
    import json

    import c2pa

    with path.open("rb") as stream:
        if trust_anchor_pem is None:
            reader = c2pa.Reader("video/mp4", stream)
        else:
            settings = c2pa.Settings.from_dict({"trust": {"trust_anchors": trust_anchor_pem}})
            reader = c2pa.Reader("video/mp4", stream, None, c2pa.Context(settings))
        with reader:
            active = (reader.get_validation_results() or {}).get("activeManifest") or {}
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    manifest = store["manifests"][store["active_manifest"]]
    failures = [item["code"] for item in active.get("failure", [])]
    successes = [item["code"] for item in active.get("success", [])]
    return state, failures, successes, manifest


def test_c2pa_reader_finds_only_the_unknown_root_failure_without_our_anchor(signed: Path) -> None:
    state, failures, _, _ = _c2pa_reader_view(signed, trust_anchor_pem=None)
    assert state == "Valid"
    assert failures == ["signingCredential.untrusted"]


def test_c2pa_reader_finds_no_failure_with_the_studio_root_as_anchor(signed: Path, signer: StudioSigner) -> None:
    state, failures, successes, _ = _c2pa_reader_view(signed, trust_anchor_pem=signer.trust_anchor_pem)
    assert (state, failures) == ("Trusted", [])
    assert "signingCredential.trusted" in successes


def test_watermark_is_a_custom_assertion_not_a_c2pa_soft_binding(signed: Path) -> None:
    _, _, _, manifest = _c2pa_reader_view(signed, trust_anchor_pem=None)
    assertions = {item["label"]: item.get("data") for item in manifest["assertions"]}

    assert not [label for label in assertions if label.startswith("c2pa.soft-binding")]
    from watermark.provenance import WATERMARK_ASSERTION, WATERMARK_NAME, WATERMARK_VERSION

    assert WATERMARK_ASSERTION == "org.avatar-studio.watermark"
    assert assertions[WATERMARK_ASSERTION] == {
        "name": WATERMARK_NAME,
        "version": WATERMARK_VERSION,
        "payload": f"{PAYLOAD:012x}",
    }
    created = [a for a in assertions["c2pa.actions.v2"]["actions"] if a["action"] == "c2pa.created"]
    assert created[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA


def test_ledger_checkpoint_travels_in_the_manifest(clip: Path, signer: StudioSigner, tmp_path: Path) -> None:
    note = "avatar-studio/ledger\n42\nq0Zx1f5N3Pu3m7ZfJf0hQJ3Wd6mBq0yJ2o3cYbq8v3E=\n\n\u2014 studio Az3p9w==\n"
    dst = tmp_path / "with-checkpoint.mp4"
    sign_mp4(clip, dst, signer=signer, render_id="r-cp", consent_id="c", watermark_payload=9, ledger_checkpoint=note)

    report = read_manifest(dst, trust_anchor_pem=signer.trust_anchor_pem)

    assert (report.status, report.ledger_checkpoint, report.watermark_payload) == ("trusted", note, 9)
    assert report.to_dict()["ledger_checkpoint"] == note


def test_manifest_without_a_checkpoint_reports_none(signed: Path) -> None:
    assert read_manifest(signed).ledger_checkpoint is None


# --- issue 20 item 15: timestamps from the studio's own TSA; manifests outlive the leaf ------


def _tsa_post(url: str, body: bytes) -> bytes:
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/timestamp-query"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    with opener.open(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/timestamp-reply"
        return response.read()


def test_tsa_certificate_is_under_the_studio_root_with_critical_timestamping_only() -> None:
    from watermark.certs import create_pki

    pki = create_pki(organization="Test Studio")
    tsa, ca = x509.load_pem_x509_certificates(pki.tsa_chain_pem)
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)

    assert ca.public_bytes(serialization.Encoding.PEM) == pki.ca_pem
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert tsa.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    tsa.verify_directly_issued_by(ca)


def test_tsa_refuses_a_certificate_without_the_timestamping_usage() -> None:
    from watermark.certs import create_pki
    from watermark.tsa import TimestampAuthority

    pki = create_pki()
    leaf_only = pki.chain_pem  # the document-signing leaf, not a TSA certificate
    with pytest.raises(SigningCredentialInvalid, match="timeStamping"):
        TimestampAuthority.from_pem(leaf_only, pki.tsa_key_pem)


def test_tsa_tokens_verify_with_rfc3161_client_against_the_studio_root() -> None:
    import datetime as dt

    from rfc3161_client import TimestampRequestBuilder, VerifierBuilder, decode_timestamp_response
    from rfc3161_client.errors import VerificationError

    from watermark.certs import create_pki
    from watermark.tsa import TSA_POLICY_OID, LoopbackTsa, TimestampAuthority

    pki, stranger = create_pki(), create_pki(organization="Someone Else")
    message = b"the claim signature bytes"
    request = TimestampRequestBuilder().data(message).nonce(nonce=True).cert_request(cert_request=True).build()
    with LoopbackTsa(TimestampAuthority.from_pem(pki.tsa_chain_pem, pki.tsa_key_pem)) as url:
        response = decode_timestamp_response(_tsa_post(url, request.as_bytes()))

    root = x509.load_pem_x509_certificate(pki.ca_pem)
    verifier = VerifierBuilder.from_request(request).add_root_certificate(root).build()
    assert verifier.verify_message(response, message) is True
    assert response.tst_info.nonce == request.nonce
    assert response.tst_info.policy.dotted_string == TSA_POLICY_OID
    assert abs(response.tst_info.gen_time - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)

    with pytest.raises(VerificationError):
        VerifierBuilder.from_request(request).add_root_certificate(
            x509.load_pem_x509_certificate(stranger.ca_pem)
        ).build().verify_message(response, message)
    with pytest.raises(VerificationError, match="Mismatch"):
        verifier.verify_message(response, b"another message")


def test_tsa_rejects_malformed_requests_and_answers_only_its_own_path() -> None:
    import urllib.error

    from asn1crypto import tsp
    from rfc3161_client import PKIStatus, decode_timestamp_response

    from watermark.certs import create_pki
    from watermark.tsa import LoopbackTsa, TimestampAuthority

    pki = create_pki()
    short_digest = tsp.TimeStampReq(
        {"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x00" * 5}}
    ).dump()
    with LoopbackTsa(TimestampAuthority.from_pem(pki.tsa_chain_pem, pki.tsa_key_pem)) as url:
        for body in (b"not DER at all", short_digest):
            assert decode_timestamp_response(_tsa_post(url, body)).status == PKIStatus.REJECTION
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _tsa_post(url.rsplit("/", 1)[0] + "/guess", short_digest)
    with pytest.raises(urllib.error.URLError):
        _tsa_post(url, short_digest)  # the server is gone once the signing is over


def test_every_manifest_is_timestamped_by_the_studio_tsa(signed: Path, signer: StudioSigner) -> None:
    report = read_manifest(signed, trust_anchor_pem=signer.trust_anchor_pem)
    _, _, successes, _ = _c2pa_reader_view(signed, trust_anchor_pem=signer.trust_anchor_pem)

    assert report.timestamped is True and report.signed_at is not None
    assert {"timeStamp.validated", "timeStamp.trusted"} <= set(successes)


def test_load_or_create_writes_the_tsa_key_0600(tmp_path: Path) -> None:
    signer = StudioSigner.load_or_create(tmp_path / "c2pa")
    assert stat.S_IMODE((tmp_path / "c2pa" / "tsa-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c2pa").stat().st_mode) == 0o700
    assert signer.tsa_chain_pem == (tmp_path / "c2pa" / "tsa-chain.pem").read_bytes()


def test_a_folder_made_before_the_tsa_still_signs_without_timestamps(clip: Path, tmp_path: Path) -> None:
    StudioSigner.load_or_create(tmp_path / "c2pa")
    for name in ("tsa-chain.pem", "tsa-key.pem"):
        (tmp_path / "c2pa" / name).unlink()
    legacy = StudioSigner.load_or_create(tmp_path / "c2pa")
    sign_mp4(clip, tmp_path / "old.mp4", signer=legacy, render_id="r", consent_id="c", watermark_payload=1)

    report = read_manifest(tmp_path / "old.mp4", trust_anchor_pem=legacy.trust_anchor_pem)

    assert legacy.tsa_chain_pem is None
    assert (report.status, report.timestamped) == ("trusted", False)


def test_timestamped_manifest_outlives_its_expired_leaf_and_an_untimestamped_one_does_not(
    clip: Path, tmp_path: Path
) -> None:
    import dataclasses
    import datetime as dt
    import time

    from watermark.certs import create_pki

    # The whole PKI (root, signing leaf, TSA certificate) lives two seconds: a timestamp
    # made while it was valid must keep the manifest trusted after every certificate expired.
    lifetime = dt.timedelta(seconds=2)
    pki = create_pki(ca_lifetime=lifetime, leaf_lifetime=lifetime, tsa_lifetime=lifetime)
    certificates = x509.load_pem_x509_certificates(pki.chain_pem + pki.tsa_chain_pem)
    pki_expires = max(cert.not_valid_after_utc for cert in certificates)
    with_tsa = StudioSigner.from_pki(pki)
    without_tsa = dataclasses.replace(with_tsa, tsa_chain_pem=None, tsa_key_pem=None)
    stamped, bare = tmp_path / "stamped.mp4", tmp_path / "bare.mp4"
    for signer, dst in ((with_tsa, stamped), (without_tsa, bare)):
        sign_mp4(clip, dst, signer=signer, render_id="r-exp", consent_id="c", watermark_payload=3)
    anchor = with_tsa.trust_anchor_pem
    assert read_manifest(bare, trust_anchor_pem=anchor).status == "trusted"  # both fine while the leaf lives

    # Wait (at most ~3 s) until all have expired, with a second's margin for whole-second clocks.
    while dt.datetime.now(dt.timezone.utc) < pki_expires + dt.timedelta(seconds=1):
        time.sleep(0.2)
    late_stamped = read_manifest(stamped, trust_anchor_pem=anchor)
    late_bare = read_manifest(bare, trust_anchor_pem=anchor)

    assert (late_stamped.status, late_stamped.failures, late_stamped.timestamped) == ("trusted", [], True)
    assert late_bare.status == "invalid"
    assert any(f.startswith("signingCredential.expired") for f in late_bare.failures)


def test_c2pa_refuses_to_sign_when_the_timestamp_authority_cannot_answer(clip: Path, signer: StudioSigner) -> None:
    """No silent fallback to an untimestamped signature: a TSA that is not there fails the signing."""
    import io
    import socket

    import c2pa

    from watermark.provenance import _context, _manifest_definition

    with socket.socket() as probe:  # a loopback port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = _manifest_definition(
        title="t", mime="video/mp4", render_id="r", consent_id="c", payload=1, ledger_checkpoint=None
    )
    url = f"http://127.0.0.1:{port}/"
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ED25519, signer.chain_pem, signer.key_pem, url)
    with clip.open("rb") as source, c2pa.Signer.from_info(info) as c2pa_signer:
        with c2pa.Builder(manifest, _context(c2pa, anchor=None)) as builder, pytest.raises(c2pa.C2paError):
            builder.sign(c2pa_signer, "video/mp4", source, io.BytesIO())


def test_an_expired_tsa_certificate_issues_no_token_and_the_signing_is_refused(clip: Path, tmp_path: Path) -> None:
    import datetime as dt

    from rfc3161_client import PKIStatus, TimestampRequestBuilder, decode_timestamp_response

    from watermark.certs import create_pki
    from watermark.errors import ProvenanceError
    from watermark.tsa import TimestampAuthority

    # Made two days ago with a one-day TSA certificate: the signing leaf is still valid, the TSA is not.
    pki = create_pki(now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2), tsa_lifetime=dt.timedelta(days=1))
    request = TimestampRequestBuilder().data(b"claim").build().as_bytes()
    reply = decode_timestamp_response(TimestampAuthority.from_pem(pki.tsa_chain_pem, pki.tsa_key_pem).respond(request))
    assert reply.status == PKIStatus.REJECTION

    with pytest.raises(ProvenanceError, match="signing the C2PA manifest failed"):
        sign_mp4(clip, tmp_path / "out.mp4", signer=StudioSigner.from_pki(pki), render_id="r", consent_id="c",
                 watermark_payload=1)
    assert list(tmp_path.iterdir()) == []


def test_a_render_signed_before_issue_20_still_reads_its_payload(
    clip: Path, signer: StudioSigner, tmp_path: Path
) -> None:
    """Older outputs carried the payload in a c2pa.soft-binding; audits of them keep working (read, never written)."""
    import c2pa

    from watermark.provenance import _context, _manifest_definition

    manifest = _manifest_definition(
        title="old", mime="video/mp4", render_id="r-old", consent_id="c", payload=PAYLOAD, ledger_checkpoint=None
    )
    manifest["assertions"][-1] = {
        "label": "c2pa.soft-binding",
        "data": {
            "alg": "org.avatar-studio.watermark.v1",
            "blocks": [{"scope": {}, "value": list(PAYLOAD.to_bytes(8, "big"))}],
        },
    }
    old = tmp_path / "old.mp4"
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ED25519, signer.chain_pem, signer.key_pem, None)
    with clip.open("rb") as source, old.open("w+b") as out, c2pa.Signer.from_info(info) as c2pa_signer:
        with c2pa.Builder(manifest, _context(c2pa, anchor=None)) as builder:
            builder.sign(c2pa_signer, "video/mp4", source, out)

    report = read_manifest(old, trust_anchor_pem=signer.trust_anchor_pem)

    assert (report.status, report.watermark_payload, report.timestamped) == ("trusted", PAYLOAD, False)
