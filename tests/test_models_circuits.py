"""Quantum generators: the fast torch path against real PennyLane, values and gradients.

PennyLane's ``default.qubit`` (backprop, broadcasting) runs each ansatz's qfunc; the ``fast``
backend runs the same circuit as torch matrix arithmetic. In complex128 they must agree to 1e-8 on
outputs and on the gradient of every parameter, for every ansatz, head and method; the default
backend (complex64 above DOUBLE_MAX_QUBITS wires) is held to PennyLane at 2 to 9 wires; gradients
must reach every circuit weight.
"""

from __future__ import annotations

import pytest
import torch

from models import QuantumGenerator, build_generator, resolve_config
from models.critic import Critic
from models.quantum import (
    DOUBLE_MAX_QUBITS,
    UNITARY_MAX_QUBITS,
    FastBackend,
    apply_blocks,
    apply_sample_blocks,
    block_sizes,
    kron_blocks,
)
from models.training import optimizers, training_step

pytestmark = pytest.mark.unit

ANSATZE = ["gaussgan", "strongly_entangling", "reuploading"]
HEADS = ["linear", "mlp"]
TOL = 1e-8


def quantum(backend: str, seed: int = 1, **overrides) -> QuantumGenerator:
    config = {"kind": "quantum", "n_qubits": 3, "n_layers": 3, "head_hidden": [5], **overrides,
              "backend": backend}
    return build_generator(config, seed=seed)


def outputs_and_grads(generator: QuantumGenerator, z: torch.Tensor, weights: torch.Tensor):
    """Generator output for ``z`` and the gradient of a fixed linear functional of it."""
    generator.zero_grad()
    out = generator(z)
    (out * weights).sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in generator.named_parameters()}


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err <= TOL, f"{what}: max abs difference {err:.3g} > {TOL}"


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("ansatz", ANSATZE)
def test_fast_matches_pennylane_values_and_gradients(ansatz: str, head: str) -> None:
    n_qubits = 4 if ansatz == "strongly_entangling" else 3  # 4 wires: CNOT ranges 1, 2, 3
    fast = quantum("fast", ansatz=ansatz, head=head, n_qubits=n_qubits)
    reference = quantum("pennylane", ansatz=ansatz, head=head, n_qubits=n_qubits)
    reference.load_state_dict(fast.state_dict())  # same names on both backends
    gen = torch.Generator().manual_seed(7)
    z = fast.sample_latent(6, gen)
    weights = torch.randn(6, 2, generator=gen, dtype=torch.float64)

    out_fast, grads_fast = outputs_and_grads(fast, z, weights)
    out_ref, grads_ref = outputs_and_grads(reference, z, weights)

    assert out_fast.shape == (6, 2) and out_fast.dtype == torch.float64
    assert_close(out_fast, out_ref, "outputs")
    assert set(grads_fast) == set(grads_ref)
    for name in grads_ref:
        assert_close(grads_fast[name], grads_ref[name], f"gradient of {name}")
    assert any(name.startswith("circuit.") for name in grads_ref)


METHODS = {"gaussgan": ["moments", "unitary", "states"],
           "strongly_entangling": ["unitary", "states"],
           "reuploading": ["states"]}


@pytest.mark.parametrize("ansatz,method", [(a, m) for a in ANSATZE for m in METHODS[a]])
def test_every_method_in_complex128_matches_pennylane(ansatz: str, method: str) -> None:
    """Each way the fast backend can run a circuit, in complex128, equals PennyLane to 1e-8."""
    fast = quantum("fast", ansatz=ansatz, n_qubits=4, head="mlp")
    fast.backend = FastBackend(fast.ansatz, method=method, dtype=torch.complex128)
    reference = quantum("pennylane", ansatz=ansatz, n_qubits=4, head="mlp")
    reference.load_state_dict(fast.state_dict())
    gen = torch.Generator().manual_seed(3)
    z = fast.sample_latent(5, gen)
    weights = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    out_fast, grads_fast = outputs_and_grads(fast, z, weights)
    out_ref, grads_ref = outputs_and_grads(reference, z, weights)
    assert_close(out_fast, out_ref, "outputs")
    for name in grads_ref:
        assert_close(grads_fast[name], grads_ref[name], f"gradient of {name}")


# complex64 (the default above DOUBLE_MAX_QUBITS wires): <Z> within 2e-5 of PennyLane, gradients of
# a fixed functional of them within 1e-4 (measured: below 3e-6 for both, up to 9 wires, 4 layers)
TOL64 = {"values": 2e-5, "gradients": 1e-4}


def expvals_and_grads(generator: QuantumGenerator, z: torch.Tensor, weights: torch.Tensor):
    """<Z_i> for ``z`` and the circuit weights' gradient of sum(weights * <Z>)."""
    generator.zero_grad()
    values = generator.expvals(z)
    (values * weights).sum().backward()
    return values.detach(), {name: p.grad.clone() for name, p in generator.circuit.items()}


