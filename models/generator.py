"""build_generator: a generator from its config (plain data)."""

from __future__ import annotations

import importlib

import torch

from .base import Generator
from .config import resolve_generator_config

#: The module and class that build each ``generator.kind``, imported on first use: a worker that
#: trains only classical generators never imports PennyLane (about 2 CPU-s per process start).
GENERATOR_CLASSES: dict[str, tuple[str, str]] = {
    "classical": (".classical", "ClassicalGenerator"),
    "quantum": (".quantum", "QuantumGenerator"),
    "control": (".control", "ControlGenerator"),
}


def generator_class(kind: str) -> type[Generator]:
    """The class that builds generator ``kind`` (:data:`GENERATOR_CLASSES`)."""
    module, name = GENERATOR_CLASSES[kind]
    return getattr(importlib.import_module(module, __package__), name)


def build_generator(config: dict | None = None, *, seed: int | None = None) -> Generator:
    """Build the generator described by ``config``.

    ``config`` is the ``generator`` sub-dict of a training config (``{"kind": "quantum", ...}``;
    kinds ``classical``, ``quantum`` and ``control``, :data:`GENERATOR_CLASSES`); a
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
    cls = generator_class(config["kind"])
    if seed is None:
        return cls(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)
