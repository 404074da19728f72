"""Checkpoint files: official layout, strict keys, safetensors conversion, and every bad file we refuse."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from fomm_support import TINY, face_clip, one_torch_thread, random_checkpoint  # noqa: F401 (autouse fixture)
from models.errors import (
    CheckpointCorrupt,
    CheckpointInvalid,
    CheckpointMismatch,
    CheckpointNotFound,
    CheckpointUnsafe,
)
from models.fomm import animate_frames, load_checkpoint
from studio.cli import main


@pytest.fixture(scope="module")
def checkpoint():
    return random_checkpoint(TINY, seed=5)


@pytest.fixture()
def pth(tmp_path: Path, checkpoint) -> Path:
    """A tiny checkpoint in the layout the reference trainer writes (extra keys included)."""
    path = tmp_path / "tiny-cpk.pth.tar"
    torch.save({**checkpoint, "epoch": 99, "optimizer_generator": {"state": {}, "param_groups": [{"lr": 2e-4}]}}, path)
    return path


@pytest.fixture(scope="module")
def clip(astronaut, grace_hopper):
    return face_clip(astronaut, grace_hopper, frames=3)


def _save(path: Path, kp_detector: dict, generator: dict) -> Path:
    torch.save({"kp_detector": kp_detector, "generator": generator}, path)
    return path


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-config.json"
    path.write_text(json.dumps(TINY.to_dict()))
    return path


def _assert_no_path(exc: Exception, tmp_path: Path) -> None:
    assert str(tmp_path) not in str(exc) and str(tmp_path) not in exc.user_message()


def test_official_layout_loads_strictly_and_animates(pth, checkpoint, clip):
    kp_detector, generator = load_checkpoint(pth, config=TINY, device="cpu")
    for module, name in ((kp_detector, "kp_detector"), (generator, "generator")):
        loaded = module.state_dict()
        assert loaded.keys() == checkpoint[name].keys()
        assert all(torch.equal(loaded[key], value) for key, value in checkpoint[name].items())
    assert not generator.training and generator.align_corners is True
    source, driving = clip
    frames = animate_frames(kp_detector, generator, source, driving)
    assert frames.shape == driving.shape and 0 <= frames.min() and frames.max() <= 1


def test_align_corners_is_chosen_at_load_time(pth):
    _, generator = load_checkpoint(pth, config=TINY, device="cpu", align_corners=False)
    assert generator.align_corners is False and generator.dense_motion_network.align_corners is False


def test_missing_num_batches_tracked_is_tolerated(tmp_path, checkpoint):
    old_style = {k: v for k, v in checkpoint["generator"].items() if not k.endswith("num_batches_tracked")}
    path = _save(tmp_path / "old.pth.tar", checkpoint["kp_detector"], old_style)
    _, generator = load_checkpoint(path, config=TINY, device="cpu")
    assert torch.equal(generator.state_dict()["final.weight"], checkpoint["generator"]["final.weight"])


def test_legacy_serialization_format_loads(tmp_path, checkpoint):
    path = tmp_path / "legacy.pth.tar"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)  # torch < 1.6 files, like the 2019 release
    kp_detector, _ = load_checkpoint(path, config=TINY, device="cpu")
    assert torch.equal(kp_detector.state_dict()["kp.weight"], checkpoint["kp_detector"]["kp.weight"])


def test_convert_round_trip_gives_identical_outputs(tmp_path, pth, clip, capsys):
    destination = tmp_path / "converted"
    rc = main(["models", "convert", str(pth), str(destination), "--config", str(_config_file(tmp_path))])
    assert rc == 0
    assert "sha256" in capsys.readouterr().out
    assert {p.name for p in destination.iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors"}
    source, driving = clip
    expected = animate_frames(*load_checkpoint(pth, config=TINY, device="cpu"), source, driving)
    converted = animate_frames(*load_checkpoint(destination, device="cpu"), source, driving)
    assert torch.equal(expected, converted)


def test_convert_refuses_a_non_empty_destination(tmp_path, pth, capsys):
    destination = tmp_path / "busy"
    destination.mkdir()
    (destination / "something.txt").write_text("keep me")
    assert main(["models", "convert", str(pth), str(destination), "--config", str(_config_file(tmp_path))]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in destination.iterdir()] == ["something.txt"]


def test_missing_key_is_named(tmp_path, checkpoint):
    generator = dict(checkpoint["generator"])
    del generator["bottleneck.r1.conv2.weight"]
    path = _save(tmp_path / "missing.pth.tar", checkpoint["kp_detector"], generator)
    with pytest.raises(CheckpointMismatch, match=r"generator .*missing bottleneck\.r1\.conv2\.weight") as info:
        load_checkpoint(path, config=TINY, device="cpu")
    _assert_no_path(info.value, tmp_path)


def test_extra_key_is_named(tmp_path, checkpoint):
    kp_detector = {**checkpoint["kp_detector"], "kp.extra": torch.zeros(2)}
    path = _save(tmp_path / "extra.pth.tar", kp_detector, checkpoint["generator"])
    with pytest.raises(CheckpointMismatch, match=r"kp_detector .*unexpected kp\.extra"):
        load_checkpoint(path, config=TINY, device="cpu")


def test_wrong_shape_is_named(tmp_path, checkpoint):
    kp_detector = {**checkpoint["kp_detector"], "kp.bias": torch.zeros(7)}
    path = _save(tmp_path / "shape.pth.tar", kp_detector, checkpoint["generator"])
    with pytest.raises(CheckpointMismatch, match=r"wrong shape kp\.bias \(7,\) != \(10,\)"):
        load_checkpoint(path, config=TINY, device="cpu")


def test_tiny_weights_do_not_fit_the_vox_config(pth):
    with pytest.raises(CheckpointMismatch):
        load_checkpoint(pth, device="cpu")  # default config is vox-256


class _RunsCode:
    """Unpickling this would create the sentinel file: the classic malicious __reduce__."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch '{self.sentinel}'",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_that_runs_code_is_refused_without_running(tmp_path, checkpoint, writer):
    sentinel = tmp_path / "pwned"
    payload = {**checkpoint, "epoch": _RunsCode(sentinel)}
    path = tmp_path / "evil.pth.tar"
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointUnsafe) as info:
        load_checkpoint(path, config=TINY, device="cpu")
    assert not sentinel.exists()
    _assert_no_path(info.value, tmp_path)


