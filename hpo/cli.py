"""The ``hpo`` command line: init, worker, run, status, dashboard, export, report, train.

Storage: ``--storage URL``, else ``HPO_STORAGE``, else the embedded journal ``runs/hpo.journal``.
Artifacts (sample PNGs): ``--artifacts DIR`` or ``s3://BUCKET/PREFIX``, else ``HPO_ARTIFACTS``,
else ``runs/artifacts``.
Bad input is one line on stderr and exit status 2; an unreachable storage, exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from hpo.errors import HpoError, UsageError, find_cause, os_error_line
from hpo.names import STUDY_NAME, WORKER_ID

EPILOG = ("storage: --storage URL, else $HPO_STORAGE, else runs/hpo.journal (embedded). "
          "Postgres: postgresql+psycopg2://user:password@host:5432/dbname")


MAX_WORKERS_PER_CPU = 4  # each worker is a process holding torch (~0.5 GB) and one torch thread
MAX_THREADS = 256
MAX_TOP = 10_000
MAX_WORKER_SEED = 2**32 - 1  # added to the study's sampler seed, modulo 2**32


def _int_in(lo: int, hi: int, what: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``lo..hi`` (argparse prints the error, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r:.40}"
                                             ) from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected {lo}..{hi}{what}, got {value}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage text can wrap over many lines."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _max_workers() -> int:
    return MAX_WORKERS_PER_CPU * (os.cpu_count() or 1)


def _common(p: argparse.ArgumentParser, artifacts: bool = True) -> None:
    p.add_argument("--storage", metavar="URL",
                   help="study storage URL (default: $HPO_STORAGE, else runs/hpo.journal)")
    if artifacts:
        p.add_argument("--artifacts", metavar="DIR",
                       help="artifact directory or s3://bucket/prefix for sample PNGs "
                            "(default: $HPO_ARTIFACTS, else runs/artifacts)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpo", epilog=EPILOG,
        description="Hyperparameter search for quantum and classical WGAN-GP generators, "
                    "scored by D_s = KL(Q_s||P_s): the KL divergence at the study's stated "
                    "resolution s, bias-corrected, with its 95% interval.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create schema and study once (safe to repeat)", epilog=EPILOG)
    p.add_argument("study_file", metavar="STUDY.yaml")
    _common(p, artifacts=False)

    p = sub.add_parser("worker", help="pull trials until the study's budget is met",
                       epilog=EPILOG)
    p.add_argument("study_file", metavar="STUDY.yaml")
    _common(p)
    p.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=None,
                   help="torch threads (default: $HPO_TORCH_THREADS, else 1)")
    p.add_argument("--worker-seed", type=_int_in(0, MAX_WORKER_SEED), default=None,
                   help="sampler seed offset (default: this worker start's number on the study: "
                        "0, 1, 2, ...)")
    p.add_argument("--worker-id", default=None,
                   help="name recorded on each trial (default: $HPO_WORKER_ID, else "
                        "host:pid:random)")

    p = sub.add_parser("run", help="init + N local workers + progress + summary",
                       epilog=EPILOG)
    p.add_argument("study_file", metavar="STUDY.yaml")
    _common(p)
    p.add_argument("--workers", type=_int_in(1, _max_workers(), " (4 per CPU core)"), default=2,
                   help="local worker processes (default: 2; at most 4 per CPU core)")
    p.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=1,
                   help="torch threads per worker (default: 1)")

    p = sub.add_parser("validate", help="run (or resume) the seed validation of a finished "
                       "search with N local workers", epilog=EPILOG)
    p.add_argument("study_file", metavar="STUDY.yaml")
    _common(p)
    p.add_argument("--workers", type=_int_in(1, _max_workers(), " (4 per CPU core)"), default=2,
                   help="local worker processes (default: 2; at most 4 per CPU core)")
    p.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=1,
                   help="torch threads per worker (default: 1)")

    p = sub.add_parser("status", help="trial counts, best per generator kind, and the workers "
                       "with their last heartbeat", epilog=EPILOG)
    p.add_argument("study", nargs="?", metavar="STUDY",
                   help="study name or study file (default: list all studies)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _common(p, artifacts=False)

    p = sub.add_parser("dashboard", help="optuna-dashboard on the same storage and artifacts",
                       epilog=EPILOG)
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=_int_in(1, 65535), default=8080, help="port (default: 8080)")
    p.add_argument("--allow-edits", action="store_true",
                   help="let the dashboard change studies (POST/PUT/PATCH/DELETE); "
                        "default: read-only")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="also answer requests for this Host name (repeatable; also "
                        "$HPO_DASHBOARD_HOSTS, comma-separated); loopback names always")

    p = sub.add_parser("export", help="best trials as self-contained training configs (YAML)",
                       epilog=EPILOG)
    p.add_argument("study", metavar="STUDY", help="study name or study file")
    _common(p)
    p.add_argument("--top", type=_int_in(1, MAX_TOP), default=1,
                   help="how many of the best configurations (default: 1)")
    p.add_argument("--kind", metavar="K", default=None,
                   help="only this arm (classical, quantum, or any arm the study file names: "
                        "hybrid, control, ...); an arm's study name (NAME.quantum) means that "
                        "arm of its group")
    ranking = p.add_mutually_exclusive_group()
    ranking.add_argument("--validated", action="store_true",
                         help="seed-validated configurations, ranked by their seed mean (the "
                              "default once every kind has one)")
    ranking.add_argument("--search", action="store_true",
                         help="search trials, ranked by their single-seed value (the default "
                              "before a validation)")
    p.add_argument("--out", metavar="FILE",
                   help="write here (default: standard output); an existing file is replaced "
                        "only if hpo export wrote it, and never if it is the storage")
    p.add_argument("--force", action="store_true",
                   help="with --out: replace a file that hpo export did not write")

    p = sub.add_parser("report", help="the verdict: index.html, report.json, dashboard note",
                       epilog=EPILOG)
    p.add_argument("study", metavar="STUDY", help="study name or study file")
    _common(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write index.html and report.json here (default: runs/report/STUDY)")
    p.add_argument("--no-note", action="store_true",
                   help="do not update the dashboard's study notes and metric names")

    p = sub.add_parser("train", help="train an exported config and print its KL",
                       epilog=EPILOG)
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--rank", type=_int_in(1, MAX_TOP), default=1,
                   help="which document of a multi-config export (default: 1, the best)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=1,
                   help="torch threads (default: 1)")
    return parser


def _study_name(arg: str) -> str:
    """A study name given directly, or the name inside a study file."""
    try:
        is_file = Path(arg).is_file()
    except OSError:  # e.g. a name too long for a file name
        is_file = False
    if is_file or arg.endswith((".yaml", ".yml")):
        from hpo.space import load_spec

        return load_spec(arg).name
    if not STUDY_NAME.fullmatch(arg):
        raise UsageError(f"{arg[:70]!r} is not a study name (letters, digits, _.-, not starting "
                         "with - or ., at most 64 characters) nor a study file")
    return arg


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def limit_blas_threads(threads: int) -> None:
    """OpenBLAS (numpy's, scipy's) runs ``threads`` threads, as torch does, unless the environment
    sets them. It starts one per core otherwise, and reads the setting once, when numpy is first
    imported: call this before. The score's kernel sums are small float32 matrix products, which
    two threads made 7 to 12 times as costly on a 2-core machine (docs/trial-time.md)."""
    if not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = str(threads)


def _threads(flag: int | None) -> int:
    value = flag if flag is not None else os.environ.get("HPO_TORCH_THREADS", "1")
    try:
        threads = int(value)
    except ValueError:
        raise UsageError(f"HPO_TORCH_THREADS must be a whole number, got {value!r}") from None
    if not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads must be in 1..{MAX_THREADS}, got {threads}")
    return threads


def cmd_init(args: argparse.Namespace) -> int:
    from hpo.init_lock import ensure_group_studies
    from hpo.space import load_spec
    from hpo.storage import display_url, storage_url

    spec = load_spec(args.study_file)
    url = storage_url(args.storage)
    from hpo.metric import objective_name  # metrics: only once the input is good

    studies = ensure_group_studies(url, spec, metric=objective_name(spec))
    print(f"{'studies' if len(studies) > 1 else 'study'} {', '.join(studies)} ready in "
          f"{display_url(url)} "
          f"({sum(len(s.get_trials(deepcopy=False)) for s in studies.values())} trials so far)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from hpo.space import load_spec
    from hpo.storage import storage_url

    spec = load_spec(args.study_file)
    given, source = args.worker_id, "--worker-id"
    if given is None and os.environ.get("HPO_WORKER_ID"):  # printed and stored as the flag is
        given, source = os.environ["HPO_WORKER_ID"], "HPO_WORKER_ID"
    if given is not None and not WORKER_ID.fullmatch(given):
        raise UsageError(f"{source} {given[:70]!r}: expected 1 to 128 letters, "
                         "digits or _.:@- characters")
    from hpo.worker import run_worker  # torch: only once the input is good

    try:
        run_worker(spec, storage_url(args.storage), artifacts=args.artifacts,
                   threads=_threads(args.threads), worker_seed=args.worker_seed,
                   worker_id=given,  # checked above; None: run_worker makes one
                   stopped_before=_stopped_while_starting)
    finally:
        _ignore_stops_while_exiting()
    return 0


def _ignore_stops_while_exiting() -> None:
    """The worker's trials are finished or re-queued: a SIGTERM or SIGINT from here on has nothing
    to stop. Python puts back the default action (death by the signal: status 143) for the
    handlers it installed as it finalizes, which takes torch a while, so `docker compose stop`
    racing a worker's own end saw 143 (CI, 2026-12-03); an ignored signal stays ignored."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def cmd_run(args: argparse.Namespace) -> int:
    from hpo.artifacts import checked_location
    from hpo.launcher import run_study
    from hpo.space import load_spec
    from hpo.storage import storage_url

    spec = load_spec(args.study_file)
    return run_study(spec, args.study_file, storage_url(args.storage), workers=args.workers,
                     artifacts=checked_location(args.artifacts),
                     threads=_threads(args.threads))


