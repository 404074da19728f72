"""`avatar-studio audit inspect`: real watermark, real C2PA chain, real MP4 files, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from provenance_media import make_frames, remux_without_manifest, write_test_mp4
from studio.audit import inspect_video
from studio.cli import main
from studio.config import StudioConfig
from studio.identity import load_or_create_watermark_key
from watermark.certs import StudioSigner
from watermark.provenance import sign_mp4

PAYLOAD = 0x3F9A_0C11_D2E4
RENDER_ID = "3f9a0c11d2e44b7e"
CONSENT_ID = "urn:uuid:6a1d3c52-9f0e-4a37-8d55-0b7c2e1f9a10"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> StudioConfig:
    """A studio home with a watermark key and a C2PA chain, as the pipeline creates them."""
    config = StudioConfig(home=tmp_path_factory.mktemp("studio-home"))
    load_or_create_watermark_key(config)
    StudioSigner.load_or_create(config.home / "c2pa")
    return config


@pytest.fixture(scope="module")
def media(studio: StudioConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files an auditor meets: ours, a stripped copy, a tampered copy, someone else's..."""
    from watermark import Watermarker

    folder = tmp_path_factory.mktemp("audit-media")
    key = load_or_create_watermark_key(studio)
    marked = Watermarker(key).embed(make_frames(), PAYLOAD)  # (T, H, W, 3)
    signer = StudioSigner.load_or_create(studio.home / "c2pa")
    files = {name: folder / f"{name}.mp4" for name in ("encoded", "plain", "ours", "stripped", "tampered", "theirs", "mismatch")}
    write_test_mp4(files["encoded"], marked)
    write_test_mp4(files["plain"])
    sign_mp4(files["encoded"], files["ours"], signer=signer, render_id=RENDER_ID, consent_id=CONSENT_ID, watermark_payload=PAYLOAD)
    remux_without_manifest(files["ours"], files["stripped"])
    data = bytearray(files["ours"].read_bytes())
    data[data.find(b"mdat") + 300] ^= 0x01
    files["tampered"].write_bytes(bytes(data))
    stranger = StudioSigner.load_or_create(folder / "stranger-ca", organization="Another Studio")
    sign_mp4(files["encoded"], files["theirs"], signer=stranger, render_id=RENDER_ID, consent_id=CONSENT_ID, watermark_payload=PAYLOAD)
    sign_mp4(files["encoded"], files["mismatch"], signer=signer, render_id="other", consent_id=CONSENT_ID, watermark_payload=PAYLOAD ^ 1)
    _record_render(studio, files["ours"])
    return files


def _record_render(studio: StudioConfig, output: Path) -> None:
    """The ledger record a real render leaves (started, finished, delivered), for the signed file."""
    from studio.ledger import Ledger
    from studio.media import sha256_file

    with Ledger.from_config(studio) as ledger:
        ledger.render_started(render_id=RENDER_ID, credential_id=CONSENT_ID, operator="tester", purpose="film",
                              project="Orbit", inputs={"label_required": True, "label_applied": True})
        receipt = {"render_id": RENDER_ID, "output_sha256": sha256_file(output), "watermark_payload": PAYLOAD,
                   "ai_label": True}
        ledger.render_finished(render_id=RENDER_ID, receipt=receipt)
        ledger.render_delivered(render_id=RENDER_ID)


def run(studio: StudioConfig, *args: str) -> int:
    return main(["--home", str(studio.home), "audit", "inspect", *args])