@pytest.mark.parametrize("n_qubits", [2, 5, 7, 9])
@pytest.mark.parametrize("ansatz", ANSATZE)
def test_default_fast_backend_matches_pennylane_at_every_size(ansatz: str, n_qubits: int) -> None:
    """The default fast backend (method and precision chosen by size) against default.qubit:
    <Z> values and circuit-weight gradients, 1e-8 in complex128, TOL64 in complex64."""
    fast = quantum("fast", ansatz=ansatz, n_qubits=n_qubits, n_layers=4)
    reference = quantum("pennylane", ansatz=ansatz, n_qubits=n_qubits, n_layers=4)
    reference.load_state_dict(fast.state_dict())
    gen = torch.Generator().manual_seed(n_qubits)
    z = fast.sample_latent(4, gen)
    weights = torch.randn(4, n_qubits, generator=gen, dtype=torch.float64)
    values, grads = expvals_and_grads(fast, z, weights)
    values_ref, grads_ref = expvals_and_grads(reference, z, weights)
    double = fast.backend.dtype == torch.complex128
    assert double == (fast.backend.method == "moments" or n_qubits <= DOUBLE_MAX_QUBITS)
    tol = {"values": TOL, "gradients": TOL} if double else TOL64
    err = (values - values_ref).abs().max().item()
    assert err <= tol["values"], f"<Z>: max abs difference {err:.3g}"
    for name in grads_ref:
        err = (grads[name] - grads_ref[name]).abs().max().item() if grads[name].numel() else 0
        assert err <= tol["gradients"], f"gradient of {name}: max abs difference {err:.3g}"


@pytest.mark.parametrize("ansatz", ANSATZE)
def test_gradients_reach_every_circuit_weight_at_9_wires(ansatz: str) -> None:
    """At 9 wires (moments in complex128 for gaussgan, Kronecker blocks in complex64 for the
    others) every live circuit weight gets a gradient."""
    generator = quantum("fast", ansatz=ansatz, n_qubits=9, n_layers=3)
    moments = generator.backend.method == "moments"
    assert generator.backend.dtype == (torch.complex128 if moments else torch.complex64)
    generator.sample(16, torch.Generator().manual_seed(0)).sum().backward()
    for name, p in generator.circuit.items():
        live = ~dead_weights(generator)[name]
        assert p.grad is not None and torch.all(p.grad[live] != 0), f"circuit.{name}"


def test_default_methods() -> None:
    def method(ansatz: str, n_qubits: int) -> str:
        return quantum("fast", ansatz=ansatz, n_qubits=n_qubits).backend.method

    assert method("gaussgan", 3) == method("gaussgan", 12) == "moments"
    assert method("strongly_entangling", UNITARY_MAX_QUBITS) == "unitary"
    assert method("strongly_entangling", UNITARY_MAX_QUBITS + 1) == "states"
    assert method("reuploading", 3) == "states"
    generator = quantum("fast")
    assert FastBackend(generator.ansatz, use_unitary=False).method == "states"  # older spelling
    assert FastBackend(generator.ansatz, use_unitary=True).use_unitary


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "gate_by_gate"}, "method must be one of"),
    ({"method": "moments", "ansatz": "strongly_entangling"}, "no small state basis"),
    ({"method": "unitary", "ansatz": "reuploading"}, "only method 'states'"),
    ({"dtype": torch.float32}, "dtype must be"),
])
def test_fast_backend_rejects_what_does_not_apply(kwargs: dict, match: str) -> None:
    ansatz = kwargs.pop("ansatz", "gaussgan")
    generator = quantum("fast", ansatz=ansatz)
    with pytest.raises(ValueError, match=match):
        FastBackend(generator.ansatz, **kwargs)


def test_block_sizes_and_kronecker_blocks() -> None:
    assert block_sizes(10, 4) == [4, 3, 3]
    assert block_sizes(8, 4) == [4, 4]
    assert block_sizes(3, 4) == [3]
    assert block_sizes(12, 5) == [4, 4, 4]
    gen = torch.Generator().manual_seed(0)
    gates = torch.randn(7, 2, 2, generator=gen, dtype=torch.complex128)
    full = gates[0]
    for g in gates[1:]:
        full = torch.kron(full, g)
    psi = torch.randn(2**7, 5, generator=gen, dtype=torch.complex128)
    sizes = block_sizes(7, 3)
    torch.testing.assert_close(apply_blocks(psi, kron_blocks(gates, sizes)), full @ psi)
    real = gates.real.contiguous()  # real blocks on complex states: real and imaginary parts
    full_real = real[0]
    for g in real[1:]:
        full_real = torch.kron(full_real, g)
    torch.testing.assert_close(apply_blocks(psi, kron_blocks(real, sizes)),
                               full_real.to(torch.complex128) @ psi)
    per_sample = torch.randn(5, 7, 2, 2, generator=gen, dtype=torch.complex128)
    rows = apply_sample_blocks(psi.T.contiguous(), kron_blocks(per_sample, sizes))
    for b in range(5):
        expected = apply_blocks(psi[:, b:b + 1], kron_blocks(per_sample[b], sizes))[:, 0]
        torch.testing.assert_close(rows[b], expected)