def cmd_validate(args: argparse.Namespace) -> int:
    """`hpo run` once the search is over: the workers then only run (or resume) the seed
    validation, which they enqueue first if nobody has."""
    from hpo.artifacts import checked_location
    from hpo.launcher import run_study
    from hpo.schedule import study_budgets
    from hpo.space import load_spec
    from hpo.storage import display_url, open_storage, storage_url
    from hpo.trials import budget_counts

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    spec = load_spec(args.study_file)
    if spec.layout != "per-kind":
        raise UsageError(f"{args.study_file}: layout: seed validation needs layout: per-kind")
    url = storage_url(args.storage)
    from hpo.publish import load_group_or_explain

    group = load_group_or_explain(open_storage(url), spec.name, display_url(url))
    stored = group.study_trials
    short = {name: (held, b) for name, b in study_budgets(spec).items()
             if (held := budget_counts(stored.get(name, [])).held) < b}
    if short:
        left = ", ".join(f"{k} {n}/{b}" for k, (n, b) in short.items())
        raise UsageError(f"the search of {spec.name} is not finished ({left}): hpo run "
                         f"{args.study_file} finishes it and then validates (a run already "
                         "going on it will)")
    return run_study(spec, args.study_file, url, workers=args.workers,
                     artifacts=checked_location(args.artifacts),
                     threads=_threads(args.threads))


