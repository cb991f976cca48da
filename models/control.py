"""Control generator: a hybrid's MLP head fed by classical noise instead of its circuit.

A quantum generator with an MLP head (a *hybrid*) maps latent noise through a circuit to its
n_qubits expectation values <Z_i>, then through the head to the plane. Its honest control is the
same head with no circuit: whatever the hybrid does better than its control, the circuit did.
So the control's head is built exactly as :class:`models.quantum.QuantumGenerator`'s
(``mlp([n_qubits, *head_hidden, 2], head_activation)``, parameters under ``head``), and its
parameter count equals the hybrid's head count; it has no circuit parameters.

Noise: U(-1, 1)^n_qubits. Each <Z_i> lies in [-1, 1], so the head sees inputs of the same range
and scale in both arms (the same initial weights act alike, the same learning rates fit); what
differs is only where in the cube the points lie: a learned, correlated (for the gaussgan and
reuploading ansatze, 2-dimensional) set for the hybrid, the whole cube uniformly for the control.
"""

from __future__ import annotations

import torch

from .base import DTYPE, Generator, mlp


class ControlGenerator(Generator):
    """U(-1, 1)^n_qubits noise -> MLP head -> point in the plane.

    Arguments (defaults as in ``models/config.py``): ``n_qubits`` (6), the noise dimension, named
    as the hybrid's circuit width so one study file's search reads alike for both arms;
    ``head_hidden`` ([32]) and ``head_activation`` (relu), the hybrid's head.
    """

    def __init__(self, n_qubits: int = 6, head_hidden: list[int] | tuple[int, ...] = (32,),
                 head_activation: str = "relu"):
        super().__init__()
        self.latent_dim = n_qubits
        self.head = mlp([n_qubits, *head_hidden, 2], head_activation)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return 2.0 * torch.rand(n, self.latent_dim, generator=generator, dtype=DTYPE) - 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)
