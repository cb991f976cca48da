"""Quantum generator: a circuit's <Z_i> expectation values, mapped to the plane by a head.

PennyLane defines the circuit (``models/circuits.py``); a backend executes it:

* ``fast`` (:class:`FastBackend`): exact state-vector arithmetic in torch, complex128. Each layer is
  a Kronecker product of 2x2 gates times a permutation or a diagonal phase, so for up to
  ``UNITARY_MAX_QUBITS`` wires the whole trainable part becomes one 2^n x 2^n matrix U, built once
  and applied to the whole batch of encoded product states: <Z> = |psi U^T|^2 @ signs. Inside
  :meth:`QuantumGenerator.frozen` U is built once and reused for every batch (the critic steps).
  Circuits that re-upload the noise get one matrix per layer, with the per-sample encoding gates
  applied wire by wire in between. Above ``UNITARY_MAX_QUBITS`` the layers are applied gate by gate
  to the batch of states instead (cost n * batch * 2^n rather than 8^n).
* ``pennylane`` (:class:`PennyLaneBackend`): a QNode on ``default.qubit`` with backprop and
  parameter broadcasting (the whole batch in one call); any other installed PennyLane device
  name works too.

Parameter names (``circuit.<weight>``, ``head.*``) do not depend on the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import reduce

import pennylane as qml
import torch
from torch import nn

from .base import DTYPE, Generator, mlp
from .circuits import ANSATZE, CDTYPE, Ansatz, Layers, z_signs

UNITARY_MAX_QUBITS = 8


# --- fast backend: torch state-vector arithmetic --------------------------------------------------

def apply_gates(psi: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """Apply 2x2 ``gates[..., i, :, :]`` to wire i of the states ``psi`` (B, 2^n). ``gates`` is
    (n, 2, 2), shared by the batch, or (B, n, 2, 2), one set per sample."""
    batch, n = psi.shape[0], gates.shape[-3]
    pattern = "ij,bajc->baic" if gates.dim() == 3 else "bij,bajc->baic"
    gates = gates.to(psi.dtype)
    for i in range(n):
        psi = torch.einsum(pattern, gates[..., i, :, :], psi.reshape(batch, 2**i, 2, -1))
    return psi.reshape(batch, -1)


def apply_layers(psi: torch.Tensor, layers: Layers) -> torch.Tensor:
    """Apply ``layers`` to the states ``psi`` (B, 2^n), gate by gate."""
    for layer in range(layers.gates.shape[0]):
        psi = apply_gates(psi, layers.gates[layer])
        if layers.perm is not None:
            psi = psi[:, layers.perm[layer]]
        if layers.phase is not None:
            psi = psi * torch.exp(1j * layers.phase[layer])
    return psi


def layer_matrices(layers: Layers) -> torch.Tensor:
    """Every layer as a 2^n x 2^n matrix, (L, 2^n, 2^n) complex: the Kronecker product of its n
    gates (built for all layers at once, one wire at a time), rows permuted, rows scaled by the
    phase."""
    gates = layers.gates
    matrices = gates[:, 0]
    for i in range(1, gates.shape[1]):
        dim = matrices.shape[-1]
        matrices = (matrices[:, :, None, :, None] * gates[:, i, None, :, None, :])
        matrices = matrices.reshape(gates.shape[0], 2 * dim, 2 * dim)
    dim = matrices.shape[-1]
    if layers.perm is not None:
        matrices = matrices.gather(1, layers.perm[:, :, None].expand(-1, -1, dim))
    if layers.phase is not None:
        matrices = torch.exp(1j * layers.phase)[:, :, None] * matrices
    return matrices.to(CDTYPE)


class FastBackend:
    """Exact execution in torch (see the module docstring). ``use_unitary`` defaults to
    ``n_qubits <= UNITARY_MAX_QUBITS``; both ways give the same numbers."""

    def __init__(self, ansatz: Ansatz, use_unitary: bool | None = None):
        self.ansatz = ansatz
        self.signs = z_signs(ansatz.n_qubits)
        if use_unitary is None:
            use_unitary = ansatz.n_qubits <= UNITARY_MAX_QUBITS
        self.use_unitary = use_unitary

    def prepare(self, params: dict[str, torch.Tensor]) -> list:
        """Everything that depends on the weights only: one block per (re-)encoding of the noise
        (one block, or one per layer when the circuit re-uploads). With ``use_unitary`` a block is
        the product of its layers' transposed matrices, and the first is multiplied into the
        ansatz's state basis, so that psi = coeffs @ prepared[0]; otherwise a block is the
        :class:`Layers` themselves."""
        layers = self.ansatz.layers(params)
        if not self.use_unitary:
            if self.ansatz.reupload:
                return [_select(layers, i) for i in range(self.ansatz.n_layers)]
            return [layers]
        transposed = layer_matrices(layers).transpose(1, 2)  # M_l^T
        if self.ansatz.reupload:
            blocks = list(transposed.unbind(0))
        else:
            blocks = [reduce(torch.matmul, transposed.unbind(0))]  # U^T = M_1^T M_2^T ...
        if self.ansatz.state_basis is not None:
            blocks[0] = self.ansatz.state_basis @ blocks[0]
        return blocks

    def expvals(self, prepared: list, z: torch.Tensor) -> torch.Tensor:
        """<Z_i> for every sample: (B, n_qubits) float64."""
        z = z.to(DTYPE)
        coeffs = self.ansatz.encoded_state(z)  # psi_0 = coeffs @ state_basis
        if self.use_unitary:
            psi = _matmul(coeffs, prepared[0])
        else:
            basis = self.ansatz.state_basis
            psi = apply_layers(coeffs.to(CDTYPE) if basis is None else coeffs @ basis, prepared[0])
        gates = self.ansatz.encoding(z) if len(prepared) > 1 else None
        for block in prepared[1:]:  # re-uploading: encode again before every further layer
            psi = apply_gates(psi, gates)
            psi = psi @ block if self.use_unitary else apply_layers(psi, block)
        probs = psi.real**2 + psi.imag**2
        return probs @ self.signs


def _select(layers: Layers, layer: int) -> Layers:
    """The single layer ``layer`` of ``layers``."""
    pick = slice(layer, layer + 1)
    return Layers(layers.gates[pick],
                  None if layers.perm is None else layers.perm[pick],
                  None if layers.phase is None else layers.phase[pick])


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for complex b, with half the work when a is real."""
    if a.is_complex():
        return a @ b
    return torch.complex(a @ b.real, a @ b.imag)


