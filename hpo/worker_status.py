"""Which workers a study has heard from, and when: is a remote worker contributing?

Each trial records the worker that ran it (user attribute ``worker``, ``--worker-id`` or
``host:pid:random``; ``worker_process`` is ``host:pid-namespace:pid``, ``host:pid`` in older
trials). On PostgreSQL, Optuna's heartbeat thread stamps every running trial every
``heartbeat.interval`` seconds. Optuna has no public reader of those stamps, so
:func:`heartbeat_ages` reads its ``trial_heartbeats`` table (read only); ages are computed by the
database's own clock, so the hosts' clocks never enter. :func:`worker_activity` returns the data;
:func:`format_workers` is the human table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
import sqlalchemy
from optuna.trial import TrialState

_HEARTBEAT_AGES = sqlalchemy.text("""
    SELECT s.study_name, t.number, EXTRACT(EPOCH FROM (LOCALTIMESTAMP - h.heartbeat))
    FROM trial_heartbeats h
    JOIN trials t ON t.trial_id = h.trial_id
    JOIN studies s ON s.study_id = t.study_id
    WHERE s.study_name IN :names
""").bindparams(sqlalchemy.bindparam("names", expanding=True))


@dataclass(frozen=True)
class WorkerActivity:
    """What one worker has done in a study.

    ``heartbeat_age_s`` is the age in seconds of the newest heartbeat of any of its trials (None:
    no heartbeat recorded, as with the embedded journal storage).
    """

    worker: str
    hosts: tuple[str, ...]
    finished: int
    running: tuple[str, ...]  # "NUMBER", or "STUDY#NUMBER" when there are several studies
    heartbeat_age_s: float | None


def heartbeat_ages(url: str, study_names: Sequence[str]) -> dict[tuple[str, int], float]:
    """(study name, trial number) -> seconds since that trial's last heartbeat; empty where the
    storage keeps no heartbeats."""
    if not url.startswith("postgresql"):
        return {}
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                      connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            if not sqlalchemy.inspect(conn).has_table("trial_heartbeats"):
                return {}
            rows = conn.execute(_HEARTBEAT_AGES, {"names": list(study_names)})
            return {(str(name), int(n)): float(age) for name, n, age in rows}
    finally:
        engine.dispose()


def worker_activity(trials_by_study: Mapping[str, Sequence[optuna.trial.FrozenTrial]],
                    ages: Mapping[tuple[str, int], float]) -> list[WorkerActivity]:
    """One row per worker named on the trials (study name -> its trials), most recently heard
    from first."""
    several = len(trials_by_study) > 1
    by_worker: dict[str, list[tuple[str, optuna.trial.FrozenTrial]]] = {}
    for study, trials in trials_by_study.items():
        for t in trials:
            if "worker" in t.user_attrs:
                by_worker.setdefault(str(t.user_attrs["worker"]), []).append((study, t))
    rows = []
    for worker, own in by_worker.items():
        beats = [ages[(study, t.number)] for study, t in own if (study, t.number) in ages]
        hosts = sorted({str(t.user_attrs.get("worker_process", "?")).split(":", 1)[0]
                        for _, t in own})
        rows.append(WorkerActivity(
            worker=worker, hosts=tuple(hosts),
            finished=sum(t.state.is_finished() for _, t in own),
            running=tuple(f"{study}#{t.number}" if several else str(t.number)
                          for study, t in own if t.state == TrialState.RUNNING),
            heartbeat_age_s=min(beats) if beats else None))
    never = float("inf")
    return sorted(rows, key=lambda r: (never if r.heartbeat_age_s is None else r.heartbeat_age_s,
                                       r.worker))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def format_workers(rows: Sequence[WorkerActivity]) -> str:
    """The workers as a plain-text table (or one line saying there are none yet)."""
    if not rows:
        return "workers: none has started a trial yet"
    header = f"{'worker':<28} {'host':<20} {'finished':>8} {'running':>8}  last heartbeat"
    lines = [f"workers: {len(rows)}", header, "-" * len(header)]
    for r in rows:
        running = ",".join(r.running) or "-"
        lines.append(f"{r.worker:<28} {','.join(r.hosts):<20} {r.finished:>8} {running:>8}  "
                     f"{_age(r.heartbeat_age_s)}")
    return "\n".join(lines)
