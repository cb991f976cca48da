"""The WGAN critic: an MLP from points in the plane to one real score."""

from __future__ import annotations

import torch
from torch import nn

from .base import mlp


class Critic(nn.Module):
    """MLP critic R^2 -> R with ``hidden`` layer sizes (default [64, 64]) and ``activation``
    (default ``leaky_relu``, slope 0.2). No normalisation layers: the gradient penalty needs a
    per-sample gradient. Output shape (n,).

    The critic computes in float32 (inputs are cast; gradients flow back to float64 generators):
    its precision matters less than the generator's, and its steps are most of a training step's
    cost, about 30% less than in float64 here."""

    dtype = torch.float32

    def __init__(self, hidden: list[int] | tuple[int, ...] = (64, 64),
                 activation: str = "leaky_relu"):
        super().__init__()
        self.net = mlp([2, *hidden, 1], activation, dtype=self.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).squeeze(-1)
