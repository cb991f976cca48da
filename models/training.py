"""WGAN-GP training loop (Gulrajani et al. 2017), readable top to bottom.

Each generator step is preceded by ``n_critic`` critic steps. The critic minimises
    E[D(fake)] - E[D(real)] + gp_weight * E[(|grad_x D(x_hat)| - 1)^2]
with x_hat uniform on segments between real and fake points; the generator minimises -E[D(fake)].
Both use Adam. Every ``eval_every`` generator steps ``on_eval(step, samples)`` gets ``eval_samples``
fresh generated points and may stop training by returning True. ``should_stop()`` is polled before
every generator step; when it answers True training raises :class:`TrainingStopped` there, between
steps, so a worker that is asked to stop (SIGTERM) never has an exception thrown into its frames.

Determinism: initial weights come from ``torch.manual_seed(seed)`` (in a forked RNG state), latent
noise and interpolation weights from a private ``torch.Generator`` seeded with ``seed``, real
data from ``np.random.default_rng(seed)``, evaluation noise from a generator seeded with
(seed, step). The same config gives the same samples on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .adam import FusedAdam
from .base import Generator
from .config import resolve_config
from .critic import Critic
from .generator import build_generator

SampleReal = Callable[[int, np.random.Generator], np.ndarray]
OnEval = Callable[[int, np.ndarray], "bool | None"]
ShouldStop = Callable[[], bool]


class TrainingDiverged(RuntimeError):
    """A loss or the generator's output became NaN or infinite. ``step`` is the generator step
    (1-based) in progress, ``what`` names the quantity (``critic loss``, ``generator loss``,
    ``generator output``)."""

    def __init__(self, step: int, what: str):
        super().__init__(f"training diverged at generator step {step}: {what} is not finite")
        self.step, self.what = step, what


class TrainingStopped(Exception):
    """``should_stop()`` answered True before generator step ``step`` (1-based) began."""

    def __init__(self, step: int):
        super().__init__(f"training stopped on request before generator step {step}")
        self.step = step


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``seconds`` is training time, excluding the time spent inside ``on_eval``. ``history`` has one
    entry per evaluation: step, seconds (training time so far), critic_loss and generator_loss (of
    the last step before the evaluation).
    """

    generator: Generator  # trained, in eval mode
    critic: Critic
    steps: int  # generator steps completed
    stopped_early: bool  # on_eval asked to stop
    seconds: float
    config: dict  # the resolved config
    history: list[dict] = field(default_factory=list)


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gp_weight: float,
                generator: torch.Generator) -> torch.Tensor:
    """E[D(fake)] - E[D(real)] + gp_weight * E[(|grad D(x_hat)|_2 - 1)^2], where
    x_hat = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per sample (drawn from ``generator``).
    The critic treats samples independently, so the gradient of the summed x_hat scores is the
    per-sample gradient."""
    eps = torch.rand(real.shape[0], 1, generator=generator, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
    return critic(fake).mean() - critic(real).mean() + gp_weight * penalty


def eval_generator(seed: int, step: int) -> torch.Generator:
    """The torch generator for the evaluation samples at ``step``: seeded from (seed, step)."""
    state = np.random.SeedSequence([seed, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _check(value: torch.Tensor, step: int, what: str) -> None:
    if not torch.isfinite(value).all():
        raise TrainingDiverged(step, what)


def optimizers(generator: Generator, critic: Critic, cfg: dict) -> tuple[FusedAdam, FusedAdam]:
    """Adam for the generator and for the critic. Fused: for networks this small the unfused
    per-tensor update costs more than a critic forward pass (models/adam.py: why not torch.optim).
    """
    return (FusedAdam(generator.parameters(), cfg["lr_generator"], cfg["betas"]),
            FusedAdam(critic.parameters(), cfg["lr_critic"], cfg["betas"]))


def training_step(generator: Generator, critic: Critic, opt_g: FusedAdam,
                  opt_c: FusedAdam, real_batch: Callable[[], torch.Tensor],
                  noise: torch.Generator, cfg: dict, step: int) -> tuple[float, float]:
    """One WGAN-GP iteration: ``n_critic`` critic steps, then one generator step. Returns the last
    critic loss and the generator loss; raises :class:`TrainingDiverged` (at ``step``) on NaN/inf.
    """
    batch = cfg["batch_size"]
    # critic: n_critic steps with the generator's weights fixed (their fakes in one batch)
    with generator.frozen():
        fakes = generator.sample(cfg["n_critic"] * batch, noise).split(batch)
    for fake in fakes:
        _check(fake, step, "generator output")
        real = real_batch()
        loss_c = critic_loss(critic, real, fake, cfg["gp_weight"], noise)
        _check(loss_c, step, "critic loss")
        opt_c.zero_grad()
        loss_c.backward()
        opt_c.step()

    # generator: one step against the updated critic
    fake = generator.sample(batch, noise)
    _check(fake, step, "generator output")
    loss_g = -critic(fake).mean()
    _check(loss_g, step, "generator loss")
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_c.item(), loss_g.item()


def train(config: dict, sample_real: SampleReal, on_eval: OnEval | None = None,
          should_stop: ShouldStop | None = None) -> TrainResult:
    """Train a generator against ``sample_real`` with WGAN-GP.

    ``config`` is a (partial) training config, resolved by :func:`models.resolve_config`.
    ``sample_real(n, rng)`` returns n target points, a float (n, 2) array, drawing from the numpy
    generator ``rng`` that train owns. ``on_eval(step, samples)`` is called after generator steps
    eval_every, 2 * eval_every, ... (<= steps) with a float64 (eval_samples, 2) array; returning
    True stops training; its exceptions propagate unchanged. ``should_stop()`` (default: never)
    is polled before every generator step and raises :class:`TrainingStopped` when it is True.
    Raises :class:`TrainingDiverged` when a loss or a generated batch is not finite.
    """
    cfg = resolve_config(config)
    seed, batch = cfg["seed"], cfg["batch_size"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = build_generator(cfg["generator"])
        critic = Critic(**cfg["critic"])
    opt_g, opt_c = optimizers(generator, critic, cfg)
    noise = torch.Generator().manual_seed(seed)  # latent noise and GP interpolation
    rng = np.random.default_rng(seed)  # real data

    def real_batch() -> torch.Tensor:
        x = np.asarray(sample_real(batch, rng), dtype=np.float64)
        if x.shape != (batch, 2):
            raise ValueError(f"sample_real({batch}, rng) returned shape {x.shape}, "
                             f"expected ({batch}, 2)")
        return torch.from_numpy(x)

    history: list[dict] = []
    eval_seconds, stopped_early, step = 0.0, False, 0
    start = time.perf_counter()
    generator.train()
    for step in range(1, cfg["steps"] + 1):
        if should_stop is not None and should_stop():
            raise TrainingStopped(step)
        loss_c, loss_g = training_step(generator, critic, opt_g, opt_c, real_batch, noise, cfg,
                                       step)

        if step % cfg["eval_every"] == 0:
            with generator.frozen():
                samples = generator.sample(cfg["eval_samples"], eval_generator(seed, step))
            _check(samples, step, "generator output")
            tick = time.perf_counter()
            history.append({"step": step, "seconds": tick - start - eval_seconds,
                            "critic_loss": loss_c, "generator_loss": loss_g})
            stop = on_eval(step, samples.numpy()) if on_eval is not None else None
            eval_seconds += time.perf_counter() - tick
            if stop:
                stopped_early = True
                break

    seconds = time.perf_counter() - start - eval_seconds
    generator.eval()
    return TrainResult(generator=generator, critic=critic, steps=step, stopped_early=stopped_early,
                       seconds=seconds, config=cfg, history=history)
