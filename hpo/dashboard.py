"""`hpo dashboard`: optuna-dashboard behind a guard, served by gunicorn.

optuna-dashboard's application is an unauthenticated read-write API (``DELETE /api/studies/0``
deletes a study) that answers any ``Host`` header, so a web page on any site can reach it through
DNS rebinding. :class:`DashboardGuard` is a WSGI layer in front of it that

- refuses every method but GET and HEAD with 403 unless edits were allowed
  (``hpo dashboard --allow-edits``);
- refuses (403) a request whose ``Host`` header does not name this server: the loopback names,
  the bound address, this machine's host names when bound to every interface, and the names given
  with ``--allowed-host`` or ``HPO_DASHBOARD_HOSTS`` (comma-separated), ports ignored;
- with edits allowed, refuses a mutating request whose ``Origin`` names another site.

optuna-dashboard's own ``run_server`` uses ``wsgiref``, which its documentation says is not for
production; :func:`serve` runs the guarded application in gunicorn instead (sync workers, each
opening the storage after the fork, so no database connection is shared between processes).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from hpo.errors import HpoError, UsageError

SAFE_METHODS = frozenset({"GET", "HEAD"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
DEFAULT_WORKERS = 2
REQUEST_TIMEOUT_S = 120  # a large study's trial list takes a while to serialise

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def host_name(header: str) -> str:
    """The name part of a ``Host`` header or an origin's netloc, lower case: no port, no dot."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8080
        return header[1:header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` names a server bound to ``bind`` answers to (see the module docstring)."""
    names = set(LOOPBACK_NAMES)
    if bind in WILDCARD_ADDRESSES:
        names.update(n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n)
    else:
        names.add(host_name(bind))
    names.update(host_name(n) for n in extra if n.strip())
    return frozenset(names)


class DashboardGuard:
    """WSGI middleware: read-only unless ``allow_edits``, and only for the ``hosts`` names."""

    def __init__(self, app: WSGIApp, hosts: Iterable[str], *, allow_edits: bool = False) -> None:
        self.app, self.hosts, self.allow_edits = app, frozenset(hosts), allow_edits

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        host = host_name(environ.get("HTTP_HOST", ""))
        if host not in self.hosts:
            return _refuse(start_response, f"Host {host!r} is not a name of this dashboard; "
                           "start it with --allowed-host NAME to serve that name")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method not in SAFE_METHODS:
            if not self.allow_edits:
                return _refuse(start_response, f"{method} refused: this dashboard is read-only "
                               "(start it with hpo dashboard --allow-edits to change studies)")
            origin = environ.get("HTTP_ORIGIN")
            if origin and host_name(origin.partition("://")[2]) not in self.hosts:
                return _refuse(start_response, f"{method} from origin {origin!r} refused")
        return self.app(environ, start_response)


def _refuse(start_response: Callable[..., Any], reason: str) -> list[bytes]:
    body = (reason + "\n").encode()
    start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def guarded_app(url: str, artifacts: str | None, hosts: Iterable[str], *,
                allow_edits: bool = False) -> DashboardGuard:
    """optuna-dashboard on ``url`` and ``artifacts``, behind :class:`DashboardGuard`."""
    import optuna_dashboard

    from hpo.artifacts import existing_artifact_store
    from hpo.storage import open_storage

    app = optuna_dashboard.wsgi(open_storage(url, create=False),
                                artifact_store=existing_artifact_store(artifacts))
    return DashboardGuard(app, hosts, allow_edits=allow_edits)


def extra_hosts(flags: list[str] | None) -> list[str]:
    """``--allowed-host`` names, then those in ``HPO_DASHBOARD_HOSTS`` (comma-separated)."""
    env = os.environ.get("HPO_DASHBOARD_HOSTS", "")
    given = [("--allowed-host", n) for n in flags or []] + [
        ("an HPO_DASHBOARD_HOSTS entry", n.strip()) for n in env.split(",") if n.strip()]
    for where, name in given:
        if not name or any(c.isspace() or c in "/@?#" for c in name) or len(name) > 253:
            raise UsageError(f"{where} {name[:70]!r} is not a host name")
    return [name for _, name in given]


def check_listenable(host: str, port: int) -> None:
    """One line, before gunicorn starts (whose retries would print 6-11 log lines): a
    :class:`UsageError` for a host that is empty or not an address, an :class:`HpoError` (exit 1)
    for an address this machine cannot listen on now (a port in use, another machine's address).
    """
    if not host.strip():
        raise UsageError("--host '': give an address (0.0.0.0 listens on every interface)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as gunicorn chooses
    try:
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
    except (socket.gaierror, UnicodeError) as err:
        raise UsageError(f"--host {host[:70]!r} is not an address ({err})") from None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind(address)
    except OSError as err:
        raise HpoError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


def serve(url: str, artifacts: str | None, *, host: str, port: int, hosts: Iterable[str],
          allow_edits: bool = False, workers: int = DEFAULT_WORKERS) -> None:
    """Serve the guarded dashboard with gunicorn on ``host:port`` until SIGINT or SIGTERM."""
    from gunicorn.app.base import BaseApplication

    hosts = frozenset(hosts)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in dict(bind=[bind], workers=workers, worker_class="sync",
                                   timeout=REQUEST_TIMEOUT_S, loglevel="warning",
                                   accesslog=None, proc_name="hpo-dashboard").items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:  # in each worker, after the fork
            return guarded_app(url, artifacts, hosts, allow_edits=allow_edits)

    _Gunicorn().run()
