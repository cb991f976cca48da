"""The embedded journal file: Optuna's file backend with a lock that is broken when stale, and
repair of torn or corrupt lines (docs/design.md, "Storage faults").

The lock is Optuna's own symlink lock, ``<journal>.lock`` pointing at the journal, so our
processes and optuna-dashboard's exclude each other. Two things differ:

- the journal path is made absolute, so the link's target resolves from any folder;
- a lock is stale when the link itself (``lstat``) is older than its grace period, whatever its
  target: a dangling link left by a crash or a reboot is broken, never waited on for ever. Only an
  append holds the lock (milliseconds), so a holder is never that old.

A torn last line (a crash in the middle of a write) is moved aside before anything is appended
after it; a line that is not JSON is moved aside too. Each repair is reported in one line naming
the file, the line and what was done; every complete line is kept.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

LOCK_GRACE_S = 30.0
"""Seconds after which a journal lock nobody released is broken (Optuna's default too)."""


class StaleBreakingLock(JournalFileSymlinkLock):
    """Optuna's symlink lock on ``path + ".lock"``, broken when older than ``grace_period_s``."""

    def __init__(self, journal_path: str | Path, grace_period_s: float = LOCK_GRACE_S,
                 log: IO = sys.stderr) -> None:
        if grace_period_s <= 0:
            raise ValueError(f"grace_period_s must be > 0 seconds, got {grace_period_s}")
        self.target = str(Path(journal_path).resolve())
        super().__init__(self.target, grace_period=None)  # staleness is judged below instead
        self.lock_file = self.target + ".lock"
        self.grace_period_s = grace_period_s
        self.log = log

    def acquire(self) -> bool:
        delay = 0.001
        while True:
            try:
                os.symlink(self.target, self.lock_file)
                return True
            except FileExistsError:
                pass
            try:
                age = time.time() - os.lstat(self.lock_file).st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again at once
            if age > self.grace_period_s:
                self._break(age)
                continue
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def release(self) -> None:
        self._remove()

    def _break(self, age: float) -> None:
        if self._remove():
            print(f"hpo: {self.lock_file}: broke a stale journal lock (held {age:.0f} s, "
                  f"longer than its {self.grace_period_s:.0f} s grace period)",
                  file=self.log, flush=True)

    def _remove(self) -> bool:
        # Renaming first makes removal atomic: of two processes breaking the same stale lock,
        # only one removes it.
        aside = f"{self.lock_file}.{uuid.uuid4().hex}.rename"
        try:
            os.rename(self.lock_file, aside)
        except FileNotFoundError:
            return False
        os.unlink(aside)
        return True

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class RepairingJournalBackend(JournalFileBackend):
    """:class:`JournalFileBackend` on an absolute path with :class:`StaleBreakingLock`, which
    repairs torn or corrupt lines on opening and never appends after a torn line."""

    def __init__(self, path: str | Path, log: IO = sys.stderr) -> None:
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = StaleBreakingLock(self.path, log=log)
        self.log = log
        super().__init__(str(self.path), lock_obj=self.lock)
        with self.lock.held():
            repair_journal(self.path, self.log)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
        with self.lock.held():
            if not _ends_cleanly(self.path):
                repair_journal(self.path, self.log)
            with open(self.path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())


def _ends_cleanly(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def repair_journal(path: str | Path, log: IO = sys.stderr) -> list[str]:
    """Move a torn last line and any line that is not JSON to ``<journal>.bad-<time>``.

    Call it holding the journal's lock (a writer holds it for its whole line, so a line without
    its newline is then a crash's, never a write in progress). Returns the one-line reports, also
    printed to ``log``; an intact journal is left untouched.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data:
        return []
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    kept, bad, reports = [], [], []
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
            kept.append(line)
        except ValueError:
            bad.append(line)
            reports.append(f"line {number} is not valid JSON")
    if torn:
        bad.append(torn)
        reports.append(f"line {len(lines) + 1} was torn (no newline: a write cut short)")
    if not bad:
        return []
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    aside.write_bytes(b"\n".join(bad) + b"\n")
    if len(bad) == 1 and torn:
        with open(path, "r+b") as f:  # only the tail changes: live readers' offsets stay valid
            f.truncate(len(data) - len(torn))
            f.flush()
            os.fsync(f.fileno())
    else:
        tmp = path.with_name(f"{path.name}.repair-{os.getpid()}")
        tmp.write_bytes(b"".join(line + b"\n" for line in kept))
        os.replace(tmp, path)
    messages = [f"hpo: {path}: {what}; moved it to {aside.name} and kept every complete line"
                for what in reports]
    for message in messages:
        print(message, file=log, flush=True)
    return messages