# --- PennyLane backend ----------------------------------------------------------------------------

class PennyLaneBackend:
    """Runs ``ansatz.qfunc`` as a QNode on ``device`` (``default.qubit``: backprop; other devices:
    PennyLane's best differentiation method). ``broadcast=True`` sends the whole batch in one call;
    ``broadcast=False`` makes one call per sample (the research code's way, for benchmarks)."""

    def __init__(self, ansatz: Ansatz, device: str = "default.qubit", broadcast: bool = True):
        self.ansatz, self.broadcast = ansatz, broadcast
        n = ansatz.n_qubits
        diff_method = "backprop" if device == "default.qubit" else "best"

        @qml.qnode(qml.device(device, wires=n), interface="torch", diff_method=diff_method)
        def circuit(z, names, *weights):
            ansatz.qfunc(dict(zip(names, weights, strict=True)), z)
            return [qml.expval(qml.PauliZ(i)) for i in range(n)]

        self.qnode = circuit

    def prepare(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return params

    def _call(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        out = self.qnode(z, tuple(params), *params.values())
        return torch.stack([torch.as_tensor(v, dtype=DTYPE) for v in out], dim=-1)

    def expvals(self, prepared: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        z = z.to(DTYPE)
        if self.broadcast:
            return self._call(prepared, z)
        return torch.stack([self._call(prepared, z[b]) for b in range(z.shape[0])])


def make_backend(name: str, ansatz: Ansatz):
    """``fast`` -> :class:`FastBackend`; ``pennylane`` -> ``default.qubit``; else a device name."""
    if name == "fast":
        return FastBackend(ansatz)
    return PennyLaneBackend(ansatz, "default.qubit" if name == "pennylane" else name)


# --- the generator --------------------------------------------------------------------------------

class QuantumGenerator(Generator):
    """Latent noise -> circuit -> <Z_0..Z_{n-1}> -> head -> point in the plane.

    Arguments (defaults as in ``models/config.py``): ``n_qubits`` (6), ``n_layers`` (2), ``ansatz``
    (``gaussgan`` | ``strongly_entangling`` | ``reuploading``), ``head`` (``linear``: an affine map
    R^n -> R^2; ``mlp``: hidden sizes ``head_hidden`` [32] with ``head_activation`` relu),
    ``backend`` (``fast`` | ``pennylane`` | a PennyLane device name). Latent: U(-1, 1)^latent_dim,
    where latent_dim is 2 (gaussgan, reuploading) or n_qubits (strongly_entangling).
    """

    def __init__(self, n_qubits: int = 6, n_layers: int = 2, ansatz: str = "gaussgan",
                 head: str = "linear", head_hidden: list[int] | tuple[int, ...] = (32,),
                 head_activation: str = "relu", backend: str = "fast"):
        super().__init__()
        self.ansatz = ANSATZE[ansatz](n_qubits, n_layers)
        self.latent_dim = self.ansatz.latent_dim
        self.circuit = nn.ParameterDict(
            {k: nn.Parameter(v) for k, v in self.ansatz.init_parameters().items()})
        hidden = list(head_hidden) if head == "mlp" else []
        self.head = mlp([n_qubits, *hidden, 2], head_activation)
        self.backend = make_backend(backend, self.ansatz)
        self._prepared = None  # set inside frozen(): the weights' unitaries, built once

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return 2.0 * torch.rand(n, self.latent_dim, generator=generator, dtype=DTYPE) - 1.0

    def expvals(self, z: torch.Tensor) -> torch.Tensor:
        """The circuit's <Z_i> for each latent vector: (n, n_qubits)."""
        prepared = self._prepared
        if prepared is None:
            prepared = self.backend.prepare(dict(self.circuit))
        return self.backend.expvals(prepared, z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.expvals(z))

    @contextmanager
    def frozen(self) -> Iterator[None]:
        with torch.no_grad():
            self._prepared = self.backend.prepare(dict(self.circuit))
            try:
                yield
            finally:
                self._prepared = None

