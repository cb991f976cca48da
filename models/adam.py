"""Adam with torch's fused kernel, without ``torch.optim.Optimizer`` around it.

Constructing or stepping a ``torch.optim`` optimizer imports ``torch._dynamo``, the compiler
(``add_param_group`` and ``step`` are wrapped to keep it out): about 1 CPU-second and 66 MB in
every worker process that trains, for nothing, since nothing here is compiled. This class keeps
the same state (a float32 step count, the two moment estimates per parameter) and calls torch's
own functional Adam, ``torch.optim.adam.adam``, with ``fused=True``: the same kernel with the
same arguments as ``torch.optim.Adam(..., fused=True).step()``, so the same weights to the bit
(tests/test_models_training.py holds it to ``torch.optim.Adam``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.adam import adam


class FusedAdam:
    """Adam (no weight decay, no AMSGrad) over ``params``: ``zero_grad()``, then ``step()``."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] | list[float], eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr, self.eps = float(lr), float(eps)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # fused Adam counts steps in a float32 tensor per parameter, as torch.optim.Adam does
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (the others keep their state)."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        adam([self.params[i] for i in live], [self.params[i].grad for i in live],
             [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [],
             [self.steps[i] for i in live], fused=True, amsgrad=False, beta1=self.beta1,
             beta2=self.beta2, lr=self.lr, weight_decay=0.0, eps=self.eps, maximize=False)
