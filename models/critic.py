"""The WGAN critic: an MLP from points in the plane to one real score."""

from __future__ import annotations

import torch
from torch import nn

from .base import mlp


class Critic(nn.Module):
    """MLP critic R^2 -> R with ``hidden`` layer sizes (default [64, 64]) and ``activation``
    (default ``leaky_relu``, slope 0.2). No normalisation layers: the gradient penalty needs a
    per-sample gradient. Output shape (n,)."""

    def __init__(self, hidden: list[int] | tuple[int, ...] = (64, 64),
                 activation: str = "leaky_relu"):
        super().__init__()
        self.net = mlp([2, *hidden, 1], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
