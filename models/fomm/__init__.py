"""First Order Motion Model (Siarohin et al., NeurIPS 2019), our inference port.

    from models.fomm import load_checkpoint, animate_frames
    kp_detector, generator = load_checkpoint("vox-cpk.pth.tar")   # or a converted folder
    predictions = animate_frames(kp_detector, generator, source, driving, relative=True,
                                 adapt_movement_scale=True)       # (T, 3, 256, 256) in [0, 1]

Networks keep the paper's class and attribute names (``KPDetector``, ``DenseMotionNetwork``,
``OcclusionAwareGenerator``) so official checkpoints load with ``strict=True``.
"""

from models.fomm.animate import animate_frames, animate_stream, normalize_kp
from models.fomm.checkpoint import convert_checkpoint, default_device, load_checkpoint
from models.fomm.config import VOX_256, FommConfig
from models.fomm.dense_motion import DenseMotionNetwork
from models.fomm.generator import OcclusionAwareGenerator
from models.fomm.keypoint_detector import KPDetector
from models.fomm.model import FommModel, build_networks

__all__ = [
    "VOX_256",
    "DenseMotionNetwork",
    "FommConfig",
    "FommModel",
    "KPDetector",
    "OcclusionAwareGenerator",
    "animate_frames",
    "animate_stream",
    "build_networks",
    "convert_checkpoint",
    "default_device",
    "load_checkpoint",
    "normalize_kp",
]
