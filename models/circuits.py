"""Quantum circuits (ansatze), each written twice from one definition:

* ``qfunc``: the PennyLane quantum function, the reference that runs on any PennyLane device;
* ``layers``: the same circuit as :class:`Layers`: each layer single-qubit gates on every wire
  (with their diagonal RZ parts apart), followed by a fixed permutation of basis states (a CNOT
  network) and/or a diagonal phase (a chain of ZZ rotations). The fast backend
  (``models/quantum.py``) applies them as Kronecker blocks, matrix products and diagonal phases.

Wire 0 is the most significant bit of a basis-state index, as in PennyLane. Latent noise is
z ~ U(-1, 1)^latent_dim, encoded as rotation angles arcsin(z) (the research code's choice).
Tests hold the two forms equal to 1e-8, values and gradients.

PennyLane is imported only where a ``qfunc`` runs: its import costs about 1.4 s of CPU, which every
worker process paid on its first quantum trial although the fast backend never calls it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import DTYPE

CDTYPE = torch.complex128


# --- 2x2 gates, batched over leading dimensions ---------------------------------------------------

def ry(theta: torch.Tensor) -> torch.Tensor:
    """RY(theta) = exp(-i theta Y / 2), shape (..., 2, 2), real (float64)."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return torch.stack([c, -s, s, c], -1).unflatten(-1, (2, 2))


def rz(theta: torch.Tensor) -> torch.Tensor:
    """RZ(theta) = diag(exp(-i theta / 2), exp(i theta / 2)), shape (..., 2, 2), complex."""
    e = torch.exp(-0.5j * theta.to(CDTYPE))
    zero = torch.zeros_like(e)
    return torch.stack([torch.stack([e, zero], -1), torch.stack([zero, e.conj()], -1)], -2)


