"""Generators (classical and quantum), the WGAN-GP critic and training loop. torch + PennyLane only.

    from models import build_generator, train, resolve_config
    result = train({"steps": 500, "generator": {"kind": "quantum"}}, target.sample, on_eval)

See ``models/config.py`` for every configuration key and its default.
"""

from .base import Generator
from .classical import ClassicalGenerator
from .config import resolve_config, resolve_generator_config
from .critic import Critic
from .generator import build_generator
from .quantum import QuantumGenerator
from .training import TrainingDiverged, TrainResult, train

__all__ = [
    "ClassicalGenerator",
    "Critic",
    "Generator",
    "QuantumGenerator",
    "TrainResult",
    "TrainingDiverged",
    "build_generator",
    "resolve_config",
    "resolve_generator_config",
    "train",
]