def test_cli_reports_an_unsafe_checkpoint_in_one_line(tmp_path, checkpoint, capsys):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    torch.save({**checkpoint, "generator": _RunsCode(sentinel)}, path)
    assert main(["models", "convert", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "could run code" in err and "\n" not in err
    assert not sentinel.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file_is_corrupt(tmp_path, pth, legacy):
    if legacy:
        torch.save(torch.load(pth, weights_only=True), pth, _use_new_zipfile_serialization=False)
    data = pth.read_bytes()
    pth.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointCorrupt):
        load_checkpoint(pth, config=TINY, device="cpu")


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file\n", b"", "tensors-without-networks", "a-list"],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "thing.pth.tar"
    if content == "tensors-without-networks":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif content == "a-list":
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(content)
    with pytest.raises((CheckpointInvalid, CheckpointCorrupt)) as info:
        load_checkpoint(path, config=TINY, device="cpu")
    if content not in (b"",):
        assert isinstance(info.value, CheckpointInvalid)


def test_non_tensor_entries_are_invalid(tmp_path, checkpoint):
    path = _save(tmp_path / "odd.pth.tar", {**checkpoint["kp_detector"], "kp.note": "hello"}, checkpoint["generator"])
    with pytest.raises(CheckpointInvalid, match="non-tensor"):
        load_checkpoint(path, config=TINY, device="cpu")


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointNotFound) as info:
        load_checkpoint(tmp_path / "nowhere.pth.tar", device="cpu")
    _assert_no_path(info.value, tmp_path)


def test_damaged_converted_folder(tmp_path, pth):
    destination = tmp_path / "converted"
    assert main(["models", "convert", str(pth), str(destination), "--config", str(_config_file(tmp_path))]) == 0
    weights = destination / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointCorrupt):
        load_checkpoint(destination, device="cpu")
    (destination / "config.json").unlink()
    with pytest.raises(CheckpointInvalid, match="config.json"):
        load_checkpoint(destination, device="cpu")


def test_converted_folder_with_foreign_weights_is_a_mismatch(tmp_path, pth):
    from safetensors.torch import save_file

    destination = tmp_path / "converted"
    assert main(["models", "convert", str(pth), str(destination), "--config", str(_config_file(tmp_path))]) == 0
    save_file({"kp_detector.kp.weight": torch.zeros(1)}, str(destination / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(CheckpointMismatch, match="missing"):
        load_checkpoint(destination, device="cpu")
