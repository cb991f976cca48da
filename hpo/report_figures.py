"""The report's figures, as PNG bytes (matplotlib, no display).

Each function draws one figure from the report's content (:mod:`hpo.report_content`) or, for the
per-step curves and the sample images, from the stored trials. Colours are fixed per kind so
every figure reads the same way.
"""

from __future__ import annotations

import io
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # workers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from optuna.artifacts import download_artifact  # noqa: E402
from optuna.artifacts.exceptions import ArtifactNotFound  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from hpo.group import StudyGroup  # noqa: E402
from hpo.trials import SAMPLES_PNG, trial_seed  # noqa: E402

KIND_COLOURS = {"classical": "tab:blue", "quantum": "tab:orange", "hybrid": "tab:green",
                "control": "tab:red"}
#: Colours of other arms, chosen by a stable hash of the arm's name: the same arm has the same
#: colour in every figure and every report.
EXTRA_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
#: Intermediate D_s is drawn on a log axis; values at or below this (the estimate can dip under
#: zero near P = Q) are drawn here.
LOG_FLOOR = 1e-3


def _colour(kind: str) -> str:
    if kind in KIND_COLOURS:
        return KIND_COLOURS[kind]
    return EXTRA_COLOURS[zlib.crc32(kind.encode()) % len(EXTRA_COLOURS)]


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def anytime_png(report: dict[str, Any]) -> bytes:
    """Best D_s so far per kind, against finished trials and against cumulative seconds."""
    return _png(anytime_figure(report))


