"""Training configuration: plain data with every default stated here, validated in one place.

A config is a plain dict (YAML-able). :func:`resolve_config` fills in every default and
checks every key, so a typo or an impossible value fails early with a ``ValueError`` that
names the key and what is allowed. The defaults::

    seed: 0                 # seeds weights, latent noise, real-data draws and GP interpolation
    steps: 2000             # generator steps
    n_critic: 5             # critic steps per generator step
    batch_size: 256
    gp_weight: 10.0         # WGAN-GP gradient penalty weight (lambda)
    lr_generator: 0.0003    # Adam learning rate; 0.01 when the generator is quantum (see below)
    lr_critic: 0.003
    betas: [0.5, 0.9]       # Adam betas, shared by both optimisers
    eval_every: 100         # on_eval cadence, in generator steps
    eval_samples: 2000      # generated points handed to on_eval
    critic: {hidden: [64, 64], activation: leaky_relu}
    generator:              # kind: classical
      {kind: classical, latent: normal, latent_dim: 2, hidden: [64, 64], activation: relu}
    generator:              # kind: quantum
      {kind: quantum, n_qubits: 6, n_layers: 2, ansatz: gaussgan, head: linear,
       head_hidden: [32], head_activation: relu, backend: fast}
    generator:              # kind: control (a hybrid's head fed by U(-1, 1)^n_qubits noise)
      {kind: control, n_qubits: 6, head_hidden: [32], head_activation: relu}

The generator's default learning rate depends on its kind. In a 2000-step sweep on the gaussgan
target (KL(Q||P) every 200-250 steps, critic lr 0.003, float64 critic at the time): the classical
MLP swung between KL 0.9 and 3.7 at lr 0.001 and between 0.8 and 1.5 at 0.0003; the quantum
circuit, whose weights are rotation angles, was still at KL 1.9 and falling after 2000 steps at
0.001 and settled near 0.6 by step 1000 at 0.01. Current curves: ``docs/convergence.md``.
A ``control`` generator is an MLP (no rotation angles), so it takes the classical default.
"""

from __future__ import annotations

import copy
import math
from typing import Any

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu", "gelu", "silu")
LATENTS = ("normal", "uniform")
ANSATZE = ("gaussgan", "strongly_entangling", "reuploading")
HEADS = ("linear", "mlp")
MAX_QUBITS = 12
MAX_LAYERS = 64
# Bounds on sizes, from what one worker on a workstation can hold and finish (a worker is one
# process among N on the machine; these keep one trial well under 2 GiB and under a day):
MAX_STEPS = 1_000_000         # generator steps: ~3 h classical at ~100 steps/s, days quantum
MAX_BATCH = 65_536            # points per critic/generator batch
MAX_EVAL_SAMPLES = 200_000    # generator points per evaluation (kNN query cost is linear in it)
MAX_N_CRITIC = 100
MAX_WIDTH = 4_096             # units per hidden layer: a 4096 x 4096 layer is 16.8 M weights
MAX_DEPTH = 32                # hidden layers
MAX_LATENT_DIM = 1_024
# A quantum generator holds one state of 2**n_qubits complex128 amplitudes (16 bytes) per point,
# for a batch in training and for eval_samples points when scored: 2**25 amplitudes is 512 MiB
# per copy, and autograd keeps a few copies.
MAX_STATE_AMPLITUDES = 2**25

