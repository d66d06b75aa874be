"""Projectors: vision-token width -> LLM hidden width."""

from __future__ import annotations

import torch
from torch import nn

from rsvlm_zoo.weights.model_config import RecordsInitArgs


class MLPProjector(RecordsInitArgs, nn.Module):
    """LLaVA's `mlp2x_gelu`: Linear(in -> out), GELU, Linear(out -> out).

    Args:
        in_dim: Width of the vision tokens.
        out_dim: LLM hidden size.
        depth: Number of Linear layers (2 = mlp2x_gelu, 1 = a single linear map).
    """

    def __init__(self, in_dim: int = 1024, out_dim: int = 4096, depth: int = 2) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"MLPProjector depth must be >= 1, got {depth}")
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project (..., in_dim) -> (..., out_dim)."""
        return self.net(x)
