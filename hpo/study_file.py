"""Study files (``studies/*.yaml``): the schema, and reading with one-line errors.

A study file says what to search (a branch per arm plus shared training parameters: an arm is a
named branch that trains one model kind, its ``generator:``, by default the kind its name says),
on which target, with which budget, sampler, pruner and metric settings. Every key is checked;
an unknown key, a wrong type or an impossible range raises :class:`StudyFileError`, whose message
names the file, the key and what is allowed. This module is the schema only; what the searched
names mean, and the check of every range against ``models`` itself, are in :mod:`hpo.space`.
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hpo.errors import StudyFileError
from hpo.names import STUDY_FILE_NAME_PATTERN
from hpo.yaml_input import read_yaml_mapping
from metrics.wasserstein import DEFAULT_MAX_POINTS as DEFAULT_W2_POINTS
from models import config as models_config

#: Model kinds an arm's ``generator:`` may name (``models/config.py``'s ``generator.kind``).
GENERATOR_KINDS = ("classical", "quantum", "control")
#: An arm's name is one part of a study name (``NAME.<arm>`` is its search study): no dots.
ARM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$")
#: Names an arm cannot take: ``NAME.validation`` is the group's validation study.
RESERVED_ARM_NAMES = ("validation",)

# Size bounds (docs/study-files.md says why): what one worker on a workstation can hold and finish.
MAX_TRIALS = 100_000          # a storage row and a training run each: 70 CPU-days at a minute each
MAX_STEPS = models_config.MAX_STEPS
#: The fewest evaluation points per kind of points (Metric.points).
MIN_N_TARGET = {"iid": 10_000, "rqmc": 2048}
#: W2's points at most: a 128 MB cost matrix and seconds of transport per trial. The default
#: (metrics' own cap) is what every study ran before the setting.
MAX_W2_POINTS = 4000
MIN_RQMC_REPLICATES = 4
MAX_N_TARGET = 1_000_000      # target points held and queried by every evaluation (16 MB)
MAX_EVAL_SAMPLES = models_config.MAX_EVAL_SAMPLES
MAX_SEED = 2**31 - 1          # seeds are offset per trial and per worker, and must stay < 2**32
MAX_CHOICES = 1_000
#: Independent searches per arm (``searches:``). Search ``r`` (1-based) offsets the file's trial
#: seeds and its sampler seed by ``(r - 1) * SEARCH_SEED_STRIDE``: with at most ``MAX_TRIALS``
#: trials a search, no two searches share a trial seed, and every search seed stays below the
#: validation's (``hpo.schedule.VALIDATION_SEED_BASE`` = 10 strides).
MAX_SEARCHES = 9
SEARCH_SEED_STRIDE = MAX_TRIALS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads `trials: true` as 1; a number is wanted wherever bool is not allowed.
        # (Full strict mode would also refuse `1e-4`, which YAML 1.1 reads as a string.)
        kinds = _leaf_types(cls.model_fields[info.field_name].annotation)
        if kinds & {int, float} and bool not in kinds and _holds_a_boolean(value):
            raise ValueError(f"expected a number, got {str(value).lower()}"
                             if isinstance(value, bool) else "expected numbers, got a boolean")
        return value


def _leaf_types(annotation: Any) -> set[Any]:
    """``list[list[float]] | None`` -> {float, NoneType}."""
    args = typing.get_args(annotation)
    return set().union(*map(_leaf_types, args)) if args else {annotation}


def _holds_a_boolean(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return any(map(_holds_a_boolean, value))
    return isinstance(value, bool)


class Param(_Strict):
    """One searched parameter: ``{low, high[, log][, step]}`` or ``{choices: [...]}``."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices is empty; give at least one value")
            if len(self.choices) > MAX_CHOICES:
                raise ValueError(f"at most {MAX_CHOICES} choices, got {len(self.choices)}")
            for value in self.choices:  # what Optuna can store as a categorical value
                if value is not None and not isinstance(value, bool | int | float | str):
                    raise ValueError("choices must be numbers, strings, booleans or null, "
                                     f"got a {type(value).__name__}")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"choices must be finite numbers, got {value}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices (a list)")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low and high must be finite numbers, got {self.low}, {self.high}")
        if self.low > self.high:
            raise ValueError(f"impossible range: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        return self

    @property
    def is_int(self) -> bool:
        values = [self.low, self.high] + ([self.step] if self.step is not None else [])
        return self.choices is None and all(isinstance(v, int) for v in values)

    def ends(self) -> list[Any]:
        """The extreme values a trial can take, to check them against the models' own rules."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


class Target(_Strict):
    """A preset name, or an explicit 2-D Gaussian mixture."""

    preset: str | None = None
    weights: list[float] | None = None
    means: list[list[float]] | None = None
    covariances: list[list[list[float]]] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Target:
        explicit = [self.weights, self.means, self.covariances]
        if self.preset is not None and any(v is not None for v in explicit):
            raise ValueError("give either preset or weights/means/covariances, not both")
        if self.preset is None and any(v is None for v in explicit):
            raise ValueError("give a preset name or all of weights, means, covariances")
        return self


class Budget(_Strict):
    """How much work the whole study does."""

    trials: int = Field(gt=0, le=MAX_TRIALS, description="finished trials across all workers")
    steps: int = Field(gt=0, le=MAX_STEPS, description="generator steps per trial")
    eval_every: int = Field(gt=0, description="generator steps between KL reports")

    @model_validator(mode="after")
    def _fits(self) -> Budget:
        if self.eval_every > self.steps:
            raise ValueError(f"eval_every ({self.eval_every}) is larger than steps ({self.steps})")
        return self


class Metric(_Strict):
    """How trials are scored; the same for every trial so that values compare."""

    sigma: float | None = Field(
        None, ge=1e-6, le=1e6, allow_inf_nan=False,
        description="resolution s of D_s = KL(Q_s||P_s), data units (1e-6 to 1e6: far outside, "
        "the kernels under- or overflow and every trial fails); "
        "None = metrics.default_sigma(target)")
    points: Literal["iid", "rqmc"] = Field(
        "iid", description="evaluation points of the final score: independent draws shared by "
        "the replicates, or a randomized quasi-Monte Carlo set per replicate (less noise for the "
        "same n: docs/kl-estimators.md); reports use set 0")
    n_target: int = Field(20_000, le=MAX_N_TARGET,
                          description="fixed target points scored against (at least 10000 "
                          "independent ones, or 2048 rqmc)")
    n_report: int = Field(2_000, ge=500, le=MAX_N_TARGET,
                          description="evaluation points of intermediate reports")
    eval_samples: int = Field(2_000, ge=100, le=MAX_EVAL_SAMPLES,
                              description="generator points per replicate (m)")
    replicates: int = Field(5, ge=2, le=50, description="independent generator draws at the end")
    w2_points: int = Field(
        DEFAULT_W2_POINTS, ge=100, le=MAX_W2_POINTS,
        description="generator and target points of the exact W2 (at most eval_samples): its "
        "transport problem's cost grows about as the cube (docs/trial-time.md)")
    knn: bool = Field(True, description="also record the k-NN estimate of KL(Q||P) (kl_knn)")
    k: int | None = Field(None, ge=1, le=50, description="k-NN neighbours; None = its default")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the target evaluation points")

    @field_validator("n_target")
    @classmethod
    def _enough_points(cls, value: int, info: ValidationInfo) -> int:
        # The floors leave about the same evaluation-point noise: 2048 scrambled points err
        # less than 10000 independent ones on bench/score_points.py's draws.
        points = info.data.get("points")
        if points is not None and value < MIN_N_TARGET[points]:  # None: points itself failed
            raise ValueError(f"Input should be greater than or equal to {MIN_N_TARGET[points]} "
                             f"with {points} points (got {value})")
        return value

    @model_validator(mode="after")
    def _replicates_for_an_interval(self) -> Metric:
        # With scrambled points the interval is the replicates' spread on R - 1 degrees of
        # freedom: at 2 or 3 the t quantile (12.7, 4.3) would swamp what the points saved.
        if self.points == "rqmc" and self.replicates < MIN_RQMC_REPLICATES:
            raise ValueError(f"points: rqmc needs replicates >= {MIN_RQMC_REPLICATES} (its "
                             f"interval is their spread), got {self.replicates}")
        return self


class Sampler(_Strict):
    """TPE; multivariate and grouped by default because the space is conditional. ``random``:
    Optuna's RandomSampler (same seed), the baseline that says whether the search helps."""

    kind: Literal["tpe", "random"] = "tpe"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    n_startup_trials: int = Field(10, ge=0)
    multivariate: bool = True
    group: bool = True
    constant_liar: bool = True


class Pruner(_Strict):
    """Which trials stop early on their intermediate KL. The defaults are the pruner that, with
    TPE, docs/search-efficiency.md measured to need the least CPU on gaussgan's curves:
    successive halving judged first a quarter of the way through training, then halfway."""

    kind: Literal["none", "median", "percentile", "hyperband",
                  "successive_halving"] = "successive_halving"
    n_startup_trials: int = Field(5, ge=0, description="median, percentile")
    n_warmup_steps: int = Field(0, ge=0, description="median, percentile")
    percentile: float = Field(25.0, gt=0, lt=100)
    reduction_factor: int = Field(2, ge=2, description="hyperband, successive_halving")
    min_early_stopping_rate: int = Field(0, ge=0, description="successive_halving: rungs "
                                         "skipped before the first promotion check")
    min_resource: int | None = Field(None, ge=1, description="hyperband, successive_halving: "
                                     "the first rung, in generator steps; None: successive "
                                     "halving a quarter of budget.steps, rounded up to a "
                                     "report, Hyperband budget.eval_every")
    patience: int | None = Field(None, ge=0, description="wrap in PatientPruner when set")


class Heartbeat(_Strict):
    """Dead-worker detection on Postgres (seconds)."""

    interval: int = Field(10, ge=1, le=3_600)
    grace_period: int = Field(30, ge=2, le=86_400)

    @model_validator(mode="after")
    def _grace_longer(self) -> Heartbeat:
        if self.grace_period <= self.interval:
            raise ValueError("grace_period must be longer than interval")
        return self


class Retry(_Strict):
    """Which ended trials run again (same parameters and seed), and at most how many times.

    ``stopped``: its worker was stopped; ``lost``: its worker died or its heartbeat went stale;
    ``diverged`` and ``failed`` repeat the same seed, so they help only where the outcome does
    not follow from it. The study file's retries are :class:`hpo.trials.RetryPolicy`.
    """

    outcomes: list[Literal["stopped", "lost", "diverged", "failed"]] = Field(
        default_factory=lambda: ["stopped", "lost"])
    max_retries: int = Field(3, ge=0, le=100)


class Validation(_Strict):
    """Seed validation after the search: the ``top_k`` best configurations of each kind trained
    again on ``seeds`` fresh seeds (docs/verdict.md says why 3 and 5). 0 turns it off."""

    top_k: int = Field(3, ge=0, le=20)
    seeds: int = Field(5, ge=0, le=50)

    @field_validator("seeds")
    @classmethod
    def _an_interval(cls, seeds: int) -> int:
        # One seed has no spread: the verdict could only end "not established" after the run.
        if seeds == 1:
            raise ValueError("1 seed gives no interval (Student's t needs at least 2); give 0 "
                             "(no validation) or at least 2")
        return seeds


class Branch(_Strict):
    """One arm: the model kind it trains (``generator``; ``None``: the arm's name), its searched
    and its fixed generator parameters."""

    generator: Literal["classical", "quantum", "control"] | None = None
    search: dict[str, Param] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)