def anytime_figure(report: dict[str, Any]) -> Any:
    """:func:`anytime_png`'s figure. A log axis: one early trial of tens of nats would flatten
    every later improvement on a linear one (the published gaussgan page had a 33.7)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for kind, curve in report["anytime"].items():
        points = [(x, s, b) for x, s, b in zip(curve["trials"], curve["cumulative_seconds"],
                                               curve["best_so_far"], strict=True) if b is not None]
        if not points:
            continue
        xs, secs, best = zip(*points, strict=True)
        best = [max(b, LOG_FLOOR) for b in best]
        axes[0].step(xs, best, where="post", color=_colour(kind), label=kind)
        axes[1].step(secs, best, where="post", color=_colour(kind), label=kind)
    axes[0].set_xlabel("finished search trials of the kind")
    axes[1].set_xlabel("cumulative training seconds of the kind")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylabel(f"best {report['metric']['name']} (log scale)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:  # a study with no finished trial yet: say so, rather than warn of an empty legend
            ax.text(0.5, 0.5, "no finished search trial yet", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="0.4")
    fig.suptitle("Anytime performance of the search, per kind", fontsize=10)
    fig.tight_layout()
    return fig


def intermediate_png(group: StudyGroup, metric: str) -> bytes:
    """Each search trial's intermediate D_s against generator steps, one panel per kind;
    log scale, pruned trials faded."""
    kinds = group.kinds or ["?"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.8), squeeze=False,
                             sharey=True)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for t in group.search.get(kind, []):
            if not t.intermediate_values:
                continue
            steps = sorted(t.intermediate_values)
            values = [max(t.intermediate_values[s], LOG_FLOOR) for s in steps]
            pruned = t.state != TrialState.COMPLETE
            ax.plot(steps, values, color="gray" if pruned else _colour(kind),
                    alpha=0.2 if pruned else 0.8, linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(f"{kind}: complete (solid), pruned or failed (faded)", fontsize=9)
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(f"intermediate {metric}", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def expected_best_png(report: dict[str, Any]) -> bytes | None:
    """Each arm's expected best D_s after n search trials (Dodge et al. 2019) with its bootstrap
    band, on a log axis; None when no arm has a complete search trial."""
    curves = {kind: a["expected_best"] for kind, a in (report.get("arms") or {}).items()
              if a.get("expected_best")}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for kind, eb in curves.items():
        n = eb["n"]
        low, high = ([max(v, LOG_FLOOR) for v in band] for band in eb["band"])
        ax.fill_between(n, low, high, color=_colour(kind), alpha=0.2, linewidth=0)
        ax.plot(n, [max(v, LOG_FLOOR) for v in eb["expected"]], color=_colour(kind),
                label=f"{kind} ({eb['n_values']} trials)")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("n search trials")
    ax.set_ylabel(f"expected best {report['metric']['name']} (log scale)", fontsize=8)
    ax.set_title("Expected best after n trials per arm, 95% bootstrap band "
                 "(searches pooled)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def validation_png(report: dict[str, Any]) -> bytes:
    """Every validated configuration: its seed values (dots), seed mean and 95% interval."""
    rows = [(kind, c) for kind, k in report["kinds"].items() for c in k["validated"]]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows) + 2), 4))
    for i, (kind, c) in enumerate(rows):
        ax.scatter([i] * len(c["values"]), c["values"], s=14, color=_colour(kind), alpha=0.6)
        if c["mean"] is not None:
            low, high = c["ci"]
            if low is not None and high is not None:
                ax.errorbar([i + 0.2], [c["mean"]], yerr=[[c["mean"] - low], [high - c["mean"]]],
                            fmt="o", color="black", capsize=4)
            else:
                ax.plot([i + 0.2], [c["mean"]], "o", color="black")
        if c["search_value"] is not None:
            ax.plot([i - 0.2], [c["search_value"]], "x", color="red")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{k}\n#{c['source_trial']}" for k, c in rows], fontsize=8)
    ax.set_ylabel(report["metric"]["name"], fontsize=8)
    ax.set_title("Seed validation: seeds (dots), mean and 95% CI (black), search value (red x)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def profile_png(report: dict[str, Any]) -> bytes | None:
    """The primary comparison's difference and interval at each multiple of s."""
    pair = report["comparisons"][0] if report["comparisons"] else None
    if not pair or not pair["profile"]:
        return None
    a, b = pair["kinds"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for p in pair["profile"]:
        low, high = p["ci"]
        if low is None:
            continue
        ax.errorbar([p["factor"]], [p["difference"]],
                    yerr=[[p["difference"] - low], [high - p["difference"]]], fmt="o",
                    color="black", capsize=4)
    ax.axhline(0.0, color="gray", linewidth=0.8)
    ax.set_xscale("log", base=2)
    factors = [p["factor"] for p in pair["profile"]]
    ax.set_xlim(min(factors) / 1.5, max(factors) * 1.5)
    ax.set_xticks([p["factor"] for p in pair["profile"]])
    ax.set_xticklabels([f"{p['factor']:g} x s\n(s = {p['sigma']:g})" for p in pair["profile"]],
                       fontsize=8)
    ax.set_ylabel(f"D_s({a}) - D_s({b}) [nats]", fontsize=8)
    ax.set_title("Resolution profile of the difference (95% CI, Welch)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def sample_grid_png(group: StudyGroup, report: dict[str, Any], artifact_store: Any,
                    max_seeds: int = 5) -> bytes | None:
    """Each kind's validated best, one sample image per seed (the trials' own PNG artifacts,
    which draw the samples over the target's contours); ``None`` when no image can be read."""
    rows = sample_grid_rows(group, report, max_seeds)
    images = _download_images([t for _, ts in rows for t in ts], artifact_store)
    if not images:
        return None
    cols = max(len(ts) for _, ts in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.8 * len(rows)),
                             squeeze=False)
    for r, (kind, trials) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(trials):
                continue
            t = trials[c]
            if t.number in images:
                ax.imshow(images[t.number])
            value = f"{t.value:.3f}" if t.value is not None else "-"
            ax.set_title(f"{kind}, seed {trial_seed(t)}\nD_s {value}", fontsize=8)
    fig.suptitle("Final samples of each kind's validated best, one per seed", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def sample_grid_rows(group: StudyGroup, report: dict[str, Any], max_seeds: int = 5
                     ) -> list[tuple[str, list[FrozenTrial]]]:
    """The sample figure's rows: each kind with its validated best's seed trials, by seed."""
    rows: list[tuple[str, list[FrozenTrial]]] = []
    for kind, k in report["kinds"].items():
        if not k["validated"]:
            continue
        numbers = set(k["validated"][0]["validation_trials"][:max_seeds])
        rows.append((kind, sorted((t for t in group.validation if t.number in numbers),
                                  key=lambda t: trial_seed(t) or 0)))
    return rows


def _download_images(trials: Sequence[FrozenTrial], artifact_store: Any) -> dict[int, Any]:
    images = {}
    if artifact_store is None:
        return images
    with tempfile.TemporaryDirectory() as tmp:
        for t in trials:
            artifact_id = t.user_attrs.get(SAMPLES_PNG)
            if not artifact_id:
                continue
            path = Path(tmp) / f"{t.number}.png"
            try:
                download_artifact(artifact_store=artifact_store, file_path=str(path),
                                  artifact_id=artifact_id)
                images[t.number] = plt.imread(path)
            except (OSError, ValueError, ArtifactNotFound):  # a missing image: an empty cell
                continue
    return images
