"""The generator interface shared by every kind, and the MLP used by generators and critic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

DTYPE = torch.float64  # generators compute in float64: tiny networks, exact circuit checks

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def mlp(sizes: list[int], activation: str, dtype: torch.dtype = DTYPE) -> nn.Sequential:
    """Linear layers through ``sizes`` (input, hidden..., output), ``activation`` between them.

    ``leaky_relu`` has negative slope 0.2. Weights are ``dtype`` (default float64).
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i > 0:
            layers.append(_ACTIVATIONS[activation]())
        layers.append(nn.Linear(n_in, n_out, dtype=dtype))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Maps latent noise of size ``latent_dim`` to points in the plane.

    Subclasses set ``latent_dim`` and implement :meth:`sample_latent` and :meth:`forward`.
    """

    latent_dim: int

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` latent vectors, shape (n, latent_dim), float64."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent vectors (n, latent_dim) to points (n, 2)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points (n, 2), float64; the latent noise comes from ``generator``."""
        return self(self.sample_latent(n, generator))

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Context in which the weights are fixed and no gradients are taken.

        Quantum generators use it to build their circuit unitary once for many batches (the critic
        steps of a training iteration); here it is plain ``torch.no_grad()``.
        """
        with torch.no_grad():
            yield

    def n_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def n_circuit_parameters(self) -> int:
        """Trainable scalars inside a quantum circuit (0 for a classical generator); the rest of
        :meth:`n_parameters` is classical (a quantum generator's head)."""
        return 0
