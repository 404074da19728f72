"""The default, weight-free animator (implementation in ``models.landmark``)."""

from models.landmark.animator import LandmarkAnimator

__all__ = ["LandmarkAnimator"]