def test_our_signed_render_exits_0_and_reports_both_marks(
    studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(studio, str(media["ours"]))
    out = capsys.readouterr().out

    assert code == 0
    assert f"watermark:  found  payload {PAYLOAD:012x}" in out
    assert "manifest:   trusted (by this studio's root CA)" in out  # trusted says by whom
    assert "(RFC 3161 timestamp)" in out
    assert f"render {RENDER_ID}  consent {CONSENT_ID}" in out
    assert "matches the watermark" in out
    assert "trainedAlgorithmicMedia" in out


def test_json_report_is_machine_readable(studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(studio, str(media["ours"]), "--json")
    report = json.loads(capsys.readouterr().out)

    assert code == report["exit_code"] == 0
    assert report["watermark"]["status"] == "found"
    assert report["watermark"]["payload"] == report["manifest"]["watermark_payload"] == f"{PAYLOAD:012x}"
    assert report["manifest"]["status"] == "trusted"
    assert report["manifest"]["consent_id"] == CONSENT_ID
    assert report["consistent"] is True
    assert report["ledger"]["found"] is True and report["ledger"]["render_id"] == RENDER_ID
    assert report["ledger"]["label_required"] is True and report["ledger"]["label_present"] is True


def test_stripped_manifest_exits_3(studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(studio, str(media["stripped"]))
    out = capsys.readouterr().out

    assert code == 3
    assert "watermark:  found" in out and "manifest:   missing" in out
    assert "stripped" in out


def test_tampered_file_exits_4_and_names_the_failed_check(
    studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(studio, str(media["tampered"]))
    out = capsys.readouterr().out

    assert code == 4
    assert "manifest:   invalid" in out
    assert "bmffHash.mismatch" in out
    assert "altered after signing" in out


def test_manifest_from_another_ca_exits_4(studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(studio, str(media["theirs"]))
    out = capsys.readouterr().out

    assert code == 4
    assert "manifest:   untrusted  signed by 'Another Studio Content Credentials'" in out


def test_manifest_naming_another_payload_exits_4(studio: StudioConfig, media: dict[str, Path]) -> None:
    report = inspect_video(media["mismatch"], studio)

    assert report.manifest.status == "trusted"
    assert report.watermark.payload == PAYLOAD
    assert report.consistent is False
    assert report.exit_code == 4
    assert "different render" in report.verdict


def test_unmarked_video_exits_5(studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(studio, str(media["plain"]))
    out = capsys.readouterr().out

    assert code == 5
    assert "watermark:  not found" in out and "manifest:   missing" in out


def test_studio_without_a_key_cannot_find_its_mark(
    media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_home = tmp_path / "fresh-home"
    code = main(["--home", str(empty_home), "audit", "inspect", str(media["ours"]), "--json"])
    report = json.loads(capsys.readouterr().out)

    assert code == 5
    assert report["watermark"]["status"] == "no key"
    assert report["manifest"]["status"] == "valid"  # correctly signed, but this studio has no CA to trust
    assert not (empty_home / "keys").exists()  # an audit creates nothing


def test_watermark_found_in_a_webm_copy(studio: StudioConfig, media: dict[str, Path], tmp_path: Path) -> None:
    import av

    webm = tmp_path / "copy.webm"
    with av.open(str(media["ours"])) as source, av.open(str(webm), "w") as target:
        stream = target.add_stream("libvpx-vp9", rate=25)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
        for frame in source.decode(video=0):
            image = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            target.mux(stream.encode(image))
        target.mux(stream.encode())

    report = inspect_video(webm, studio)

    assert report.watermark.status == "found" and report.watermark.payload == PAYLOAD
    assert report.manifest.status == "missing"
    assert report.exit_code == 3
    assert any("cannot carry a C2PA manifest" in note for note in report.notes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, ours: p.write_bytes(ours.read_bytes()[: len(ours.read_bytes()) // 2]), "truncated"),
        (lambda p, ours: p.write_text("definitely not a video\n" * 40), "not a readable video"),
        (lambda p, ours: p.write_bytes(b""), "empty"),
        (lambda p, ours: None, "does not exist"),
    ],
    ids=["truncated", "text", "empty", "missing"],
)
def test_bad_input_exits_2_with_one_clear_line(
    studio: StudioConfig, media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    target = tmp_path / "secret-folder" / "input.mp4"
    target.parent.mkdir()
    make(target, media["ours"])

    code = run(studio, str(target))
    err = capsys.readouterr().err

    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert "secret-folder" not in err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    main(["audit", "inspect", "--help"])
    out = capsys.readouterr().out
    for code in ("0 =", "2 =", "3 =", "4 =", "5 =", "6 =", "7 ="):
        assert code in out


def test_our_watermark_without_a_ledger_to_ask_is_not_ours_intact(
    studio: StudioConfig, media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Key and CA copied, ledger not: the mark and manifest are ours, but no record can be shown.
    import shutil

    home = tmp_path / "no-ledger-home"
    shutil.copytree(studio.home / "keys", home / "keys")
    shutil.copytree(studio.home / "c2pa", home / "c2pa")
    code = main(["--home", str(home), "audit", "inspect", str(media["ours"])])
    out = capsys.readouterr().out

    assert code == 6
    assert "no ledger in this data folder" in out


def test_signed_render_frames_match_what_was_encoded(media: dict[str, Path]) -> None:
    from provenance_media import decode

    encoded, _ = decode(media["encoded"])
    ours, samples = decode(media["ours"])
    np.testing.assert_array_equal(ours, encoded)
    assert samples > 0


def test_inspect_video_uses_the_key_and_anchor_it_is_given(studio: StudioConfig, media: dict[str, Path], tmp_path: Path) -> None:
    elsewhere = StudioConfig(home=tmp_path / "elsewhere")
    report = inspect_video(
        media["ours"],
        elsewhere,
        watermark_key=load_or_create_watermark_key(studio),
        trust_anchor_pem=(studio.home / "c2pa" / "ca.pem").read_text(),
    )

    assert report.exit_code == 0
    assert report.notes == []
    markdown = report.to_markdown()
    assert markdown.startswith("**made by this studio")
    assert f"payload {PAYLOAD:012x}" in markdown
    assert not elsewhere.home.exists()


def test_ledger_section_is_printed_when_filled_in(studio: StudioConfig, media: dict[str, Path]) -> None:
    from dataclasses import replace

    from studio.audit import format_report

    report = replace(inspect_video(media["ours"], studio), ledger={"found": False})

    assert "ledger:     no render with this watermark in this studio's ledger" in format_report(report)
    assert report.to_dict()["ledger"] == {"found": False}


def test_max_frames_bounds_the_search(studio: StudioConfig, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(studio, str(media["ours"]), "--max-frames", "20", "--json")
    report = json.loads(capsys.readouterr().out)

    assert code == 0
    assert report["watermark"]["frames"] == 20
    assert report["watermark"]["payload"] == f"{PAYLOAD:012x}"


@pytest.mark.parametrize(("ending", "expected"), [("failed", 6), ("lost", 7)])
def test_a_signed_copy_of_a_render_the_studio_never_delivered_is_flagged(
    studio: StudioConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str], ending: str, expected: int
) -> None:
    # A signed file taken from the work folder of a render that then failed (e.g. revoked after
    # signing) or that the studio recorded as lost carries our mark and a trusted manifest, but
    # the studio never delivered it: a failed render has no delivered payload in the ledger
    # (exit 6), a lost one is a record that contradicts the file (exit 7).
    from studio.ledger import Ledger
    from studio.media import sha256_file
    from watermark import Watermarker

    payload = 0x1A2B_3C4D_5E60 + expected
    render_id = f"{payload:012x}{ending}"
    marked = Watermarker(load_or_create_watermark_key(studio)).embed(make_frames(), payload)
    encoded, signed = tmp_path / "encoded.mp4", tmp_path / "signed.mp4"
    write_test_mp4(encoded, marked)
    sign_mp4(encoded, signed, signer=StudioSigner.load_or_create(studio.home / "c2pa"), render_id=render_id,
             consent_id=CONSENT_ID, watermark_payload=payload)
    with Ledger.from_config(studio) as ledger:
        ledger.render_started(render_id=render_id, credential_id=CONSENT_ID, operator="tester", purpose="film",
                              project="Orbit", inputs={"payload": payload})
        if ending == "failed":
            ledger.render_failed(render_id=render_id, reason="the consent credential was revoked during the render")
        else:
            ledger.render_finished(render_id=render_id, receipt={"render_id": render_id, "watermark_payload": payload,
                                                                "output_sha256": sha256_file(signed)})
            ledger.render_lost(render_id=render_id, reason="lost before delivery")

    code = run(studio, str(signed))
    out = capsys.readouterr().out

    assert code == expected, out
    if ending == "lost":
        assert "as lost: it was never delivered" in out
