"""The hybrid's control (kind ``control``): the quantum generator's MLP head, no circuit.

Ground truth: the hybrid's own head (a quantum generator with ``head: mlp``) is the reference for
the control's parameter count and architecture, and U(-1, 1) has mean 0, variance 1/3.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import ControlGenerator, build_generator, resolve_config, train

pytestmark = pytest.mark.unit


def _head_count(hybrid) -> int:
    return hybrid.n_parameters() - hybrid.n_circuit_parameters()


@pytest.mark.parametrize(("n_qubits", "head_hidden", "ansatz"), [
    (2, [8], "gaussgan"),
    (5, [32], "strongly_entangling"),
    (8, [16, 16], "reuploading"),
    (3, [4, 64, 8], "gaussgan"),
])
def test_parameter_count_is_the_hybrid_head_count(n_qubits, head_hidden, ansatz) -> None:
    hybrid = build_generator({"kind": "quantum", "n_qubits": n_qubits, "n_layers": 2,
                              "ansatz": ansatz, "head": "mlp", "head_hidden": head_hidden})
    control = build_generator({"kind": "control", "n_qubits": n_qubits,
                               "head_hidden": head_hidden})
    assert isinstance(control, ControlGenerator)
    assert hybrid.n_circuit_parameters() > 0
    assert control.n_parameters() == _head_count(hybrid)
    assert control.n_circuit_parameters() == 0
    # closed form: sum over layers of (fan_in + 1) * fan_out
    sizes = [n_qubits, *head_hidden, 2]
    layers = zip(sizes[:-1], sizes[1:], strict=True)
    assert control.n_parameters() == sum((a + 1) * b for a, b in layers)


def test_the_head_is_the_hybrids_head() -> None:
    """Same architecture, same parameter names: the hybrid's trained head loads into the
    control, which then maps a point of the cube exactly as the hybrid's head does."""
    config = {"n_qubits": 4, "head_hidden": [16, 8], "head_activation": "tanh"}
    hybrid = build_generator({"kind": "quantum", "head": "mlp", **config}, seed=1)
    control = build_generator({"kind": "control", **config}, seed=2)
    assert [n for n, _ in control.named_parameters()] == \
        [n for n, _ in hybrid.named_parameters() if n.startswith("head.")]
    control.head.load_state_dict(hybrid.head.state_dict())
    z = control.sample_latent(64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(control(z), hybrid.head(z))


def test_noise_is_uniform_on_the_cube_and_output_is_points() -> None:
    control = build_generator({"kind": "control", "n_qubits": 5}, seed=0)
    assert control.latent_dim == 5
    z = control.sample_latent(20_000, torch.Generator().manual_seed(3)).numpy()
    assert z.shape == (20_000, 5) and z.dtype == np.float64
    assert z.min() >= -1.0 and z.max() <= 1.0
    # mean 0 (sd 0.0041), variance 1/3 (sd of the estimate 0.0021): 5 sd margins
    assert np.all(np.abs(z.mean(axis=0)) < 0.021)
    assert np.all(np.abs(z.var(axis=0) - 1 / 3) < 0.011)
    with torch.no_grad():
        x = control.sample(37, torch.Generator().manual_seed(0))
    assert x.shape == (37, 2) and x.dtype == torch.float64 and torch.isfinite(x).all()


def test_defaults_follow_the_quantum_head() -> None:
    cfg = resolve_config({"generator": {"kind": "control"}})
    quantum = resolve_config({"generator": {"kind": "quantum"}})["generator"]
    assert cfg["generator"] == {"kind": "control", "n_qubits": quantum["n_qubits"],
                                "head_hidden": quantum["head_hidden"],
                                "head_activation": quantum["head_activation"]}
    assert cfg["lr_generator"] == 3e-4  # an MLP: the classical default, not the circuit's


@pytest.mark.parametrize(("generator", "words"), [
    ({"kind": "control", "n_layers": 2}, "unknown key 'n_layers'"),
    ({"kind": "control", "ansatz": "gaussgan"}, "unknown key 'ansatz'"),
    ({"kind": "control", "n_qubits": 0}, "generator.n_qubits"),
    ({"kind": "control", "n_qubits": 13}, "1..12"),
    ({"kind": "control", "head_hidden": []}, "at least one hidden layer"),
    ({"kind": "control", "head_hidden": [0]}, "generator.head_hidden[0]"),
    ({"kind": "control", "head_activation": "sigmoid"}, "generator.head_activation"),
    ({"kind": "controls"}, "classical, quantum, control"),
])
def test_bad_config_raises_value_error(generator: dict, words: str) -> None:
    with pytest.raises(ValueError) as err:
        resolve_config({"generator": generator})
    assert words in str(err.value)


def test_trains_a_few_steps() -> None:
    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        return np.array([2.0, -1.0]) + 0.5 * rng.standard_normal((n, 2))

    evals = []
    config = {"seed": 0, "steps": 6, "eval_every": 3, "eval_samples": 50, "batch_size": 32,
              "generator": {"kind": "control", "n_qubits": 3, "head_hidden": [8]}}
    before = build_generator(config, seed=0).state_dict()
    result = train(config, sample, lambda step, x: evals.append((step, x)))
    assert result.steps == 6 and [s for s, _ in evals] == [3, 6]
    assert all(x.shape == (50, 2) and np.isfinite(x).all() for _, x in evals)
    after = result.generator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight moved"
