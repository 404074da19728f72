"""The weight-free default animator: face-mesh first-order keypoints and a dense warp."""

from models.landmark.animator import LandmarkAnimator

__all__ = ["LandmarkAnimator"]
