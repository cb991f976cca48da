"""resolve_config / build_generator: defaults filled in, bad configs rejected clearly."""

from __future__ import annotations

import json

import pytest
import torch

from models import ClassicalGenerator, QuantumGenerator, build_generator, resolve_config

pytestmark = pytest.mark.unit


def test_defaults_are_complete_plain_data() -> None:
    cfg = resolve_config({})
    assert cfg["seed"] == 0 and cfg["steps"] == 2000 and cfg["n_critic"] == 5
    assert cfg["batch_size"] == 256 and cfg["gp_weight"] == 10.0 and cfg["betas"] == [0.5, 0.9]
    assert cfg["eval_every"] == 100 and cfg["eval_samples"] == 2000
    assert cfg["lr_generator"] == 3e-4 and cfg["lr_critic"] == 3e-3
    assert cfg["critic"] == {"hidden": [64, 64], "activation": "leaky_relu"}
    assert cfg["generator"] == {"kind": "classical", "latent": "normal", "latent_dim": 2,
                                "hidden": [64, 64], "activation": "relu"}
    assert json.loads(json.dumps(cfg)) == cfg  # plain types only
    assert resolve_config(cfg) == cfg  # idempotent


def test_quantum_defaults_and_partial_configs() -> None:
    cfg = resolve_config({"lr_generator": 1, "generator": {"kind": "quantum", "n_qubits": 4}})
    assert cfg["lr_generator"] == 1.0 and isinstance(cfg["lr_generator"], float)
    assert resolve_config({"generator": {"kind": "quantum"}})["lr_generator"] == 1e-2
    assert cfg["generator"] == {"kind": "quantum", "n_qubits": 4, "n_layers": 2,
                                "ansatz": "gaussgan", "head": "linear", "head_hidden": [32],
                                "head_activation": "relu", "backend": "fast"}


def test_input_is_not_modified() -> None:
    config = {"generator": {"kind": "quantum"}, "betas": (0.1, 0.2)}
    resolve_config(config)
    assert config == {"generator": {"kind": "quantum"}, "betas": (0.1, 0.2)}


@pytest.mark.parametrize(("config", "message"), [
    ({"stepz": 10}, "unknown key 'stepz'"),
    ({"steps": -1}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"batch_size": True}, "batch_size"),
    ({"lr_critic": 0}, "lr_critic"),
    ({"lr_generator": float("nan")}, "lr_generator"),
    ({"betas": [0.5]}, "betas"),
    ({"betas": [0.5, 1.0]}, "betas[1]"),
    ({"gp_weight": -1}, "gp_weight"),
    ({"critic": {"hidden": [64, 0]}}, "critic.hidden[1]"),
    ({"critic": {"activation": "swish"}}, "critic.activation"),
    ({"critic": {"width": 3}}, "unknown key 'width'"),
    ({"generator": {"kind": "diffusion"}}, "generator.kind"),
    ({"generator": {"latent": "cauchy"}}, "generator.latent"),
    ({"generator": {"n_qubits": 4}}, "unknown key 'n_qubits' for kind 'classical'"),
    ({"generator": {"kind": "quantum", "latent_dim": 3}}, "unknown key 'latent_dim'"),
    ({"generator": {"kind": "quantum", "n_qubits": 0}}, "generator.n_qubits"),
    ({"generator": {"kind": "quantum", "n_qubits": 13}}, "1..12"),
    ({"generator": {"kind": "quantum", "n_qubits": "6"}}, "generator.n_qubits"),
    ({"generator": {"kind": "quantum", "n_layers": 0}}, "generator.n_layers"),
    ({"generator": {"kind": "quantum", "ansatz": "qaoa"}}, "generator.ansatz"),
    ({"generator": {"kind": "quantum", "head": "conv"}}, "generator.head"),
    ({"generator": {"kind": "quantum", "backend": "qiskit.aer"}}, "generator.backend"),
])
def test_bad_configs_raise_value_error_naming_the_key(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match="allowed|expected") as info:
        resolve_config(config)
    assert message in str(info.value)


def test_allowed_values_are_listed() -> None:
    with pytest.raises(ValueError, match="gaussgan, strongly_entangling, reuploading"):
        build_generator({"kind": "quantum", "ansatz": "nope"})


def test_build_generator_accepts_sub_or_full_config() -> None:
    assert isinstance(build_generator({"kind": "quantum", "n_qubits": 2}), QuantumGenerator)
    full = resolve_config({"generator": {"kind": "classical", "latent": "uniform",
                                         "latent_dim": 3, "hidden": [4]}})
    generator = build_generator(full)
    assert isinstance(generator, ClassicalGenerator) and generator.latent_dim == 3
    z = generator.sample_latent(1000, torch.Generator().manual_seed(0))
    assert z.shape == (1000, 3) and z.min() >= -1 and z.max() <= 1
    assert generator.sample(7).shape == (7, 2)


def test_build_generator_seed_fixes_weights_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_generator({"kind": "quantum", "n_qubits": 2}, seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_generator({"kind": "quantum", "n_qubits": 2}, seed=5)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(("head", "classical"), [
    ("mlp", (5 * 32 + 32) + (32 * 2 + 2)),  # 5 -> 32 -> 2, weights and biases
    ("linear", 5 * 2 + 2),
])
def test_parameters_split_into_circuit_and_classical(head: str, classical: int) -> None:
    """The published quantum winner (5 qubits x 4 layers, strongly entangling, MLP head) had
    318 parameters of which 258 were its head: the split is counted, not guessed."""
    generator = build_generator({"kind": "quantum", "n_qubits": 5, "n_layers": 4,
                                 "ansatz": "strongly_entangling", "head": head}, seed=0)
    assert generator.n_parameters() - generator.n_circuit_parameters() == classical
    assert generator.n_circuit_parameters() == 60  # 3 rotations x 5 qubits x 4 layers
    assert build_generator({"kind": "classical"}, seed=0).n_circuit_parameters() == 0
