"""Quantum generator: a circuit's <Z_i> expectation values, mapped to the plane by a head.

PennyLane defines the circuit (``models/circuits.py``); a backend executes it:

* ``fast`` (:class:`FastBackend`): exact state-vector arithmetic in torch. A layer is single-qubit
  gates on every wire, then a permutation of basis states (a CNOT network) and/or a diagonal phase
  (ZZ chains, RZ rotations). Everything built from the weights alone (a :class:`Plan`) is built
  once per generator step inside :meth:`QuantumGenerator.frozen` and reused for the critic's
  batches, under ``torch.no_grad``. Three methods, the default chosen by ansatz and size:

  - ``moments`` (gaussgan; any size): the encoded states span r = n + 1 basis states, so
    <Z_i> = c^H W_i c with W_i = V^H diag(Z_i) V (r x r) and V the circuit applied to those r
    states. Per sample it costs n r^2, whatever 2^n is. complex128.
  - ``unitary`` (no re-uploading, up to ``UNITARY_MAX_QUBITS`` = 8 wires): U is the circuit applied
    to the 2^n basis states, then psi = U psi_0 for the whole batch in one matrix product.
  - ``states`` (above 8 wires, and re-uploading circuits): the batch of states as columns (2^n, B).
    Layer 0 acts on the encoded product state wire by wire; every later layer's gates act as
    Kronecker blocks of ``BLOCK_QUBITS`` wires (one matrix product per block, 2^k x 2^k: cost
    ~ B 2^n (2^k n / k) per layer instead of B 4^n), real when the gates are real (RY: RZ
    rotations are kept apart and merged into the diagonal phase between layers), the permutation
    a row gather. The last layer's permutation is folded into the Z signs and its phases dropped
    (diagonal: they cannot change a Z measurement). Re-uploading circuits build per-sample blocks
    (batched matrix products, states as rows).

  Precision: complex128 up to ``DOUBLE_MAX_QUBITS`` = 6 wires and for ``moments``; complex64
  above (about twice as fast; <Z> within 2e-5 of PennyLane, tested; training outcomes unchanged:
  ``docs/quantum-step.md``).
* ``pennylane`` (:class:`PennyLaneBackend`): a QNode on ``default.qubit`` with backprop and
  parameter broadcasting (the whole batch in one call); any other installed PennyLane device
  name works too.

Parameter names (``circuit.<weight>``, ``head.*``) do not depend on the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .base import DTYPE, Generator, mlp
from .circuits import ANSATZE, Ansatz, Layers, product_state, rz, z_signs

# --- fast backend: torch state-vector arithmetic --------------------------------------------------

METHODS = ("moments", "unitary", "states")
UNITARY_MAX_QUBITS = 8
DOUBLE_MAX_QUBITS = 6
BLOCK_QUBITS = 4


def block_sizes(n_qubits: int, block_qubits: int = BLOCK_QUBITS) -> list[int]:
    """Split wires 0..n-1 into ceil(n / block_qubits) consecutive groups, sizes as even as possible
    (larger first): 10 wires in blocks of at most 4 -> [4, 3, 3]."""
    groups = -(-n_qubits // block_qubits)
    base, extra = divmod(n_qubits, groups)
    return [base + 1] * extra + [base] * (groups - extra)


def kron_blocks(gates: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Kronecker products of the 2x2 ``gates[..., i, :, :]`` over consecutive wire groups of
    ``sizes`` (wire 0 first): a list of (..., 2^k, 2^k) matrices. Leading dimensions (layers,
    samples) carry through."""
    blocks, start = [], 0
    for k in sizes:
        m = gates[..., start, :, :]
        for i in range(start + 1, start + k):
            g = gates[..., i, :, :]
            m = (m[..., :, None, :, None] * g[..., None, :, None, :]).flatten(-4, -3).flatten(-2)
        blocks.append(m)
        start += k
    return blocks