TRAIN_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "steps": 2000,
    "n_critic": 5,
    "batch_size": 256,
    "gp_weight": 10.0,
    "lr_generator": 3e-4,
    "lr_critic": 3e-3,
    "betas": [0.5, 0.9],
    "eval_every": 100,
    "eval_samples": 2000,
}
QUANTUM_LR_GENERATOR = 1e-2  # the lr_generator default for quantum generators
CRITIC_DEFAULTS: dict[str, Any] = {"hidden": [64, 64], "activation": "leaky_relu"}
CLASSICAL_DEFAULTS: dict[str, Any] = {
    "kind": "classical",
    "latent": "normal",
    "latent_dim": 2,
    "hidden": [64, 64],
    "activation": "relu",
}
QUANTUM_DEFAULTS: dict[str, Any] = {
    "kind": "quantum",
    "n_qubits": 6,
    "n_layers": 2,
    "ansatz": "gaussgan",
    "head": "linear",
    "head_hidden": [32],
    "head_activation": "relu",
    "backend": "fast",
}
#: The hybrid's control (``models/control.py``): the quantum generator's MLP head, the same keys
#: and defaults, fed by noise of its circuit's output dimension ``n_qubits`` instead of a circuit.
CONTROL_DEFAULTS: dict[str, Any] = {
    "kind": "control",
    "n_qubits": QUANTUM_DEFAULTS["n_qubits"],
    "head_hidden": QUANTUM_DEFAULTS["head_hidden"],
    "head_activation": QUANTUM_DEFAULTS["head_activation"],
}
GENERATOR_DEFAULTS = {"classical": CLASSICAL_DEFAULTS, "quantum": QUANTUM_DEFAULTS,
                      "control": CONTROL_DEFAULTS}


def resolve_config(config: dict | None = None) -> dict:
    """Return the full training config: ``config`` with every default filled in, validated.

    Unknown keys and bad values raise ``ValueError`` naming the key and what is allowed. The result
    is a new dict of plain Python types (ints, floats, strings, lists); ``config`` is not modified.
    """
    config = {} if config is None else config
    _check_mapping("config", config, list(TRAIN_DEFAULTS) + ["critic", "generator"])
    out = copy.deepcopy(TRAIN_DEFAULTS)
    out.update(copy.deepcopy({k: v for k, v in config.items() if k in TRAIN_DEFAULTS}))

    out["seed"] = _int("seed", out["seed"], 0, 2**63 - 1)
    out["steps"] = _int("steps", out["steps"], 0, MAX_STEPS)
    out["n_critic"] = _int("n_critic", out["n_critic"], 1, MAX_N_CRITIC)
    out["batch_size"] = _int("batch_size", out["batch_size"], 1, MAX_BATCH)
    out["gp_weight"] = _float("gp_weight", out["gp_weight"], 0.0)
    out["lr_generator"] = _float("lr_generator", out["lr_generator"], 0.0, strict=True)
    out["lr_critic"] = _float("lr_critic", out["lr_critic"], 0.0, strict=True)
    betas = out["betas"]
    if not isinstance(betas, list | tuple) or len(betas) != 2:
        raise ValueError(f"betas: expected a list of two floats in [0, 1), got {betas!r}")
    out["betas"] = [_float(f"betas[{i}]", b, 0.0, 1.0, hi_open=True) for i, b in enumerate(betas)]
    out["eval_every"] = _int("eval_every", out["eval_every"], 1)
    out["eval_samples"] = _int("eval_samples", out["eval_samples"], 1, MAX_EVAL_SAMPLES)

    critic = config.get("critic", {})
    _check_mapping("critic", critic, list(CRITIC_DEFAULTS))
    out["critic"] = {**copy.deepcopy(CRITIC_DEFAULTS), **copy.deepcopy(critic)}
    out["critic"]["hidden"] = _sizes("critic.hidden", out["critic"]["hidden"])
    out["critic"]["activation"] = _choice("critic.activation", out["critic"]["activation"],
                                          ACTIVATIONS)

    out["generator"] = resolve_generator_config(config.get("generator", {}))
    if "lr_generator" not in config and out["generator"]["kind"] == "quantum":
        out["lr_generator"] = QUANTUM_LR_GENERATOR
    if out["generator"]["kind"] == "quantum":
        points = max(out["batch_size"], out["eval_samples"])
        if 2 ** out["generator"]["n_qubits"] * points > MAX_STATE_AMPLITUDES:
            raise ValueError(
                f"generator.n_qubits: 2**{out['generator']['n_qubits']} amplitudes x {points} "
                f"points (the larger of batch_size and eval_samples) exceeds "
                f"{MAX_STATE_AMPLITUDES} (2**25, 512 MiB of state); use fewer qubits or points")
    return out


