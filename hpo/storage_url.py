"""A storage URL: where it comes from (``--storage``, ``HPO_STORAGE``, the embedded journal file),
whether it can mean what the user wants, and how it is shown: never with its password, in the
user part or in the query."""

from __future__ import annotations

import os
import re
from pathlib import Path

import sqlalchemy

from hpo.errors import UsageError

DEFAULT_STORAGE = "runs/hpo.journal"


def storage_url(flag: str | None = None) -> str:
    """``--storage``, else ``HPO_STORAGE``, else the embedded journal file; checked."""
    url = flag or os.environ.get("HPO_STORAGE") or DEFAULT_STORAGE
    check_url(url)
    return url


def is_database_url(url: str) -> bool:
    return "://" in url


# Database URLs whose server has default databases: one without a name would land in them.
_SERVER_BACKENDS = ("postgresql", "mysql", "mariadb", "oracle", "mssql")


def check_url(url: str) -> None:
    """Raise :class:`UsageError` for a storage URL that cannot mean what the user wants.

    A database URL must parse (a numeric port included) and name its database: without one,
    PostgreSQL connects to a default database and Optuna would create its schema there. A journal
    path must not contain ``:`` (``::::`` or ``postgresql:/db`` is a mistyped URL, not a file),
    and an existing file there must be a journal (a study file given as ``--storage`` is not).
    """
    if not is_database_url(url):
        if ":" in url:
            raise UsageError(f"storage {url!r} is not understood: a database URL looks like "
                             "postgresql+psycopg2://user@host:5432/dbname, a journal file is a "
                             "path without ':'")
        if Path(url).is_file():  # before any lock file is made beside it
            from hpo.journal import refuse_if_not_a_journal

            refuse_if_not_a_journal(Path(url).resolve())
        return
    try:
        parsed = sqlalchemy.engine.make_url(url)
        if parsed.port is not None and not 1 <= parsed.port <= 65535:  # "host:abc" raises
            raise ValueError(f"port {parsed.port} is not in 1..65535")
        parsed.get_dialect().import_dbapi()  # an unknown scheme, or a driver not installed
    except (sqlalchemy.exc.ArgumentError, ValueError, ImportError) as err:
        raise UsageError(f"storage URL {_hide_password_text(url)} is not understood: "
                         f"{str(err).splitlines()[0]}") from None
    backend = parsed.get_backend_name()
    if not parsed.database or (backend == "sqlite" and parsed.database == ":memory:"):
        where = "a database name (.../dbname)" if backend != "sqlite" else "a database file"
        raise UsageError(f"storage URL {display_url(url)} names no database; give {where}"
                         + (" (a default database is never used)"
                            if backend.startswith(_SERVER_BACKENDS) else ""))


def _hide_password_text(url: str) -> str:
    """``scheme://user:***@host``: for URLs SQLAlchemy cannot parse, hide what may be a password."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return _hide_query_secrets(url)
    return _hide_query_secrets(f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}")


# A query parameter whose name holds one of these carries a secret: libpq's ``password`` and
# ``sslpassword``, ODBC's ``PWD`` and ``odbc_connect``, a driver's ``token`` or ``secret``.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "odbc_connect")
_QUERY_SECRET = re.compile(r"([?&;][^=&;#]*(?:" + "|".join(_SECRET_WORDS) + r")[^=&;#]*=)[^&;]*",
                           re.IGNORECASE)


def _hide_query_secrets(url: str) -> str:
    """``...?password=***``: a password may come in the query too (libpq reads it there)."""
    return _QUERY_SECRET.sub(r"\1***", url)


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    if not is_database_url(url):
        return str(Path(url).resolve())
    if url.partition("://")[2].split("/", 1)[0].count("@") > 1:  # a raw @ in the password:
        return _hide_password_text(url)  # SQLAlchemy would split it there and show the rest
    try:
        return _hide_query_secrets(
            sqlalchemy.engine.make_url(url).render_as_string(hide_password=True))
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return _hide_password_text(url)


def storage_file(url: str) -> Path | None:
    """The file a storage lives in (an embedded journal, or a SQLite database), absolute; None
    for a database server or a URL that does not parse. Its lock files sit beside it under
    names that start with its name."""
    if not is_database_url(url):
        return Path(url).resolve()
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).resolve()


def is_storage_file(path: str | Path, url: str) -> bool:
    """Whether ``path`` is ``url``'s storage file or a lock file beside it: never to be
    written over by an export or a report."""
    base, target = storage_file(url), Path(path).resolve()
    return base is not None and target.parent == base.parent and target.name.startswith(base.name)
