"""build_generator: a generator from its config (plain data)."""

from __future__ import annotations

import torch

from .base import Generator
from .classical import ClassicalGenerator
from .config import resolve_generator_config
from .quantum import QuantumGenerator


def build_generator(config: dict | None = None, *, seed: int | None = None) -> Generator:
    """Build the generator described by ``config``.

    ``config`` is the ``generator`` sub-dict of a training config (``{"kind": "quantum", ...}``); a
    full training config (one with a ``generator`` key) is accepted too and its ``generator`` used.
    Missing keys take the defaults of ``models/config.py``; bad ones raise ``ValueError``. Initial
    weights come from torch's global generator, or, with ``seed``, from ``torch.manual_seed(seed)``
    inside a forked RNG state (the caller's global state is left as it was).
    """
    config = {} if config is None else config
    if isinstance(config, dict) and "generator" in config:
        config = config["generator"]
    config = resolve_generator_config(config)
    kwargs = {k: v for k, v in config.items() if k != "kind"}
    cls = ClassicalGenerator if config["kind"] == "classical" else QuantumGenerator
    if seed is None:
        return cls(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)
