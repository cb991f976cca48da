"""`hpo run`: the one-machine main job. Init, N local worker processes, a progress bar, a summary.

Workers are separate processes (one torch thread each), logging to ``runs/logs/``. The launcher
gives the embedded journal file the guarantee Postgres gets from heartbeats: when a worker dies,
its RUNNING trials are failed and re-queued (``hpo.requeue.requeue``, the one re-queue path), and
a replacement worker is started. Worker ids and log files carry the launcher's run id (time and
pid), so two launchers on one study never share them; each worker start claims its own sampler
seed from the study (:mod:`hpo.worker_identity`). Workers get the storage URL
through the environment (``HPO_STORAGE``, never argv) and stop by themselves when their launcher
is gone (``HPO_LAUNCHER_PID``).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from hpo.group import load_group
from hpo.init_lock import ensure_group_studies
from hpo.metric import objective_name
from hpo.report import group_summary, summary
from hpo.requeue import requeue
from hpo.schedule import group_work, planned_trials
from hpo.storage import (
    DEFAULT_ARTIFACTS,
    DEFAULT_STORAGE,
    display_url,
    is_database_url,
    open_storage,
)
from hpo.study_file import StudySpec
from hpo.systematic import systematic_failure
from hpo.trials import (
    WORKER,
    WORKER_PROCESS,
    BudgetCounts,
    RetryPolicy,
    budget_counts,
    local_pid,
)

MAX_RESTARTS_PER_SLOT = 3


@dataclass
class _Slot:
    index: int
    worker_id: str
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    log: IO | None = field(default=None, repr=False)


def run_study(spec: StudySpec, study_path: str, url: str, *, workers: int, artifacts: str,
              threads: int = 1, run_id: str | None = None, out: IO = sys.stdout) -> int:
    """Run ``spec`` to its budget with ``workers`` local processes; return an exit status.

    A per-kind study file runs its search and then its seed validation (docs/verdict.md)."""
    group = _studies(url, spec)
    studies = list(group.values())
    run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log_dir = Path("runs/logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    ids = [f"{spec.name}-{run_id}-w{i}" for i in range(workers)]
    slots = [_Slot(i, worker_id, log_dir / f"{worker_id}.log") for i, worker_id in enumerate(ids)]

    def start(slot: _Slot) -> None:
        slot.log = open(slot.log_path, "a")  # noqa: SIM115 - lives as long as the worker
        cmd = [sys.executable, "-m", "hpo", "worker", study_path,
               "--artifacts", artifacts, "--threads", str(threads),
               "--worker-id", slot.worker_id]
        # The URL goes in the environment, never in the arguments: any local user can read a
        # process's arguments (ps), and the URL may hold the database password.
        env = {**os.environ, "HPO_STORAGE": url, "HPO_LAUNCHER_PID": str(os.getpid())}
        # A session of its own: Ctrl-C reaches only the launcher, which stops workers in order.
        slot.process = subprocess.Popen(cmd, stdout=slot.log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)

    def finish(slot: _Slot) -> None:
        slot.process = None
        if slot.log is not None:
            slot.log.close()
            slot.log = None

    print(f"study {spec.name} on {display_url(url)}: {spec.budget.trials} trials, "
          f"{workers} workers; logs in {log_dir}/{spec.name}-{run_id}-w*.log", file=out)
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, frame: object) -> None:
        stop["signal"] = signum  # acted on in the loop, never in the middle of a storage write

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    _recover_orphans(studies, spec, out)
    for slot in slots:
        start(slot)
    bar = tqdm(total=planned_trials(spec, group), unit="trial", file=out, dynamic_ncols=True)
    try:
        while stop["signal"] is None:
            for slot in slots:
                code = slot.process.poll() if slot.process is not None else None
                if code is None:
                    continue
                if code != 0:
                    _recover(studies, spec, slot, code, out)
                    if (slot.restarts < MAX_RESTARTS_PER_SLOT and not _done(group, spec)
                            and _systematic(studies) is None):
                        slot.restarts += 1
                        finish(slot)
                        start(slot)
                        continue
                finish(slot)
            _update(bar, studies, planned_trials(spec, group))
            if all(slot.process is None for slot in slots):
                break
            time.sleep(0.5)
        if stop["signal"] is not None:
            _stop_workers(studies, spec, slots, out)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _update(bar, studies, planned_trials(spec, group))
        bar.close()
        for slot in slots:
            finish(slot)

    done = _done(group, spec)
    if spec.layout == "per-kind":
        print("\n" + group_summary(load_group(open_storage(url), spec.name)), file=out)
        print(f"\nthe verdict: hpo report {spec.name}{_storage_flag(url)}", file=out)
    else:
        print("\n" + summary(group[spec.name], spec.budget.trials), file=out)
    stopped = _systematic(studies)
    if stopped is not None:
        print(f"\n{stopped}", file=out)
    print(f"\nbrowse it:  {_dashboard_command(url, artifacts)}", file=out)
    print(f"export it:  hpo export {spec.name} --top 3 --out runs/{spec.name}-best.yaml"
          f"{_storage_flag(url)}", file=out)
    if display_url(url) != url and is_database_url(url):  # a password was hidden
        print("            (*** is the database password, never printed: set HPO_STORAGE to the "
              "full URL and drop --storage)", file=out)
    if stop["signal"] is not None:
        requeued = "stopped" in spec.retry.outcomes  # a stop spends none of a trial's retries
        print("interrupted: workers stopped; their trials were "
              + ("re-queued" if requeued else "failed (retry.outcomes leaves out stopped)"),
              file=out)
        return 130
    return 0 if done else 1


def _studies(url: str, spec: StudySpec) -> dict[str, optuna.Study]:
    """The study file's group: its search studies, then (per-kind) the validation study."""
    return ensure_group_studies(url, spec, metric=objective_name(spec))


