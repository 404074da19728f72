"""Load FOMM weights from an official ``.pth.tar`` or a converted safetensors folder, strictly.

Official files (``vox-cpk.pth.tar``) are pickles holding ``{"generator": state_dict,
"kp_detector": state_dict, ...}``; other keys (optimizers, discriminator, epoch) are ignored.
They are read with ``torch.load(weights_only=True)``, which refuses any pickle that would
import or call code, and every key and shape must match the networks (only BatchNorm's
``num_batches_tracked`` counter may be absent: files from before torch 0.4.1 lack it and
eval-mode inference never reads it). ``convert_checkpoint`` rewrites such a file as a
diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), which loads
without unpickling anything.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from models.errors import CheckpointCorrupt, CheckpointInvalid, CheckpointMismatch, CheckpointNotFound, CheckpointUnsafe
from models.fomm.config import VOX_256, FommConfig
from models.fomm.generator import OcclusionAwareGenerator
from models.fomm.keypoint_detector import KPDetector
from models.fomm.model import FommModel, build_networks

_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
_NETWORKS = ("kp_detector", "generator")
_SHOWN_KEYS = 4


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else "")


def _load_pickle(path: Path) -> object:
    """``torch.load`` with weights_only=True, its failures translated to our errors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc.__context__ or exc)
        if "GLOBAL torch." in reason and "blocked" not in reason:
            # A legacy-format file cut short leaves a half-written torch global name behind.
            raise CheckpointCorrupt("the checkpoint file is truncated or damaged") from None
        raise CheckpointUnsafe(
            "the checkpoint file holds objects other than tensors (a pickle that could run code); "
            "it was refused without being loaded"
        ) from None
    except (EOFError, RuntimeError) as exc:
        raise CheckpointCorrupt("the checkpoint file is truncated or damaged") from exc
    except (KeyError, ValueError, OSError) as exc:
        raise CheckpointInvalid("the file is not a PyTorch checkpoint") from exc


def read_state_dicts(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{"kp_detector": ..., "generator": ...}`` from an official-layout ``.pth.tar`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound("no checkpoint file at the given location")
    raw = _load_pickle(path)
    if not isinstance(raw, Mapping) or any(not isinstance(raw.get(name), Mapping) for name in _NETWORKS):
        raise CheckpointInvalid("the file is not a FOMM checkpoint: it needs 'generator' and 'kp_detector' weights")
    dicts: dict[str, dict[str, torch.Tensor]] = {}
    for name in _NETWORKS:
        bad = [key for key, value in raw[name].items() if not isinstance(value, torch.Tensor)]
        if bad:
            raise CheckpointInvalid(f"the checkpoint's {name} holds non-tensor entries: {_listing(bad)}")
        dicts[name] = dict(raw[name])
    return dicts


def _check_shapes(expected: Mapping[str, torch.Size], given: Mapping[str, torch.Size], *, what: str) -> None:
    """Raise CheckpointMismatch naming a few missing, unexpected and wrongly shaped keys."""
    missing = sorted(key for key in expected if key not in given and not key.endswith("num_batches_tracked"))
    unexpected = sorted(set(given) - set(expected))
    wrong = [
        f"{key} {tuple(given[key])} != {tuple(shape)}"
        for key, shape in expected.items()
        if key in given and given[key] != shape
    ]
    problems = [
        f"{label} {_listing(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    ]
    if problems:
        raise CheckpointMismatch(f"the {what} weights do not fit the network: " + "; ".join(problems))


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    """``load_state_dict(strict=True)`` that tolerates absent ``num_batches_tracked`` and names bad keys."""
    expected = module.state_dict()
    _check_shapes({k: v.shape for k, v in expected.items()}, {k: v.shape for k, v in state.items()}, what=what)
    state = dict(state)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    module.load_state_dict(state, strict=True)


def _read_config(folder: Path) -> FommConfig:
    config_file = folder / FommModel.config_name
    if not config_file.is_file():
        raise CheckpointInvalid("the folder is not a converted FOMM checkpoint (no config.json)")
    try:
        params = json.loads(config_file.read_text(encoding="utf-8"))
        return FommConfig.from_dict(params)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointInvalid("the converted checkpoint's config.json is not a FOMM configuration") from exc


def _check_safetensors(folder: Path, model: FommModel) -> None:
    """Key and shape check before diffusers reads the weights, so mismatches get our message."""
    from safetensors import SafetensorError, safe_open

    weights = folder / _WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointInvalid(f"the folder is not a converted FOMM checkpoint (no {_WEIGHTS_NAME})")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {key: torch.Size(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointCorrupt("the safetensors weights are truncated or damaged") from exc
    for name in _NETWORKS:
        prefix = name + "."
        expected = {key: value.shape for key, value in getattr(model, name).state_dict().items()}
        given = {key[len(prefix) :]: shape for key, shape in shapes.items() if key.startswith(prefix)}
        _check_shapes(expected, given, what=name)
    strays = [key for key in shapes if not key.startswith(tuple(n + "." for n in _NETWORKS))]
    if strays:
        raise CheckpointMismatch(f"the converted weights hold unexpected keys: {_listing(strays)}")


def _load_folder(folder: Path) -> FommModel:
    config = _read_config(folder)
    _check_safetensors(folder, FommModel.from_fomm_config(config))
    return FommModel.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)


def load_checkpoint(
    path: str | Path,
    *,
    align_corners: bool = True,
    config: FommConfig = VOX_256,
    device: torch.device | str | None = None,
) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Networks in eval mode on ``device`` (CUDA when present) from a ``.pth.tar`` file or a converted folder.

    ``config`` describes a ``.pth.tar`` file (official files carry none; vox-256 by default);
    a converted folder brings its own ``config.json``. ``align_corners`` picks grid_sample
    semantics: True as the weights were trained (torch 1.0), False as the reference code
    runs on torch >= 1.3.
    """
    path = Path(path)
    if path.is_dir():
        model = _load_folder(path)
        kp_detector, generator = model.kp_detector, model.generator
    elif path.is_file():
        dicts = read_state_dicts(path)
        kp_detector, generator = build_networks(config)
        load_state_dict_strict(kp_detector, dicts["kp_detector"], what="kp_detector")
        load_state_dict_strict(generator, dicts["generator"], what="generator")
    else:
        raise CheckpointNotFound("no checkpoint file or converted checkpoint folder at the given location")
    generator.set_align_corners(align_corners)
    target = torch.device(device) if device is not None else default_device()
    return kp_detector.eval().to(target), generator.eval().to(target)


def convert_checkpoint(source: str | Path, destination: str | Path, *, config: FommConfig = VOX_256) -> Path:
    """Rewrite an official ``.pth.tar`` as a safetensors folder; returns the folder."""
    dicts = read_state_dicts(source)
    model = FommModel.from_fomm_config(config)
    load_state_dict_strict(model.kp_detector, dicts["kp_detector"], what="kp_detector")
    load_state_dict_strict(model.generator, dicts["generator"], what="generator")
    destination = Path(destination)
    model.save_pretrained(destination, safe_serialization=True)
    return destination
