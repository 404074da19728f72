"""`avatar-studio models ...`: motion-model checkpoints.

``convert`` turns an official FOMM ``.pth.tar`` (a pickle, read with ``weights_only=True``)
into a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``) that
loads without unpickling anything; the studio then points ``FommAnimator`` at that folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from studio.commands._common import Invalid, echo

app = typer.Typer(no_args_is_help=True, help="Motion model checkpoints.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="Official FOMM checkpoint (.pth.tar with 'generator' and 'kp_detector').")],
    dst_dir: Annotated[Path, typer.Argument(help="Folder to write config.json and the safetensors weights into.")],
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="JSON model_params (common/kp_detector/generator) if not vox-256."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
) -> None:
    """Convert a FOMM checkpoint to safetensors, checking every key and shape."""
    from models.fomm.checkpoint import convert_checkpoint
    from models.fomm.config import VOX_256, FommConfig

    model_config = VOX_256
    if config is not None:
        try:
            model_config = FommConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise Invalid(f"the --config file is not a FOMM model_params JSON ({type(exc).__name__})") from None
    if dst_dir.exists() and (not dst_dir.is_dir() or (any(dst_dir.iterdir()) and not force)):
        raise Invalid("the destination exists and is not an empty folder (use --force to write into it)")
    folder = convert_checkpoint(src, dst_dir, config=model_config)
    weights = folder / "diffusion_pytorch_model.safetensors"
    echo(f"converted {src.name} -> {folder}")
    echo(f"sha256 {_sha256(weights)}  {weights.name}")
