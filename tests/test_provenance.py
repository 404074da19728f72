"""C2PA provenance: real certificates, real H.264+AAC MP4 files, real c2pa-rs validation."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from watermark.certs import StudioSigner, create_chain
from watermark.errors import NotAnMp4, SigningCredentialInvalid, UnreadableMedia
from watermark.provenance import TRAINED_ALGORITHMIC_MEDIA, read_manifest, sign_mp4

from provenance_media import N_FRAMES, SIZE, decode, remux_without_manifest, write_test_mp4

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
