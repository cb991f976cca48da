"""The embedded journal file: Optuna's file backend with a lock that is broken when stale, and
repair of torn or corrupt lines (docs/design.md, "Storage faults").

The lock is Optuna's own symlink lock, ``<journal>.lock`` pointing at the journal, so our
processes and optuna-dashboard's exclude each other. Two things differ:

- the journal path is made absolute, so the link's target resolves from any folder;
- a lock is stale when the link itself (``lstat``) is older than its grace period, whatever its
  target: a dangling link left by a crash or a reboot is broken, never waited on for ever. Only an
  append holds the lock (milliseconds), so a holder is never that old.

A torn last line (a crash in the middle of a write) is moved aside before anything is appended
after it; a line that is not a journal entry (:func:`is_entry`) is moved aside too. The first
repair is reported in one line naming the file, the line and what was done, the rest in one more;
every entry is kept. A file none of whose first lines is an entry is not a journal: it is refused
(:func:`refuse_if_not_a_journal`), never repaired into an empty one.

Only writers repair: a worker, ``hpo run``, ``hpo init`` and ``hpo validate`` on opening the file
(``repair=True``). The read-only commands (``hpo status``, ``hpo export``, ``hpo report``, ``hpo
dashboard``: :func:`hpo.storage.open_storage` with ``create=False``) open it with
``repair=False``: they write nothing, read every complete entry, leave out a torn last line and
lines that are not entries, and say so in at most two lines (the first such line, and where it
will be repaired; how many more). Should such a process append after all (``hpo report``'s
dashboard notes, an edit in ``hpo dashboard --allow-edits``), it repairs first, under the lock,
as a writer does.
"""

from __future__ import annotations

import errno
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

from hpo.errors import UsageError

LOCK_GRACE_S = 30.0
"""Seconds after which a journal lock nobody released is broken (Optuna's default too)."""
TORN_WAIT_S = 1.0
"""Seconds a reader waits for a writer holding the lock before it calls a last line torn."""
REPAIRED_BY = "the next hpo worker, hpo run or hpo init on it moves it aside"
"""Where a read-only command says a torn or corrupt line will be repaired."""
LOOKED_AT = 64
"""Complete lines looked at on opening: a file none of whose first lines is a journal entry is
not a journal (a study file, notes), and is refused rather than repaired away."""


MAX_LINE_BYTES = 16 << 20
"""Longer than any entry (a stored study file is at most 1 MiB): read no more of a line to judge."""
ENTRY_START = b'{"op_code":'
"""How every entry's line begins: Optuna writes ``op_code`` first, and so do we."""


def is_entry(line: Any) -> bool:
    """Whether a parsed line has the shape of an Optuna journal entry (every entry Optuna
    writes holds an integer ``op_code`` and its writer's ``worker_id``)."""
    return (isinstance(line, dict) and type(line.get("op_code")) is int
            and isinstance(line.get("worker_id"), str))


def _entry(line: bytes) -> Any:
    """The entry on ``line``; ValueError with what is wrong when it is not one."""
    try:
        parsed = json.loads(line)
    except ValueError:
        raise ValueError("is not valid JSON") from None
    if not is_entry(parsed):
        raise ValueError("is not a journal entry")
    return parsed


def refuse_if_not_a_journal(path: Path) -> None:
    """:class:`UsageError` when ``path`` holds complete lines and none of the first
    :data:`LOOKED_AT` is a journal entry: another kind of file given as the storage."""
    looked = 0
    with open(path, "rb") as f:
        while looked < LOOKED_AT:
            line = f.readline(MAX_LINE_BYTES)
            if not line.endswith(b"\n"):  # the end, a write in progress, or no newline at all
                if line and not line.startswith(ENTRY_START[:len(line)]):
                    looked += 1  # a first line no writer of ours or Optuna's would begin
                break
            looked += 1
            try:
                _entry(line)
                return
            except ValueError:
                continue
    if looked:
        raise UsageError(f"{path} is not an Optuna journal (none of its first {looked} lines is "
                         "a journal entry); give the journal file, or a path that does not exist")


