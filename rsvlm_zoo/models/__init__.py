"""Registered models and their building blocks."""

from rsvlm_zoo.models.aquila_plus import AquilaPlus
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.geochat import GeoChat
from rsvlm_zoo.models.mgimm import MGIMM

__all__ = ["MGIMM", "AquilaPlus", "GeoChat", "RegionVLM"]
