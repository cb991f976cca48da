"""Classical generator: latent noise through an MLP."""

from __future__ import annotations

import torch

from .base import DTYPE, Generator, mlp


class ClassicalGenerator(Generator):
    """MLP generator. ``latent`` is ``normal`` (N(0, I)) or ``uniform`` (U(-1, 1)) of size
    ``latent_dim``; ``hidden`` lists the hidden layer sizes, ``activation`` sits between layers.
    Parameters live under ``net``."""

    def __init__(self, latent: str = "normal", latent_dim: int = 2,
                 hidden: list[int] | tuple[int, ...] = (64, 64), activation: str = "relu"):
        super().__init__()
        self.latent = latent
        self.latent_dim = latent_dim
        self.net = mlp([latent_dim, *hidden, 2], activation)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.latent == "normal":
            return torch.randn(n, self.latent_dim, generator=generator, dtype=DTYPE)
        return 2.0 * torch.rand(n, self.latent_dim, generator=generator, dtype=DTYPE) - 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