class StaleBreakingLock(JournalFileSymlinkLock):
    """Optuna's symlink lock on ``path + ".lock"``, broken when older than ``grace_period_s``."""

    def __init__(self, journal_path: str | Path, grace_period_s: float = LOCK_GRACE_S,
                 log: IO | None = None) -> None:
        if grace_period_s <= 0:
            raise ValueError(f"grace_period_s must be > 0 seconds, got {grace_period_s}")
        self.target = str(Path(journal_path).resolve())
        super().__init__(self.target, grace_period=None)  # staleness is judged below instead
        self.lock_file = self.target + ".lock"
        self.grace_period_s = grace_period_s
        self.log = log or sys.stderr  # looked up now, not when this module was imported

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

    def is_held(self) -> bool:
        """Whether some process holds the lock now (its link exists); reads only."""
        return os.path.lexists(self.lock_file)

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
    repairs torn or corrupt lines and never appends after a torn line.

    ``repair=True`` (writers) repairs on opening. ``repair=False`` (the read-only commands)
    writes nothing until something is appended: reading leaves out a torn last line and lines
    that are not JSON (each reported once, in one line), and the first append repairs first.
    """

    def __init__(self, path: str | Path, log: IO | None = None, *, repair: bool = True) -> None:
        self.path = Path(path).resolve()
        if repair:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():  # Optuna's backend would create it
            raise FileNotFoundError(errno.ENOENT, "no such journal file", str(self.path))
        self.log = log or sys.stderr  # looked up now, not when this module was imported
        if self.path.is_file():
            refuse_if_not_a_journal(self.path)
        self.lock = StaleBreakingLock(self.path, log=self.log)
        super().__init__(str(self.path), lock_obj=self.lock)
        # log number -> (byte offset, line number) where reading for that log resumes
        self._resume: dict[int, tuple[int, int]] = {0: (0, 1)}
        self._reported: set[int] = set()
        self._unsaid = 0  # bad lines found past the first, said in one line at a read's end
        self._repaired = repair
        if repair:
            with self.lock.held():
                repair_journal(self.path, self.log)
        else:
            self._report_torn_tail()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        """The logs from number ``log_number_from`` on: every complete line that is JSON.

        A last line without its newline (a write in progress, or a crash's) is not read; it is
        read next time if its write completes. A complete line that is not JSON is left out
        (Optuna's reader would stop at it), so the numbers count the lines read, as they will once
        a writer has moved such lines aside.
        """
        start = max(n for n in self._resume if n <= log_number_from)
        offset, line_number = self._resume[start]
        number = start
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            while offset < size:
                line = f.readline()
                if not line.endswith(b"\n") or offset + len(line) > size:
                    break  # torn, or being written: not a line yet
                offset += len(line)
                line_number += 1
                try:
                    entry = _entry(line)
                except ValueError as err:
                    self._report(line_number - 1, str(err))
                    self._resume[number] = (offset, line_number)  # log `number` comes later
                    continue
                number += 1
                self._resume[number] = (offset, line_number)
                if number > log_number_from:
                    yield entry
        self._say_the_rest()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
        with self.lock.held():
            # Opened read-only: repair first, as a writer's opening does. Then only a torn
            # line a crash left since can need it.
            if not self._repaired or not _ends_cleanly(self.path):
                self._repaired = True
                if repair_journal(self.path, self.log):
                    # the lines read are the file's lines now: find offsets afresh
                    self._resume, self._reported = {0: (0, 1)}, set()
            with open(self.path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    def _report(self, line_number: int, what: str) -> None:
        if line_number in self._reported:
            return
        self._reported.add(line_number)
        if len(self._reported) > 1:  # one line for the first, one for all the others
            self._unsaid += 1
            return
        print(f"hpo: {self.path}: line {line_number} {what}; read without it and left the file "
              f"as it is ({REPAIRED_BY})", file=self.log, flush=True)

    def _say_the_rest(self) -> None:
        if self._unsaid:
            print(f"hpo: {self.path}: {self._unsaid} more lines are torn, not JSON or not journal "
                  "entries; read without them", file=self.log, flush=True)
            self._unsaid = 0

    def _report_torn_tail(self) -> None:
        """One line if the file ends in a torn line that no write in progress explains."""
        waited = 0.0
        while self.lock.is_held() and waited < TORN_WAIT_S:  # a writer may be finishing it
            time.sleep(0.05)
            waited += 0.05
        if _ends_cleanly(self.path):
            return
        data = self.path.read_bytes()
        self._report(data.count(b"\n") + 1, "is torn (no newline: a write cut short)")


def _ends_cleanly(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a full disk left an empty ``.bad-*`` file beside a
    journal it had not repaired (the journal itself is only changed once this succeeds)."""
    try:
        path.write_bytes(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def repair_journal(path: str | Path, log: IO | None = None) -> list[str]:
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
            _entry(line)
            kept.append(line)
        except ValueError as err:
            bad.append(line)
            reports.append(f"line {number} {err}")
    if torn:
        bad.append(torn)
        reports.append(f"line {len(lines) + 1} was torn (no newline: a write cut short)")
    if not bad:
        return []
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    _write_whole(aside, b"\n".join(bad) + b"\n")
    if len(bad) == 1 and torn:
        with open(path, "r+b") as f:  # only the tail changes: live readers' offsets stay valid
            f.truncate(len(data) - len(torn))
            f.flush()
            os.fsync(f.fileno())
    else:
        tmp = path.with_name(f"{path.name}.repair-{os.getpid()}")
        _write_whole(tmp, b"".join(line + b"\n" for line in kept))
        os.replace(tmp, path)
    if len(reports) > 2:  # a line for the first, one for the rest
        reports[1:] = [f"{len(reports) - 1} more lines were torn, not JSON or not journal entries"]
    messages = [f"hpo: {path}: {what}; moved {'them' if ' more lines ' in what else 'it'} to "
                f"{aside.name} and kept every journal entry" for what in reports]
    for message in messages:
        print(message, file=log or sys.stderr, flush=True)
    return messages