def rot(phi: torch.Tensor, theta: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """PennyLane's Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi), shape (..., 2, 2)."""
    return rz(omega) @ ry(theta).to(CDTYPE) @ rz(phi)


def bits(n_qubits: int) -> torch.Tensor:
    """(2^n, n) long tensor: bit of wire i in basis state k (wire 0 most significant)."""
    k = torch.arange(2**n_qubits)
    return (k[:, None] >> torch.arange(n_qubits - 1, -1, -1)) & 1


def z_signs(n_qubits: int) -> torch.Tensor:
    """(2^n, n) float64: eigenvalue of Z on wire i in basis state k (+1 for bit 0, -1 for bit 1)."""
    return (1 - 2 * bits(n_qubits)).to(DTYPE)


def cnot_permutation(n_qubits: int, pairs: list[tuple[int, int]]) -> torch.Tensor:
    """Index array ``src`` such that applying CNOT(c, t) for (c, t) in ``pairs`` (in order) maps a
    state vector ``psi`` to ``psi[..., src]``."""
    src = torch.arange(2**n_qubits)
    for control, target in reversed(pairs):
        flip = ((src >> (n_qubits - 1 - control)) & 1) << (n_qubits - 1 - target)
        src = src ^ flip
    return src


def product_state(vectors: torch.Tensor) -> torch.Tensor:
    """(B, n, 2) single-wire states -> (B, 2^n), their Kronecker product (wire 0 first)."""
    psi = vectors[:, 0]
    for i in range(1, vectors.shape[1]):
        psi = (psi[:, :, None] * vectors[:, i, None, :]).reshape(psi.shape[0], -1)
    return psi


def _powers(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B,) -> (B, n + 1): x^0, x^1, ..., x^n (by repeated products: complex pow is slow)."""
    ones = torch.ones_like(x)[:, None]
    return torch.cat([ones, torch.cumprod(x[:, None].expand(-1, n), dim=1)], dim=1)


@dataclass
class Layers:
    """The trainable layers. Layer l applies RZ(rz_before[l, i]) (if given), ``gates[l, i]`` (2x2)
    and RZ(rz_after[l, i]) (if given) to wire i, then maps a state psi to psi[perm[l]] (if
    ``perm`` is given), then multiplies it by exp(i phase[l]) (if ``phase`` is given).

    The RZ rotations are kept apart from ``gates`` because they are diagonal: the fast backend
    multiplies them into the phases between layers, so that real ``gates`` (RY) stay real."""

    gates: torch.Tensor  # (L, n, 2, 2), real or complex
    perm: torch.Tensor | None = None  # (L, 2^n) long
    phase: torch.Tensor | None = None  # (L, 2^n) float64 angles
    rz_before: torch.Tensor | None = None  # (L, n) float64 angles
    rz_after: torch.Tensor | None = None  # (L, n) float64 angles

    def wire_gates(self) -> torch.Tensor:
        """(L, n, 2, 2): each wire's whole single-qubit gate, RZ(after) gates RZ(before)."""
        gates = self.gates
        if self.rz_before is not None or self.rz_after is not None:
            gates = gates.to(CDTYPE)
        if self.rz_before is not None:
            gates = gates @ rz(self.rz_before)
        if self.rz_after is not None:
            gates = rz(self.rz_after) @ gates
        return gates


# --- the ansatze ----------------------------------------------------------------------------------

class Ansatz:
    """Base class. ``encoding(z)`` gives the per-sample, per-wire 2x2 gates that load the latent
    noise; with ``reupload`` they are applied again before every layer, else only once at the start.
    """

    name: str
    latent_dim: int
    reupload = False
    # Encoded states are psi_0 = encoded_state(z) @ state_basis; None stands for the identity.
    state_basis: torch.Tensor | None = None

    def __init__(self, n_qubits: int, n_layers: int):
        self.n_qubits, self.n_layers = n_qubits, n_layers

    def init_parameters(self) -> dict[str, torch.Tensor]:
        """Initial circuit weights (angles, float64), drawn from torch's global generator."""
        raise NotImplementedError

    def encoding(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n, 2, 2), real or complex: the gate that loads sample b's noise onto wire i."""
        raise NotImplementedError

    def encoded_state(self, z: torch.Tensor) -> torch.Tensor:
        """The encoded product state (the encoding gates applied to |0...0>) as coefficients
        (B, r) over the rows of ``state_basis`` (r, 2^n). Here r = 2^n and the basis is the
        identity; ansatze whose encoded states lie in a smaller subspace override both, so that the
        fast backend multiplies by r x 2^n instead of 2^n x 2^n."""
        return product_state(self.encoding(z)[..., 0])

    def layers(self, params: dict[str, torch.Tensor]) -> Layers:
        """The trainable layers, for the fast backend."""
        raise NotImplementedError

    def qfunc(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> None:
        """The circuit as PennyLane operations; ``z`` is (B, latent_dim) (broadcast) or
        (latent_dim,)."""
        raise NotImplementedError


class GaussGAN(Ansatz):
    """The research code's circuit. Latent z1, z2 ~ U(-1, 1); every wire gets RY(arcsin z1) then
    RZ(arcsin z2). Each layer applies RY(w) to every wire, then for each neighbouring pair (i, i+1)
    of a line CNOT, RZ(w) on i+1, CNOT, i.e. exp(-i w Z_i Z_{i+1} / 2); <Z_i> is measured.

    The last layer's ZZ chain is left out: it is diagonal, so it commutes with the Z measurement and
    its weights could never change the output (in the research code they never trained). Weights:
    ``ry`` (n_layers, n_qubits) and ``zz`` (n_layers - 1, n_qubits - 1), initialised U(0, 2 pi).
    """

    name = "gaussgan"
    latent_dim = 2

    def __init__(self, n_qubits: int, n_layers: int):
        super().__init__(n_qubits, n_layers)
        b = bits(n_qubits)
        self.zz_signs = (1 - 2 * (b[:, :-1] ^ b[:, 1:])).to(DTYPE)  # (2^n, n-1): Z_i Z_{i+1}
        weight = b.sum(1)  # Hamming weight of each basis state
        self.state_basis = (weight == torch.arange(n_qubits + 1)[:, None]).to(CDTYPE)

    def init_parameters(self) -> dict[str, torch.Tensor]:
        n, layers = self.n_qubits, self.n_layers
        return {"ry": 2 * math.pi * torch.rand(layers, n, dtype=DTYPE),
                "zz": 2 * math.pi * torch.rand(layers - 1, n - 1, dtype=DTYPE)}

    def encoding(self, z: torch.Tensor) -> torch.Tensor:
        gate = rz(torch.arcsin(z[:, 1])) @ ry(torch.arcsin(z[:, 0])).to(CDTYPE)  # (B, 2, 2)
        return gate[:, None].expand(-1, self.n_qubits, 2, 2)

    def encoded_state(self, z: torch.Tensor) -> torch.Tensor:
        """Every wire holds the same state (alpha, beta), so amplitude k is alpha^(n-w) beta^w with
        w the Hamming weight of k: r = n + 1 coefficients over the weight-class indicators."""
        a, b = torch.arcsin(z[:, 0]), torch.arcsin(z[:, 1])
        alpha = torch.cos(a / 2) * torch.exp(-0.5j * b)
        beta = torch.sin(a / 2) * torch.exp(0.5j * b)
        return _powers(alpha, self.n_qubits).flip(1) * _powers(beta, self.n_qubits)

    def layers(self, params: dict[str, torch.Tensor]) -> Layers:
        phase = -0.5 * (params["zz"] @ self.zz_signs.T)  # (L - 1, 2^n)
        phase = torch.cat([phase, torch.zeros(1, 2**self.n_qubits, dtype=DTYPE)])  # no last chain
        return Layers(gates=ry(params["ry"]), phase=phase)

    def qfunc(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> None:
        import pennylane as qml  # the reference only: see the module docstring

        wires = range(self.n_qubits)
        for layer in range(self.n_layers):
            if layer == 0 or self.reupload:
                for i in wires:
                    qml.RY(torch.arcsin(z[..., 0]), wires=i)
                    qml.RZ(torch.arcsin(z[..., 1]), wires=i)
            for i in wires:
                qml.RY(params["ry"][layer, i], wires=i)
            if layer < self.n_layers - 1:
                for i in range(self.n_qubits - 1):
                    qml.CNOT(wires=[i, i + 1])
                    qml.RZ(params["zz"][layer, i], wires=i + 1)
                    qml.CNOT(wires=[i, i + 1])


class Reuploading(GaussGAN):
    """:class:`GaussGAN` with the noise encoded again before every layer (data re-uploading): same
    weights, same latent. With one layer it is the gaussgan circuit."""

    name = "reuploading"
    reupload = True


class StronglyEntangling(Ansatz):
    """One latent angle per wire, z_i ~ U(-1, 1) encoded as RY(arcsin z_i), then PennyLane's
    ``StronglyEntanglingLayers`` (Rot on every wire, then a ring of CNOTs whose range is
    ``layer % (n - 1) + 1``). Weights: ``weights`` (n_layers, n_qubits, 3), initialised U(0, 2 pi).

    The template is used as PennyLane defines it, so the last layer's third Rot angles (an RZ just
    before a CNOT network and the Z measurement) cannot change the output and get zero gradient.
    """

    name = "strongly_entangling"

    def __init__(self, n_qubits: int, n_layers: int):
        super().__init__(n_qubits, n_layers)
        self.latent_dim = n_qubits
        self.perm = None  # one wire: no CNOTs
        if n_qubits > 1:
            ranges = [layer % (n_qubits - 1) + 1 for layer in range(n_layers)]
            self.perm = torch.stack([
                cnot_permutation(n_qubits, [(i, (i + r) % n_qubits) for i in range(n_qubits)])
                for r in ranges])

    def init_parameters(self) -> dict[str, torch.Tensor]:
        shape = (self.n_layers, self.n_qubits, 3)
        return {"weights": 2 * math.pi * torch.rand(*shape, dtype=DTYPE)}

    def encoding(self, z: torch.Tensor) -> torch.Tensor:
        return ry(torch.arcsin(z))  # (B, n, 2, 2)

    def encoded_state(self, z: torch.Tensor) -> torch.Tensor:
        """RY(a)|0> = (cos(a/2), sin(a/2)) is real, so the encoded state is real too."""
        half = torch.arcsin(z) / 2
        return product_state(torch.stack([torch.cos(half), torch.sin(half)], -1))

    def layers(self, params: dict[str, torch.Tensor]) -> Layers:
        w = params["weights"]
        return Layers(gates=ry(w[..., 1]), perm=self.perm, rz_before=w[..., 0],
                      rz_after=w[..., 2])

    def qfunc(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> None:
        import pennylane as qml  # the reference only: see the module docstring

        for i in range(self.n_qubits):
            qml.RY(torch.arcsin(z[..., i]), wires=i)
        qml.StronglyEntanglingLayers(params["weights"], wires=range(self.n_qubits))


ANSATZE: dict[str, type[Ansatz]] = {
    cls.name: cls for cls in (GaussGAN, StronglyEntangling, Reuploading)
}