def arm_kind(arm: str, branch: Branch) -> str:
    """The model kind (``generator.kind``) that arm ``arm`` trains: its ``generator:``, else its
    name (an arm named ``classical`` trains classical generators)."""
    return branch.generator if branch.generator is not None else arm


class Search(_Strict):
    shared: dict[str, Param] = Field(default_factory=dict)
    generators: dict[str, Branch]  # arm name -> its branch, in the file's order

    @model_validator(mode="after")
    def _not_empty(self) -> Search:
        if not self.generators:
            raise ValueError("no generator arms; give at least one (classical, quantum, or an "
                             "arm with generator: classical | quantum | control)")
        searched = len(self.shared) + sum(len(b.search) for b in self.generators.values())
        if searched == 0 and len(self.generators) == 1:
            raise ValueError("the search space is empty: nothing to search")
        return self


class StudySpec(_Strict):
    """A whole study file."""

    name: str = Field(min_length=1, max_length=64,
                      description="an identifier: letters, digits, _ and - (not a leading -), "
                                  "at most 64 characters, because it is a command-line "
                                  "argument and part of file names; no dots, which name the "
                                  "group's studies (NAME.<arm>)")

    @field_validator("name")
    @classmethod
    def _a_name(cls, name: str) -> str:
        if not re.fullmatch(STUDY_FILE_NAME_PATTERN, name):
            raise ValueError(f"{name[:70]!r}: letters, digits, _ and - (not a leading -), no dots "
                             "(they name a group's studies: NAME.<arm>); a study stored under a "
                             "dotted name stays readable by hpo status, report and export")
        return name
    description: str = Field("", max_length=10_000)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="base of every trial's training seed")
    target: Target
    budget: Budget
    metric: Metric = Metric()
    sampler: Sampler = Sampler()
    pruner: Pruner = Pruner()
    heartbeat: Heartbeat = Heartbeat()
    retry: Retry = Retry()
    layout: Literal["single", "per-kind"] = Field(
        "single", description="per-kind: one study per generator kind, equal budgets, then seed "
        "validation (docs/verdict.md); single: one study where the sampler picks the kind")
    searches: int = Field(1, ge=1, le=MAX_SEARCHES, description="independent searches per arm "
                          "(per-kind layout): each its own study, sampler seed and trial seeds, "
                          "an equal share of budget.trials; docs/verdict.md")
    random_searches: int = Field(0, ge=0, le=MAX_SEARCHES - 1, description="how many of each "
                                 "arm's searches (the last ones) sample at random: the baseline "
                                 "that says whether the search helps; docs/verdict.md")
    validation: Validation = Validation()
    fixed: dict[str, Any] = Field(default_factory=dict)
    search: Search


