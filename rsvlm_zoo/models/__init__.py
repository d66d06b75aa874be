"""Registered models and their building blocks."""

from rsvlm_zoo.models.aquila_plus import AquilaPlus
from rsvlm_zoo.models.base import RegionVLM

__all__ = ["AquilaPlus", "RegionVLM"]