def cmd_status(args: argparse.Namespace) -> int:
    import optuna

    from hpo.publish import load_named_group, member_line
    from hpo.report import format_listing, group_summary, status_data, storage_listing, summary
    from hpo.storage import display_url, open_storage, storage_url

    url = storage_url(args.storage)
    storage = open_storage(url, create=False)
    if args.study is None:
        rows = storage_listing(storage)
        if args.json:
            print(json.dumps({"storage": display_url(url), "studies": rows}))
        else:
            print(format_listing(rows, display_url(url)))
        return 0
    from dataclasses import asdict

    from hpo.worker_status import format_workers, heartbeat_ages, worker_activity

    name = _study_name(args.study)
    group, role = load_named_group(storage, name, display_url(url))
    if role is not None and not args.json:
        print(member_line(name, group, role))
    trials_by_study: dict[str, list] = group.study_trials
    if group.validation_study:
        trials_by_study[group.validation_study] = list(group.validation)
    workers = worker_activity(trials_by_study, heartbeat_ages(url, list(trials_by_study)))
    if args.json:
        print(json.dumps({**status_data(group), "workers": [asdict(w) for w in workers]}))
        return 0
    if group.layout == "single":
        print(summary(optuna.load_study(study_name=group.name, storage=storage)))
    else:
        print(group_summary(group))
    print()
    print(format_workers(workers))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from hpo.artifacts import checked_location, display_location
    from hpo.dashboard import allowed_hosts, check_listenable, extra_hosts, serve
    from hpo.storage import display_url, require_storage, storage_url

    url = storage_url(args.storage)
    artifacts = checked_location(args.artifacts)  # a usage error (2) before a missing storage (1)
    hosts = allowed_hosts(args.host, extra_hosts(args.allowed_host))
    require_storage(url)  # a missing storage is one line here, not a worker failing to boot
    check_listenable(args.host, args.port)
    mode = "read-write (--allow-edits)" if args.allow_edits else "read-only"
    print(f"optuna-dashboard on http://{args.host}:{args.port} ({mode})  storage "
          f"{display_url(url)}, artifacts {display_location(artifacts)}",
          flush=True)
    serve(url, args.artifacts, host=args.host, port=args.port, hosts=hosts,
          allow_edits=args.allow_edits)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hpo.artifacts import existing_artifact_store
    from hpo.export import (
        dump_documents,
        export_documents,
        export_kinds,
        export_ranking,
        write_export,
    )
    from hpo.group import one_search
    from hpo.publish import load_named_group
    from hpo.storage import display_url, open_storage, storage_url

    url = storage_url(args.storage)
    name = _study_name(args.study)
    group, role = load_named_group(open_storage(url, create=False), name, display_url(url))
    kind = args.kind
    if role not in (None, "validation"):  # NAME.quantum: the quantum kind of group NAME
        arm = role.partition(".")[0]
        if kind not in (None, arm):
            raise UsageError(f"{name} is the {role} search of study group {group.name}; "
                             f"--kind {kind} contradicts it (for {kind}: hpo export "
                             f"{group.name} --kind {kind})")
        kind = arm
        if role != arm:  # NAME.quantum.s2: that search alone, not the arm's others
            group = one_search(group, name)
    validated = True if args.validated else False if args.search else None
    validated, line = export_ranking(group, export_kinds(group, kind), validated)
    docs = export_documents(group, args.top, kind=kind, validated=validated,
                            artifact_store=existing_artifact_store(args.artifacts))
    if line:
        print(f"hpo export: {line}", file=sys.stderr)
    text = dump_documents(docs, group.name)
    if args.out:
        write_export(args.out, text, storage=url, force=args.force)
        print(f"wrote {len(docs)} config(s) to {args.out}; "
              f"train one with: hpo train {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _check_report_folder(out: Path, url: str) -> None:
    """A report writes index.html, report.json, its figures and artifacts into ``out``: never
    where the study storage lives (a journal named index.html would be written over)."""
    from hpo.storage_url import is_storage_file, storage_file

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the report")
    stored = storage_file(url)
    if stored is not None and out.is_dir() and any(is_storage_file(p, url) for p in out.iterdir()):
        raise UsageError(f"--out {out} holds the study storage ({stored.name}); give another "
                         "folder for the report")


def cmd_report(args: argparse.Namespace) -> int:
    from hpo.artifacts import existing_artifact_store
    from hpo.publish import write_report
    from hpo.storage import display_url, open_storage, storage_url

    url = storage_url(args.storage)
    name = _study_name(args.study)
    out = Path(args.out) if args.out else Path("runs") / "report" / name
    _check_report_folder(out, url)
    done = write_report(open_storage(url, create=False), name, out,
                        artifact_store=existing_artifact_store(args.artifacts),
                        storage_label=display_url(url), note=not args.no_note)
    verdict = done.report["verdict"]
    print(verdict["sentence"])
    if verdict.get("profile_sentence"):
        print(verdict["profile_sentence"])
    if verdict.get("control"):
        print(verdict["control"]["sentence"])
    if verdict.get("arms"):  # the kinds over searches, or why no interval over them
        print(verdict["arms"]["sentence"])
    print(f"wrote {done.html} and {done.json}"
          + (f"; dashboard notes on {', '.join(done.noted_studies)}" if done.noted_studies
             else ""))
    copied = done.artifacts
    if copied is not None and copied.copied + copied.present:
        print(f"published {copied.copied + copied.present} artifacts (configs, score details, "
              f"the sample figure's images) in {copied.store}"
              + (f"; {copied.missing} named by trials are not in the store" if copied.missing
                 else ""))
    if done.note_error:
        print(f"hpo report: the page is written, the dashboard notes are not ({done.note_error});"
              " --no-note leaves them out", file=sys.stderr)
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hpo.export import load_exported, train_exported

    doc = load_exported(args.config, args.rank)  # checked in full before torch is even imported
    import torch

    torch.set_num_threads(_threads(args.threads))
    steps = doc.get("train", {}).get("steps", "?")

    def progress(step: int, kl, samples) -> None:  # on stderr, so --json stays parseable
        print(f"step {step}/{steps}: D_s {kl.value:.4f} "
              f"(s={kl.sigma:g}, {kl.n_target} {kl.points} points)", file=sys.stderr, flush=True)

    score = train_exported(doc, args.config, progress)
    result = score.as_dict()
    expected = (doc.get("source") or {}).get("kl")  # validated: a mapping or null
    if args.json:
        result["expected_kl"] = expected
        print(json.dumps(result))
        return 0
    kl = score.kl
    print(f"D_s = KL(Q_s||P_s) at s = {kl.sigma:g}: {kl.value:.4f} nats, "
          f"95% CI [{kl.ci_low:.4f}, {kl.ci_high:.4f}], "
          f"stderr {kl.stderr:.4f} ({kl.replicates} x {kl.m} samples vs {kl.n_target} target)")
    print("resolution profile: " + ", ".join(
        f"s={e.sigma:g}: {e.value:.4f} [{e.ci_low:.4f}, {e.ci_high:.4f}]"
        for _, e in score.profile))
    if score.knn is not None:
        print(f"k-NN estimate of the unsmoothed KL(Q||P) (diagnostic): {score.knn.value:.4f}")
    print(f"W2 = {score.w2:.4f}, mode coverage {score.mode_coverage:.2f}, "
          f"{score.n_params} parameters, {score.seconds:.1f} s")
    if expected is not None:
        print(f"study value for this config: {expected:.4f}")
    return 0


COMMANDS = {"init": cmd_init, "worker": cmd_worker, "run": cmd_run, "status": cmd_status,
            "dashboard": cmd_dashboard, "export": cmd_export, "report": cmd_report,
            "validate": cmd_validate,
            "train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        _stop_quietly_while_starting()
    if args.command in ("worker", "run", "validate", "train"):  # before numpy is imported
        try:  # workers started by `hpo run` inherit it
            limit_blas_threads(_threads(getattr(args, "threads", None)))
        except UsageError:
            pass  # the command reports it
    try:
        import optuna  # in the try: a Ctrl-C in its second of import is "interrupted" too

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happened
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `hpo status | head`: the reader has what it wanted
        with contextlib.suppress(OSError, ValueError):  # no second error at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a command ended by SIGPIPE
    except HpoError as err:
        _traceback_if_asked()
        print(f"hpo {args.command}: {_at_most(str(err), MAX_ERROR_CHARS)}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print(f"hpo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line, not a traceback, for what the user can act on
        message = _known_failure(err, args)
        if message is None:
            raise
        _traceback_if_asked()
        print(f"hpo {args.command}: {message}", file=sys.stderr)
        return 1


MAX_ERROR_CHARS = 600
"""An error quotes the input it refuses; a 5000-component mixture made a 25 KB line."""


def _at_most(text: str, chars: int) -> str:
    return text if len(text) <= chars else f"{text[:chars - 30]} ... ({len(text)} characters)"


def _traceback_if_asked() -> None:
    """With ``HPO_TRACEBACK=1``, the traceback behind a one-line failure (where in the code a
    dropped connection struck, say), printed before that line; the line is unchanged."""
    if os.environ.get("HPO_TRACEBACK", "") not in ("", "0"):
        import traceback

        err = sys.exc_info()[1]
        # One-line errors are raised `from None`; what they replaced is where it struck. Not for
        # bad input (UsageError): what it replaced may quote the input.
        if err is not None and err.__suppress_context__ and err.__context__ is not None \
                and not isinstance(err, UsageError):
            traceback.print_exception(err.__context__, file=sys.stderr)
        traceback.print_exc(file=sys.stderr)


#: The signal that stopped a worker before its own handler took over, if one did: the
#: SystemExit raised then can be lost (see :func:`_stop_quietly_while_starting`).
_STOPPED_WHILE_STARTING: list[str] = []


def _stopped_while_starting() -> str | None:
    """The signal's name, when a worker was stopped while it started; else None."""
    return _STOPPED_WHILE_STARTING[0] if _STOPPED_WHILE_STARTING else None


def _stop_quietly_while_starting() -> None:
    """SIGTERM or SIGINT before a worker's own handler is in place (its imports take seconds; a
    container that compose restarted can be stopped then) ends it with status 0 and one line,
    as a stop does later: it holds no trial yet. :class:`hpo.worker.StopFlag` takes over.

    Python runs the handler wherever the main thread is, also inside a weakref callback of the
    import machinery or a ``__del__``, where the SystemExit is printed as "Exception ignored"
    and dropped: the worker went on and ran the whole budget (CI, 2026-12-06). So the stop is
    also kept here, :func:`hpo.worker.run_worker` honours it before claiming anything, and a
    dropped SystemExit of this stop prints nothing more."""
    def handler(signum: int, frame: object) -> None:
        _ignore_stops_while_exiting()  # first: a second stop must not interrupt this one
        _STOPPED_WHILE_STARTING.append(signal.Signals(signum).name)
        print(f"hpo worker: {signal.Signals(signum).name} while starting; ran 0 trial(s)",
              file=sys.stderr)
        raise SystemExit(0)

    def unraisable(hook_args: typing.Any) -> None:
        if isinstance(hook_args.exc_value, SystemExit) and _STOPPED_WHILE_STARTING:
            return
        sys.__unraisablehook__(hook_args)

    sys.unraisablehook = unraisable
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _known_failure(err: Exception, args: argparse.Namespace) -> str | None:
    """A one-line message for failures that are the world's, not the code's; else None."""
    import optuna
    import sqlalchemy

    # Optuna wraps SQLAlchemy errors in StorageInternalError
    dropped = find_cause(err, sqlalchemy.exc.OperationalError)
    if dropped is not None:
        from hpo.storage import storage_url, unreachable_message

        return unreachable_message(storage_url(getattr(args, "storage", None)), dropped)
    if isinstance(err, optuna.exceptions.StorageInternalError):
        return f"the study storage failed: {err}"
    if type(err).__name__ == "TrainingDiverged":  # models is not imported for every command
        return str(err)
    if isinstance(err, OSError):
        return os_error_line(err)
    if args.command in READERS and isinstance(err, UNREADABLE_RECORDS):
        line = (str(err).strip().splitlines() or [""])[0][:160]
        return (f"cannot read the stored study as hpo writes it ({type(err).__name__}: {line}): "
                "a study made outside hpo, or records changed by hand? HPO_TRACEBACK=1 shows where")
    return None


READERS = ("status", "export", "report")
#: What reading a study hpo did not write raises (a multi-objective study: RuntimeError; a list
#: where a name is kept: TypeError; a stored study file of the wrong shape: AttributeError...).
UNREADABLE_RECORDS = (RuntimeError, TypeError, AttributeError, ValueError, KeyError, IndexError)

if __name__ == "__main__":
    sys.exit(main())