def _done(studies: dict[str, optuna.Study], spec: StudySpec) -> bool:
    return group_work(spec, studies).action == "done"


def _update(bar: tqdm, studies: list[optuna.Study], total: int) -> None:
    """Redraw the bar when something changed (elapsed time alone is not news in a log file)."""
    per_study = [study.get_trials(deepcopy=False) for study in studies]  # one read each
    trials = [t for ts in per_study for t in ts]
    c = sum((budget_counts(ts) for ts in per_study), BudgetCounts())
    bar.total = total
    best = [t.value for t in trials if t.state == TrialState.COMPLETE]
    postfix = dict(running=c.running, pruned=c.pruned, failed=c.failed,
                   best_kl=f"{min(best):.4f}" if best else "-")
    if getattr(bar, "_last_postfix", None) == (c.finished, postfix):
        return
    bar._last_postfix = (c.finished, postfix)
    bar.n = min(c.finished, bar.total)
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def _stop_workers(studies: list[optuna.Study], spec: StudySpec, slots: list[_Slot],
                  out: IO) -> None:
    """SIGTERM every worker (each re-queues its own trial); kill and recover the stubborn."""
    live = [s for s in slots if s.process is not None and s.process.poll() is None]
    for slot in live:
        slot.process.send_signal(signal.SIGTERM)
    for slot in live:
        try:
            slot.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            slot.process.kill()
            slot.process.wait()
            _recover(studies, spec, slot, -9, out)


def _recover(studies: list[optuna.Study], spec: StudySpec, slot: _Slot, code: int,
             out: IO) -> None:
    """Fail and re-queue the RUNNING trials of a worker that died."""
    for study in studies:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get(WORKER) == slot.worker_id:
                requeue(study, t, RetryPolicy.from_study_file(spec.retry))
                tqdm.write(f"worker {slot.index} died (exit {code}); trial {t.number} of "
                           f"{study.study_name} re-queued", file=out)
    tqdm.write(f"worker {slot.index} exited with status {code}; see {slot.log_path}", file=out)


def _recover_orphans(studies: list[optuna.Study], spec: StudySpec, out: IO) -> None:
    """Re-queue RUNNING trials whose worker process, on this host and in this PID namespace, no
    longer exists (a run that was killed outright): without this they would hold their budget
    slots for ever. A container's worker on the host network is not judged by its PID here."""
    for study in studies:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = local_pid(t.user_attrs.get(WORKER_PROCESS, ""))
            if pid is not None and not _alive(pid):
                requeue(study, t, RetryPolicy.from_study_file(spec.retry))
                print(f"trial {t.number} was left RUNNING by a dead process; re-queued",
                      file=out)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs here; a zombie (killed, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"


def _systematic(studies: list[optuna.Study]) -> str | None:
    """The line naming a systematic error of any of the run's studies, else None."""
    for study in studies:
        stopped = systematic_failure(study.get_trials(deepcopy=False))
        if stopped is not None:
            return stopped
    return None


def _storage_flag(url: str) -> str:
    """The ``--storage`` a printed command needs: none for the embedded default.

    A password is never printed: it shows as ``***`` (set ``HPO_STORAGE`` to run the command).
    """
    return "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(display_url(url))}"


def _dashboard_command(url: str, artifacts: str) -> str:
    flags = _storage_flag(url)
    if artifacts != DEFAULT_ARTIFACTS:
        flags += f" --artifacts {shlex.quote(artifacts)}"
    return f"hpo dashboard{flags}   (then open http://127.0.0.1:8080)"
