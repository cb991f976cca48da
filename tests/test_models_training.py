"""train(): determinism, the evaluation callback, divergence, and that generators really learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import TrainingDiverged, TrainResult, build_generator, resolve_config, train

pytestmark = pytest.mark.unit

QUANTUM = {"kind": "quantum", "n_qubits": 3, "n_layers": 2}


def gaussian(mean=(2.0, -1.0), std=0.5):
    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(mean) + std * rng.standard_normal((n, 2))
    return sample


def final_samples(result: TrainResult) -> torch.Tensor:
    with torch.no_grad():
        return result.generator.sample(300, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("generator", [{"kind": "classical"}, QUANTUM])
def test_same_seed_same_samples_after_50_steps(generator: dict) -> None:
    config = {"seed": 3, "steps": 50, "batch_size": 64, "eval_every": 25, "eval_samples": 100,
              "generator": generator}
    evals: list[list[np.ndarray]] = [[], []]
    runs = [train(config, gaussian(), lambda s, x, i=i: evals[i].append(x)) for i in range(2)]
    assert torch.equal(final_samples(runs[0]), final_samples(runs[1]))
    assert len(evals[0]) == 2 and all(np.array_equal(a, b) for a, b in zip(*evals, strict=True))

    other = train({**config, "seed": 4}, gaussian())
    assert not torch.equal(final_samples(runs[0]), final_samples(other))


def test_on_eval_cadence_samples_and_result() -> None:
    calls = []

    def on_eval(step: int, samples: np.ndarray) -> None:
        calls.append((step, samples))

    config = {"steps": 7, "eval_every": 2, "eval_samples": 123, "batch_size": 32,
              "generator": QUANTUM}
    result = train(config, gaussian(), on_eval)
    assert [step for step, _ in calls] == [2, 4, 6]
    for _, samples in calls:
        assert isinstance(samples, np.ndarray) and samples.dtype == np.float64
        assert samples.shape == (123, 2) and np.isfinite(samples).all()
    assert result.steps == 7 and not result.stopped_early
    assert result.config == resolve_config(config)
    assert not result.generator.training
    assert result.seconds > 0
    assert [h["step"] for h in result.history] == [2, 4, 6]
    assert all(np.isfinite(h["critic_loss"]) for h in result.history)


def test_on_eval_true_stops_training() -> None:
    result = train({"steps": 20, "eval_every": 2, "batch_size": 16},
                   gaussian(), lambda step, samples: step >= 4)
    assert result.steps == 4 and result.stopped_early


def test_exceptions_from_on_eval_propagate_unchanged() -> None:
    class Pruned(Exception):
        pass

    error = Pruned("stop here")

    def on_eval(step: int, samples: np.ndarray) -> None:
        raise error

    with pytest.raises(Pruned) as info:
        train({"steps": 5, "eval_every": 1, "batch_size": 16}, gaussian(), on_eval)
    assert info.value is error


def test_diverging_configuration_raises_training_diverged() -> None:
    config = {"steps": 20, "batch_size": 32, "lr_critic": 1e100, "lr_generator": 1e100}
    with pytest.raises(TrainingDiverged) as info:
        train(config, gaussian())
    assert info.value.step == 1 and info.value.what == "critic loss"
    assert "step 1" in str(info.value) and "critic loss" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_non_finite_data_is_reported_as_divergence() -> None:
    def poisoned(n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal((n, 2))
        x[0, 0] = np.inf
        return x

    with pytest.raises(TrainingDiverged, match="critic loss"):
        train({"steps": 3, "batch_size": 8}, poisoned)


def test_sample_real_with_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"expected \(8, 2\)"):
        train({"steps": 1, "batch_size": 8}, lambda n, rng: np.zeros((n, 3)))


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
@pytest.mark.parametrize("generator", [{"kind": "classical", "hidden": [32, 32]},
                                       {**QUANTUM, "n_qubits": 4}])
def test_generators_learn_a_gaussian(generator: dict) -> None:
    """A few hundred steps move the samples from near the origin onto an offset Gaussian: the
    weights really train. (WGAN-GP still wanders around the target, hence the loose tolerance.)"""
    target = np.array([2.0, -1.0])
    config = {"steps": 300, "batch_size": 128, "lr_generator": 5e-3, "lr_critic": 5e-3,
              "generator": generator}
    untrained = build_generator(generator, seed=0)  # train() seeds the weights the same way
    with torch.no_grad():
        start = untrained.sample(300, torch.Generator().manual_seed(0)).numpy()
    samples = final_samples(train(config, gaussian(mean=target, std=0.5))).numpy()
    assert np.linalg.norm(start.mean(axis=0) - target) > 1.5
    assert np.linalg.norm(samples.mean(axis=0) - target) < 0.5, samples.mean(axis=0)
    assert np.all((samples.std(axis=0) > 0.2) & (samples.std(axis=0) < 1.0)), samples.std(axis=0)


def torch_adam(generator, critic, cfg):
    return (torch.optim.Adam(generator.parameters(), lr=cfg["lr_generator"], betas=cfg["betas"],
                             fused=True),
            torch.optim.Adam(critic.parameters(), lr=cfg["lr_critic"], betas=cfg["betas"],
                             fused=True))


@pytest.mark.parametrize("generator", [{"kind": "classical"}, QUANTUM])
def test_fused_adam_gives_torch_optim_adams_weights_to_the_bit(generator: dict,
                                                               monkeypatch) -> None:
    # ground truth: torch.optim.Adam(fused=True), which models/adam.py stands in for
    config = {"seed": 5, "steps": 30, "batch_size": 64, "eval_every": 30, "generator": generator}
    ours = train(config, gaussian())
    monkeypatch.setattr("models.training.optimizers", torch_adam)
    theirs = train(config, gaussian())
    for mine, truth in [(ours.generator, theirs.generator), (ours.critic, theirs.critic)]:
        weights = dict(truth.named_parameters())
        assert len(weights) > 0
        for name, p in mine.named_parameters():
            assert torch.equal(p, weights[name]), name
    assert not torch.equal(final_samples(ours), final_samples(train({**config, "steps": 29},
                                                                     gaussian())))