@pytest.mark.parametrize("n_qubits", [1, 2])
@pytest.mark.parametrize("ansatz", ANSATZE)
def test_small_circuits_match_pennylane(ansatz: str, n_qubits: int) -> None:
    """Edge cases: one wire (no entanglers), two wires, one layer."""
    for n_layers in (1, 2):
        fast = quantum("fast", ansatz=ansatz, n_qubits=n_qubits, n_layers=n_layers)
        reference = quantum("pennylane", ansatz=ansatz, n_qubits=n_qubits, n_layers=n_layers)
        reference.load_state_dict(fast.state_dict())
        z = fast.sample_latent(4, torch.Generator().manual_seed(0))
        assert_close(fast.expvals(z).detach(), reference.expvals(z).detach(), "expvals")


def test_frozen_reuses_the_unitary_and_gives_the_same_samples() -> None:
    generator = quantum("fast")
    z = generator.sample_latent(8, torch.Generator().manual_seed(0))
    expected = generator(z).detach()
    with generator.frozen():
        assert generator._prepared is not None
        inside = generator(z)
    assert generator._prepared is None
    assert not inside.requires_grad
    assert torch.equal(inside, expected)


def test_other_pennylane_device_by_name() -> None:
    """Any installed PennyLane device runs the same circuit (its own differentiation method)."""
    fast = quantum("fast")
    other = quantum("default.mixed")
    other.load_state_dict(fast.state_dict())
    z = fast.sample_latent(3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(other(z), fast(z), atol=1e-6, rtol=0)


# --- gradients reach the circuit: the research code's last version trained nothing ----------------

def dead_weights(generator: QuantumGenerator) -> dict[str, torch.Tensor]:
    """Masks of circuit weights that provably cannot change the output: strongly_entangling's last
    RZ angles (an RZ just before the final CNOTs and the Z measurement). gaussgan and reuploading
    have none (their final ZZ chain, diagonal too, is left out of the circuit)."""
    masks = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in generator.circuit.items()}
    if generator.ansatz.name == "strongly_entangling":
        masks["weights"][-1, :, 2] = True
    return masks


@pytest.mark.parametrize("backend", ["fast", "pennylane"])
@pytest.mark.parametrize("ansatz", ANSATZE)
def test_one_training_step_changes_every_circuit_weight(ansatz: str, backend: str) -> None:
    cfg = resolve_config({"batch_size": 32, "n_critic": 1, "generator": {
        "kind": "quantum", "n_qubits": 3, "n_layers": 2, "ansatz": ansatz, "backend": backend}})
    generator = build_generator(cfg["generator"], seed=0)
    critic = Critic(**cfg["critic"])
    opt_g, opt_c = optimizers(generator, critic, cfg)
    before = {name: p.detach().clone() for name, p in generator.circuit.items()}
    rng = torch.Generator().manual_seed(0)

    def real_batch() -> torch.Tensor:
        return torch.randn(32, 2, generator=rng, dtype=torch.float64) + 3.0

    training_step(generator, critic, opt_g, opt_c, real_batch, torch.Generator().manual_seed(1),
                  cfg, step=1)

    for name, p in generator.circuit.items():
        live = ~dead_weights(generator)[name]
        assert p.numel() > 0
        changed = p.detach() != before[name]
        assert changed[live].all(), f"circuit.{name}: {int((~changed[live]).sum())} unchanged"


@pytest.mark.parametrize("backend", ["fast", "pennylane"])
def test_strongly_entangling_dead_weights_have_zero_gradient(backend: str) -> None:
    generator = quantum(backend, ansatz="strongly_entangling")
    z = generator.sample_latent(5, torch.Generator().manual_seed(0))
    generator(z).sum().backward()
    grad = generator.circuit["weights"].grad
    assert torch.all(grad[-1, :, 2].abs() < 1e-12)
    assert torch.all(grad[:-1].abs() > 0)


def test_gaussgan_weight_shapes_leave_out_the_last_zz_chain() -> None:
    generator = build_generator({"kind": "quantum", "n_qubits": 6, "n_layers": 2}, seed=0)
    assert generator.circuit["ry"].shape == (2, 6)
    assert generator.circuit["zz"].shape == (1, 5)
    assert generator.latent_dim == 2
    assert generator.n_parameters() == 12 + 5 + 6 * 2 + 2


def test_state_dict_moves_between_backends_and_sample_shapes() -> None:
    fast = quantum("fast", ansatz="reuploading", head="mlp")
    reference = quantum("pennylane", seed=99, ansatz="reuploading", head="mlp")
    assert list(fast.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(fast.state_dict())
    a = fast.sample(10, torch.Generator().manual_seed(5))
    b = reference.sample(10, torch.Generator().manual_seed(5))
    assert a.shape == (10, 2)
    assert_close(a.detach(), b.detach(), "samples")
