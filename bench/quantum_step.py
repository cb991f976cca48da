"""Seconds per WGAN-GP training step (n_critic = 5 critic steps + 1 generator step), batch 256.

Quantum generator: 6 qubits, 2 layers, gaussgan ansatz, linear head, run by
  fast              the torch unitary path (models/quantum.py FastBackend)
  pennylane         default.qubit, backprop, parameter broadcasting (one QNode call per batch)
  per-sample        one QNode call per sample (the research code's way; timed over one step)
against a classical MLP generator of similar parameter count (hidden [6]), and for reference the
default classical generator and the other ansatze on the fast path. One torch thread, as a worker
runs. Each figure is the best of several blocks of steps, the variants taking turns (the
machine is shared; the best block is the least disturbed one); the per-sample path is timed over
a single step.

    .venv/bin/python bench/quantum_step.py [--blocks 5] [--block-steps 5] [--skip-per-sample]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import Critic, build_generator, resolve_config  # noqa: E402
from models.quantum import PennyLaneBackend  # noqa: E402
from models.training import optimizers, training_step  # noqa: E402

QUANTUM = {"kind": "quantum", "n_qubits": 6, "n_layers": 2, "ansatz": "gaussgan",
           "head": "linear"}


def real_sampler(n: int, rng: np.random.Generator) -> np.ndarray:
    """A 4-component mixture; the target does not change the cost of a step."""
    centres = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    return centres[rng.integers(0, 4, n)] + 0.2 * rng.standard_normal((n, 2))


def step_runner(generator_config: dict, *, per_sample: bool = False):
    """A function run(k) doing k training steps of a fresh setup; returns seconds per step."""
    cfg = resolve_config({"generator": generator_config, "batch_size": 256, "n_critic": 5})
    generator = build_generator(cfg["generator"], seed=0)
    if per_sample:
        generator.backend = PennyLaneBackend(generator.ansatz, "default.qubit", broadcast=False)
    critic = Critic(**cfg["critic"])
    opt_g, opt_c = optimizers(generator, critic, cfg)
    noise, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)

    def real_batch() -> torch.Tensor:
        return torch.from_numpy(real_sampler(cfg["batch_size"], rng))

    def run(steps: int) -> float:
        start = time.perf_counter()
        for step in range(steps):
            training_step(generator, critic, opt_g, opt_c, real_batch, noise, cfg, step)
        return (time.perf_counter() - start) / steps

    run.n_parameters = generator.n_parameters()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--block-steps", type=int, default=5)
    parser.add_argument("--skip-per-sample", action="store_true",
                        help="leave out the slow one-QNode-call-per-sample timing")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = [
        ("quantum fast", {**QUANTUM, "backend": "fast"}),
        ("quantum pennylane (broadcast)", {**QUANTUM, "backend": "pennylane"}),
        ("classical hidden [6]", {"kind": "classical", "hidden": [6]}),
        ("classical default [64, 64]", {"kind": "classical"}),
        ("quantum fast, reuploading", {**QUANTUM, "ansatz": "reuploading"}),
        ("quantum fast, strongly_entangling", {**QUANTUM, "ansatz": "strongly_entangling"}),
        ("quantum fast, mlp head [32]", {**QUANTUM, "head": "mlp"}),
    ]
    print(f"seconds per training step (5 critic + 1 generator step, batch 256, 1 thread); "
          f"best of {args.blocks} blocks of {args.block_steps} steps, variants interleaved")
    runners = {name: step_runner(config) for name, config in rows}
    for run in runners.values():
        run(1)  # warm-up
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(args.blocks):  # round robin, so that a busy spell hits every variant alike
        for name, run in runners.items():
            best[name] = min(best[name], run(args.block_steps))
    results = dict(best)
    if not args.skip_per_sample:
        name = "quantum per-sample QNode (1 step)"
        runners[name] = step_runner(QUANTUM, per_sample=True)
        results[name] = runners[name](1)
    for name, seconds in results.items():
        print(f"  {name:36s} {seconds:9.4f} s   ({runners[name].n_parameters} parameters)")

    fast = results["quantum fast"]
    print("ratios (targets in parentheses)")
    if not args.skip_per_sample:
        per_sample = results["quantum per-sample QNode (1 step)"]
        print(f"  per-sample / fast          {per_sample / fast:8.1f}x  (>= 200x)")
    print(f"  pennylane / fast           "
          f"{results['quantum pennylane (broadcast)'] / fast:8.1f}x  (>= 5x)")
    print(f"  fast / classical [6]       {fast / results['classical hidden [6]']:8.2f}x  (<= 3x)")


if __name__ == "__main__":
    main()
