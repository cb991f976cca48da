"""Errors the CLI turns into one line and an exit status, never a traceback."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class HpoError(Exception):
    """A problem the user can fix; ``exit_status`` is what the CLI exits with."""

    exit_status = 1


class UsageError(HpoError):
    """Bad input: a study file, a config file, a flag. Exit status 2."""

    exit_status = 2


class StudyFileError(UsageError):
    """A study or config file that does not validate: names file, key and what is allowed."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + problem)


class StorageError(HpoError):
    """The storage cannot be reached or opened. Exit status 1."""


class StudyStopped(HpoError):
    """The study's first trials all failed the same way (a systematic error). Exit status 1."""


class Stopped(Exception):
    """A worker asked to stop (SIGTERM, SIGINT) while it waited to start: it holds no trial, so
    it ends as a stop does, status 0. Not an :class:`HpoError`: nothing failed."""


def find_cause(err: BaseException | None, kind: type[E] | tuple[type[E], ...], depth: int = 10
               ) -> E | None:
    """The first error of ``kind`` in ``err``'s chain (itself, then ``__cause__`` or
    ``__context__``), looking ``depth`` errors deep: Optuna wraps SQLAlchemy's errors, and
    handling one may raise another."""
    seen = 0
    while err is not None and seen < depth:
        if isinstance(err, kind):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def os_error_line(err: OSError) -> str:
    """An OSError as people read it: ``No space left on device: /path``."""
    return f"{err.strerror or err}{f': {err.filename}' if err.filename else ''}"