def read_study_file(path: str | Path) -> StudySpec:
    """Read a study file and validate its schema and target; raise :class:`StudyFileError`.

    The search space's check against ``models`` is :func:`hpo.space.load_spec`'s, which the
    commands use.
    """
    spec = _parse(path, StudySpec)
    _check_arms(path, spec)
    _check_searches(path, spec)
    _check_rungs(path, spec)
    _check_target(path, spec)
    return spec


def _parse(path: str | Path, model: type[BaseModel]) -> Any:
    data = read_yaml_mapping(path)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise one_line_error(path, model, err) from None


def one_line_error(
    path: str | Path, model: type[BaseModel], err: ValidationError
) -> StudyFileError:
    """The first of pydantic's errors as one line naming the file, the key and what is allowed."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"] if p != "[key]"]
    key = ".".join(loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return StudyFileError(str(path), key, f"unknown key; allowed: {', '.join(allowed)}")
    if first["type"] == "missing":
        return StudyFileError(str(path), key, "required key is missing")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("value_error", "assertion_error") and "input" in first:
        got = repr(first["input"])
        message += f" (got {got if len(got) <= 60 else got[:57] + '...'})"
    return StudyFileError(str(path), key, message)


def _fields_at(model: Any, loc: list[str]) -> list[str]:
    """Field names of the pydantic model found by walking ``loc`` from ``model``."""
    current = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = _unwrap(field.annotation)
        elif typing.get_origin(current) is dict:
            current = _unwrap(typing.get_args(current)[1])
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _check_arms(path: str | Path, spec: StudySpec) -> None:
    """Each arm's name is a study-name part and says, or is given, a model kind."""
    for arm, branch in spec.search.generators.items():
        key = f"search.generators.{arm}"
        if not ARM_NAME.match(arm):
            raise StudyFileError(str(path), key, "an arm name is letters, digits, _ and - (not "
                                 "a leading -), at most 32 characters: it is part of the study "
                                 "name NAME.<arm>")
        if arm in RESERVED_ARM_NAMES:
            raise StudyFileError(str(path), key, f"the arm name {arm!r} is reserved (NAME.{arm} "
                                 "is the group's validation study); choose another")
        if arm_kind(arm, branch) not in GENERATOR_KINDS:
            raise StudyFileError(str(path), key, f"unknown generator kind; give the arm "
                                 f"generator: {' | '.join(GENERATOR_KINDS)} (an arm without it "
                                 "trains the kind its name says)")