def apply_blocks(psi: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
    """Apply the Kronecker product of ``blocks`` (matrices over consecutive wire groups, wire 0
    first) to every column of ``psi`` (2^n, X): one matrix product per block. Real blocks act on
    complex states as real matrices on the real and imaginary parts (half the work)."""
    dim, cols = psi.shape
    split = psi.is_complex() and not blocks[0].is_complex()
    if split:
        psi = torch.view_as_real(psi)
    left = 1
    for m in blocks:
        d = m.shape[-1]
        psi = m @ psi.reshape(d, -1) if left == 1 else m @ psi.reshape(left, d, -1)
        left *= d
    if split:
        return torch.view_as_complex(psi.reshape(dim, cols, 2))
    return psi.reshape(dim, cols)


def apply_sample_blocks(psi: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
    """Apply one Kronecker product per row of ``psi`` (B, 2^n): ``blocks`` are (B, 2^k, 2^k),
    over consecutive wire groups, wire 0 first. Batched matrix products."""
    batch, dim = psi.shape
    left = 1
    for m in blocks:
        d = m.shape[-1]
        right = dim // (left * d)
        if right == 1:
            psi = psi.reshape(batch, left, d) @ m.transpose(1, 2)
        elif left == 1:
            psi = m @ psi.reshape(batch, d, right)
        else:
            psi = m[:, None] @ psi.reshape(batch, left, d, right)
        left *= d
    return psi.reshape(batch, dim)


@dataclass
class Plan:
    """What :class:`FastBackend` builds from the weights alone, once per generator step inside
    :meth:`QuantumGenerator.frozen`.

    ``signs`` (2^n, n): Z eigenvalues with the last layer's permutation folded in (its phases
    cannot change a Z measurement); ``perms[l]`` and ``factors[l]``: the permutation and the phase
    factors (2^n,) between layers l and l + 1 (None where absent): layer l's phase and, unless the
    circuit re-uploads, its last RZ rotations and layer l + 1's first ones, all diagonal;
    ``blocks[l]``: layer l's gates without their RZ rotations as Kronecker blocks (2^k, 2^k), real
    where those gates are real; ``lead`` (2^n,): the phase factors of layer 0's first RZ rotations;
    ``first`` (n, 2, 2): layer 0's gates with their first RZ rotations (``factors[0]`` carries the
    last ones); ``gates`` (L, n, 2, 2): re-uploading circuits' whole wire gates, RZ included (and
    ``blocks`` their Kronecker blocks);
    ``matrix``: U applied to the ansatz's state basis (unitary: (2^n, r)) or W_i = V^H diag(Z_i) V
    side by side (moments: (r, n * r)). Fields a method does not use stay None."""

    signs: torch.Tensor
    perms: list[torch.Tensor | None]
    factors: list[torch.Tensor | None]
    blocks: list[tuple[torch.Tensor, ...]] | None = None
    lead: torch.Tensor | None = None
    first: torch.Tensor | None = None
    gates: torch.Tensor | None = None
    matrix: torch.Tensor | None = None


class FastBackend:
    """Exact execution in torch (see the module docstring).

    Parameters
    ----------
    ansatz : Ansatz
    method : {"moments", "unitary", "states"}, optional
        Default: ``moments`` where it applies (the encoded states span a small basis and the noise
        is encoded once: gaussgan), else ``unitary`` up to ``UNITARY_MAX_QUBITS`` wires, else
        ``states``. Circuits that re-upload the noise take ``states`` only.
    dtype : torch.complex128 or torch.complex64, optional
        Amplitudes' precision. Default complex128 for ``moments`` and up to ``DOUBLE_MAX_QUBITS``
        wires, complex64 above (agreement with PennyLane: ``docs/quantum-step.md``).
    block_qubits : int
        Wires per Kronecker block (default ``BLOCK_QUBITS``).
    use_unitary : bool, optional
        Older spelling: True for ``unitary``, False for ``states``.
    """

    def __init__(self, ansatz: Ansatz, method: str | None = None,
                 dtype: torch.dtype | None = None, block_qubits: int = BLOCK_QUBITS,
                 use_unitary: bool | None = None):
        n = ansatz.n_qubits
        small_basis = ansatz.state_basis is not None and not ansatz.reupload
        if method is None and use_unitary is not None:
            method = "unitary" if use_unitary else "states"
        if method is None:
            method = ("moments" if small_basis else
                      "unitary" if not ansatz.reupload and n <= UNITARY_MAX_QUBITS else "states")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if ansatz.reupload and method != "states":
            raise ValueError(f"{ansatz.name} re-uploads its noise: only method 'states' applies")
        if method == "moments" and not small_basis:
            raise ValueError(f"{ansatz.name} has no small state basis: method 'moments' does not "
                             "apply")
        if dtype is None:
            dtype = (torch.complex128 if method == "moments" or n <= DOUBLE_MAX_QUBITS
                     else torch.complex64)
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        self.ansatz, self.method, self.dtype = ansatz, method, dtype
        self.real_dtype = torch.float64 if dtype == torch.complex128 else torch.float32
        self.sizes = block_sizes(n, block_qubits)
        self.signs = z_signs(n)

    @property
    def use_unitary(self) -> bool:
        return self.method == "unitary"

    def prepare(self, params: dict[str, torch.Tensor]) -> Plan:
        """The :class:`Plan` for weights ``params`` (differentiable unless under no_grad)."""
        layers = self.ansatz.layers(params)
        n_layers = layers.gates.shape[0]
        signs = self.signs
        perms: list[torch.Tensor | None] = [None] * (n_layers - 1)
        if layers.perm is not None:
            signs = signs[torch.argsort(layers.perm[-1])]
            perms = list(layers.perm[:-1].unbind(0))
        reupload = self.ansatz.reupload
        plan = Plan(signs=signs.to(self.real_dtype), perms=perms,
                    factors=self._factors(layers, with_rz=not reupload))
        if reupload:
            plan.gates = layers.wire_gates().to(self.dtype)
            plan.blocks = self._layer_blocks(plan.gates)
            return plan
        core = layers.gates.to(self.dtype if layers.gates.is_complex() else self.real_dtype)
        plan.blocks = self._layer_blocks(core)
        if layers.rz_before is not None:
            plan.lead = self._factor(-0.5 * (self.signs @ layers.rz_before[0]))
        if self.method == "states":
            first = layers.gates[0].to(self.dtype)
            if layers.rz_before is not None:
                first = first @ rz(layers.rz_before[0]).to(self.dtype)
            plan.first = first
            return plan
        basis = self.ansatz.state_basis
        columns = (torch.eye(2**self.ansatz.n_qubits, dtype=self.dtype) if basis is None
                   else basis.T.to(self.dtype))
        if plan.lead is not None:
            columns = plan.lead[:, None] * columns
        evolved = self._evolve(columns, plan, 0)  # (2^n, r): U applied to the basis states
        if self.method == "unitary":
            plan.matrix = evolved
        else:  # W_i = V^H diag(signs_i) V for every wire i, side by side: (r, n * r)
            weighted = plan.signs.T[:, :, None] * evolved  # (n, 2^n, r)
            plan.matrix = evolved.conj().T @ weighted.transpose(0, 1).flatten(1)
        return plan

    def _factors(self, layers: Layers, with_rz: bool) -> list[torch.Tensor | None]:
        """The phase factors (2^n,) applied after the permutation that follows each layer but the
        last: its phase, and ``with_rz`` its last RZ rotations (moved through the permutation)
        and the next layer's first ones."""
        n_layers = layers.gates.shape[0]
        terms = [] if layers.phase is None else [layers.phase[:-1]]
        if with_rz and layers.rz_after is not None:
            after = -0.5 * (layers.rz_after[:-1] @ self.signs.T)  # (L - 1, 2^n)
            terms.append(after if layers.perm is None else after.gather(1, layers.perm[:-1]))
        if with_rz and layers.rz_before is not None:
            terms.append(-0.5 * (layers.rz_before[1:] @ self.signs.T))
        if not terms or n_layers == 1:
            return [None] * (n_layers - 1)
        return list(self._factor(sum(terms[1:], terms[0])).unbind(0))

    def _layer_blocks(self, gates: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """(L, ..., n, 2, 2) gates -> for each layer its Kronecker blocks (..., 2^k, 2^k)."""
        return list(zip(*(m.unbind(0) for m in kron_blocks(gates, self.sizes)), strict=True))

    def _factor(self, angles: torch.Tensor) -> torch.Tensor:
        return torch.exp(1j * angles).to(self.dtype)

    def _evolve(self, psi: torch.Tensor, plan: Plan, start: int) -> torch.Tensor:
        """Apply layers ``start``, ``start + 1``, ... (their gates without RZ rotations, which
        ``plan.lead`` and ``plan.factors`` carry) to the columns of ``psi`` (2^n, X)."""
        n_layers = len(plan.blocks)
        for layer in range(start, n_layers):
            psi = apply_blocks(psi, plan.blocks[layer])
            if layer < n_layers - 1:
                psi = _between(psi, plan.perms[layer], plan.factors[layer], columns=True)
        return psi

    def expvals(self, prepared: Plan, z: torch.Tensor) -> torch.Tensor:
        """<Z_i> for every sample: (B, n_qubits) float64."""
        plan, z = prepared, z.to(DTYPE)
        if self.method == "moments":  # <Z_i> = c^H W_i c
            coeffs = self.ansatz.encoded_state(z).to(self.dtype)  # (B, r)
            quad = (coeffs.conj() @ plan.matrix).unflatten(1, (-1, coeffs.shape[1]))
            return (quad * coeffs[:, None, :]).sum(-1).real.to(DTYPE)
        if self.method == "unitary":  # psi = U psi_0, as columns
            coeffs = self.ansatz.encoded_state(z)
            probs = _abs2(_matmul(plan.matrix, coeffs.T.to(
                self.dtype if coeffs.is_complex() else self.real_dtype)))
            return (probs.T @ plan.signs).to(DTYPE)
        encoding = self.ansatz.encoding(z).to(self.dtype)  # (B, n, 2, 2)
        if self.ansatz.reupload:
            return self._reuploading(plan, encoding)
        # states: layer 0 acts on the encoded product state wire by wire, the rest as blocks
        psi = product_state(torch.einsum("nij,bnj->bni", plan.first, encoding[..., 0])).T
        if len(plan.blocks) > 1:
            psi = self._evolve(_between(psi, plan.perms[0], plan.factors[0], columns=True),
                               plan, 1)
        return (_abs2(psi).T @ plan.signs).to(DTYPE)

    def _reuploading(self, plan: Plan, encoding: torch.Tensor) -> torch.Tensor:
        """States one row per sample (B, 2^n): every layer's gates times the sample's encoding
        gates, as per-sample Kronecker blocks."""
        psi = product_state((plan.gates[0] @ encoding)[..., 0])
        if plan.gates.shape[0] == 1:
            return (_abs2(psi) @ plan.signs).to(DTYPE)
        # the Kronecker product of (gates times encoding) is the layer's blocks times the
        # encoding's blocks, built once per batch
        encoded = kron_blocks(encoding, self.sizes)  # (B, 2^k, 2^k) each
        for layer in range(1, len(plan.blocks)):
            psi = _between(psi, plan.perms[layer - 1], plan.factors[layer - 1], columns=False)
            psi = apply_sample_blocks(psi, [m @ e for m, e in zip(plan.blocks[layer], encoded,
                                                                 strict=True)])
        return (_abs2(psi) @ plan.signs).to(DTYPE)


def _between(psi: torch.Tensor, perm: torch.Tensor | None, factor: torch.Tensor | None,
             columns: bool) -> torch.Tensor:
    """Permute the basis states of ``psi`` and multiply them by ``factor``; states are columns
    (2^n, X) or rows (X, 2^n)."""
    if perm is not None:
        psi = psi[perm] if columns else psi[:, perm]
    if factor is not None:
        psi = psi * (factor[:, None] if columns else factor)
    return psi


def _abs2(psi: torch.Tensor) -> torch.Tensor:
    """|psi|^2 elementwise, real."""
    return psi.real.square() + psi.imag.square()


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for complex a, with half the work when b is real."""
    if b.is_complex():
        return a @ b
    return torch.complex(a.real @ b, a.imag @ b)


# --- PennyLane backend ----------------------------------------------------------------------------

class PennyLaneBackend:
    """Runs ``ansatz.qfunc`` as a QNode on ``device`` (``default.qubit``: backprop; other devices:
    PennyLane's best differentiation method). ``broadcast=True`` sends the whole batch in one call;
    ``broadcast=False`` makes one call per sample (the research code's way, for benchmarks)."""

    def __init__(self, ansatz: Ansatz, device: str = "default.qubit", broadcast: bool = True):
        self.ansatz, self.broadcast = ansatz, broadcast
        n = ansatz.n_qubits
        diff_method = "backprop" if device == "default.qubit" else "best"
        import pennylane as qml  # here only: the fast backend never needs it (models/circuits.py)

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
        self._prepared = None  # set inside frozen(): the backend's plan, built once per step

    def n_circuit_parameters(self) -> int:
        return sum(p.numel() for p in self.circuit.values() if p.requires_grad)

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

