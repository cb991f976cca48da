"""Generators (classical, quantum, the hybrid's control), the WGAN-GP critic and training loop.

torch + PennyLane only.

    from models import build_generator, train, resolve_config
    result = train({"steps": 500, "generator": {"kind": "quantum"}}, target.sample, on_eval)

See ``models/config.py`` for every configuration key and its default.

Names are imported on first use (PEP 562), so validating a config (``resolve_config``) does not
pay for importing torch and PennyLane: the CLI answers a bad study file in about a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SOURCES = {
    "Generator": ".base",
    "ClassicalGenerator": ".classical",
    "ControlGenerator": ".control",
    "resolve_config": ".config",
    "resolve_generator_config": ".config",
    "Critic": ".critic",
    "build_generator": ".generator",
    "QuantumGenerator": ".quantum",
    "TrainingDiverged": ".training",
    "TrainingStopped": ".training",
    "TrainResult": ".training",
    "train": ".training",
}

__all__ = [
    "ClassicalGenerator",
    "ControlGenerator",
    "Critic",
    "Generator",
    "QuantumGenerator",
    "TrainResult",
    "TrainingDiverged",
    "TrainingStopped",
    "build_generator",
    "resolve_config",
    "resolve_generator_config",
    "train",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # for type checkers and editors; never executed
    from .base import Generator
    from .classical import ClassicalGenerator
    from .config import resolve_config, resolve_generator_config
    from .control import ControlGenerator
    from .critic import Critic
    from .generator import build_generator
    from .quantum import QuantumGenerator
    from .training import TrainingDiverged, TrainingStopped, TrainResult, train