def _check_searches(path: str | Path, spec: StudySpec) -> None:
    """Several searches per arm need one study per arm (per-kind) and equal budgets; random
    searches leave at least one searched by the sampler; every per-kind study gets a trial."""
    if spec.random_searches >= spec.searches:
        raise StudyFileError(str(path), "random_searches", f"{spec.random_searches} random "
                             f"searches of {spec.searches} leave no search to compare them with; "
                             "give searches: at least random_searches + 1")
    arms = len(spec.search.generators)
    if spec.layout == "per-kind" and spec.budget.trials < arms * spec.searches:
        raise StudyFileError(str(path), "budget.trials", f"{spec.budget.trials} leaves a study "
                             f"without a trial ({arms} arm(s) x {spec.searches} search(es), one "
                             f"study each); give at least {arms * spec.searches}")
    if spec.searches == 1:
        return
    if spec.layout != "per-kind":
        raise StudyFileError(str(path), "searches", "repeated searches need layout: per-kind "
                             "(one study per arm and search)")
    studies = spec.searches * len(spec.search.generators)
    if spec.budget.trials % studies:
        raise StudyFileError(str(path), "budget.trials", f"{spec.budget.trials} search trials "
                             f"do not divide equally over {len(spec.search.generators)} arms x "
                             f"{spec.searches} searches; give a multiple of {studies}")


def _check_rungs(path: str | Path, spec: StudySpec) -> None:
    """A first rung at or past the last step would never prune (Hyperband: Optuna refuses it)."""
    first = spec.pruner.min_resource
    rungs = spec.pruner.kind in ("successive_halving", "hyperband")  # the others ignore it
    if rungs and first is not None and first >= spec.budget.steps:
        raise StudyFileError(str(path), "pruner.min_resource", f"{first} is not before the last "
                             f"step ({spec.budget.steps}): no trial would ever be judged; give "
                             "fewer steps than budget.steps")


def _check_target(path: str | Path, spec: StudySpec) -> None:
    from hpo.target import build_target

    try:
        target = build_target(spec.target)
    except ValueError as err:
        raise StudyFileError(str(path), _target_key(spec), str(err)) from None
    components = int((target.weights > 0).sum())
    if spec.metric.points == "rqmc" and spec.metric.n_report < components:
        # rqmc gives every component a point: every trial would fail at its first report
        raise StudyFileError(str(path), "metric.n_report", f"{spec.metric.n_report} is below "
                             f"the target's {components} components: points: rqmc needs a "
                             "point per component")


def _target_key(spec: StudySpec) -> str:
    return "target.preset" if spec.target.preset is not None else "target"