def resolve_generator_config(generator: dict | None = None) -> dict:
    """Return the ``generator`` sub-config with the defaults of its ``kind`` filled in, validated.

    ``kind`` defaults to ``classical``; see the module docstring for each kind's defaults.
    """
    generator = {} if generator is None else generator
    if not isinstance(generator, dict):
        raise ValueError(f"generator: expected a mapping, got {type(generator).__name__}")
    kind = _choice("generator.kind", generator.get("kind", "classical"), tuple(GENERATOR_DEFAULTS))
    defaults = GENERATOR_DEFAULTS[kind]
    _check_mapping("generator", generator, list(defaults), f" for kind {kind!r}")
    out = {**copy.deepcopy(defaults), **copy.deepcopy(generator)}

    if kind == "classical":
        out["latent"] = _choice("generator.latent", out["latent"], LATENTS)
        out["latent_dim"] = _int("generator.latent_dim", out["latent_dim"], 1, MAX_LATENT_DIM)
        out["hidden"] = _sizes("generator.hidden", out["hidden"])
        out["activation"] = _choice("generator.activation", out["activation"], ACTIVATIONS)
    elif kind == "control":
        # The noise dimension keeps the circuit's bound, so a control searches what its hybrid
        # can; the head must have a hidden layer, or it is the linear head, not the hybrid's.
        out["n_qubits"] = _int("generator.n_qubits", out["n_qubits"], 1, MAX_QUBITS)
        out["head_hidden"] = _sizes("generator.head_hidden", out["head_hidden"])
        if not out["head_hidden"]:
            raise ValueError("generator.head_hidden: expected at least one hidden layer for kind "
                             "'control' (the hybrid's MLP head), got []")
        out["head_activation"] = _choice("generator.head_activation", out["head_activation"],
                                         ACTIVATIONS)
    else:
        out["n_qubits"] = _int("generator.n_qubits", out["n_qubits"], 1, MAX_QUBITS)
        out["n_layers"] = _int("generator.n_layers", out["n_layers"], 1, MAX_LAYERS)
        out["ansatz"] = _choice("generator.ansatz", out["ansatz"], ANSATZE)
        out["head"] = _choice("generator.head", out["head"], HEADS)
        out["head_hidden"] = _sizes("generator.head_hidden", out["head_hidden"])
        out["head_activation"] = _choice("generator.head_activation", out["head_activation"],
                                         ACTIVATIONS)
        out["backend"] = _backend("generator.backend", out["backend"])
    return out


# --- small validators: each returns the clean value or raises ValueError naming the key -----------

def _check_mapping(path: str, value: Any, allowed: list[str], why: str = "") -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise ValueError(f"{path}: unknown key {key!r}{why}; allowed: {', '.join(allowed)}")


def _int(path: str, value: Any, lo: int, hi: int | None = None) -> int:
    allowed = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected {allowed}, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{path}: expected {allowed}, got {value}")
    return int(value)


def _float(path: str, value: Any, lo: float, hi: float = math.inf, *, strict: bool = False,
           hi_open: bool = False) -> float:
    allowed = f"a number {'>' if strict else '>='} {lo}"
    if hi != math.inf:
        allowed += f" and {'<' if hi_open else '<='} {hi}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: expected {allowed}, got {value!r}")
    if value < lo or (strict and value == lo) or value > hi or (hi_open and value == hi):
        raise ValueError(f"{path}: expected {allowed}, got {value}")
    return float(value)


def _choice(path: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{path}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _sizes(path: str, value: Any) -> list[int]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{path}: expected a list of positive integers, got {value!r}")
    if len(value) > MAX_DEPTH:
        raise ValueError(f"{path}: expected at most {MAX_DEPTH} layers, got {len(value)}")
    return [_int(f"{path}[{i}]", v, 1, MAX_WIDTH) for i, v in enumerate(value)]


def _backend(path: str, value: Any) -> str:
    if value in ("fast", "pennylane"):
        return value
    import pennylane as qml  # only needed to list the installed devices

    devices = sorted(qml.plugin_devices)
    if not isinstance(value, str) or value not in devices:
        raise ValueError(f"{path}: expected fast, pennylane or an installed PennyLane device "
                         f"({', '.join(devices)}), got {value!r}")
    return value
