"""Run docker-compose.yml's services as local processes, the way compose would run them.

No Docker engine runs on the test machines, so the compose tests read each service's command and
environment from the file itself (after the Dockerfile's ENV), resolve ``${VAR:-default}`` the way
compose does, and start the same commands as processes. What a container would see differently is
mapped explicitly and nowhere else:

- the host name of another service (``db``) -> 127.0.0.1, where the test PostgreSQL listens;
- a named volume's mount point (``/data/artifacts``) -> one directory per volume under tmp_path,
  shared by every service that mounts it, as the volume is;
- the image's WORKDIR -> the repository root (the image copies studies/ there, and compose
  bind-mounts ./studies over it);
- a published port ``HOST_IP:HOST:CONTAINER`` -> a free port on 127.0.0.1, patched into the
  command's ``--port``/``--host``, since all processes share one network namespace here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from tests.conftest import hpo_env

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
OVERRIDE_FILE = REPO / "docker-compose.override.yml"  # compose reads it unless -f names files
HOST_FILE = REPO / "docker-compose.host.yml"          # host networking, layered with -f
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
VENV_BIN = Path(sys.executable).parent  # the venv whose pytest runs us; it holds `hpo`

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"

# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is not set: compose refuses to start."""


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Resolve compose variables in every string of ``value`` (dicts, lists, scalars).

    Supports what compose supports for defaults: ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (default
    when unset or empty), ``${VAR-default}`` (default when unset), ``${VAR:?message}`` and
    ``${VAR?message}`` (required: :class:`MissingVariable` when unset, or empty for ``:?``) and
    ``$$`` for a literal ``$``. Unset variables without a default resolve to "" as in compose.
    Anything else is an error.
    """
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        if m["named"]:
            return variables.get(m["named"], "")
        if m["braced"]:
            name, op = m["braced"], m["op"]
            if op == ":-":
                return variables.get(name) or m["default"]
            if op == "-":
                return variables[name] if name in variables else m["default"]
            if op == ":?" and not variables.get(name) or op == "?" and name not in variables:
                raise MissingVariable(f"required variable {name} is not set: {m['default']}")
            if op in (":?", "?"):
                return variables[name]
            return variables.get(name, "")
        raise ValueError(f"unsupported variable syntax in {value!r}")

    return _VAR.sub(one, value)


REQUIRED = "<required>"


def variable_defaults(value: Any) -> dict[str, str | None]:
    """Every variable ``value`` refers to, with its ``:-`` default (None when it has none, and
    :data:`REQUIRED` for a ``:?`` variable that must be set)."""
    found: dict[str, str | None] = {}
    if isinstance(value, dict):
        for v in value.values():
            found.update(variable_defaults(v))
    elif isinstance(value, list):
        for v in value:
            found.update(variable_defaults(v))
    elif isinstance(value, str):
        for m in _VAR.finditer(value):
            name = m["braced"] or m["named"]
            if name:
                found[name] = (REQUIRED if m["op"] in (":?", "?") else m["default"]
                               if m["op"] else None)
    return found


def load_compose_raw(*files: Path) -> dict[str, Any]:
    """The compose files as parsed YAML (anchors and merge keys resolved), not interpolated,
    merged the way compose merges them: by default docker-compose.yml and
    docker-compose.override.yml, as a plain ``compose up`` reads them."""
    merged: dict[str, Any] = {}
    for path in files or (COMPOSE_FILE, OVERRIDE_FILE):
        with open(path) as f:
            merged = merge_compose(merged, yaml.safe_load(f))
    return merged


_CONCATENATED = {"ports", "expose"}


def merge_compose(base: Any, over: Any, key: str = "") -> Any:
    """``over`` layered on ``base`` as compose does for what these files use: mappings merge
    key by key, ``ports`` add up, any other value (a command, a list of volumes) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge_compose(base[k], v, k) if k in base else v
        return out
    if key in _CONCATENATED and isinstance(base, list) and isinstance(over, list):
        return base + [p for p in over if p not in base]
    return over


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, val = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        out[key.strip()] = val.strip().strip("'\"")
    return out


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined."""
    joined, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    out = []
    for line in joined:
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), " ".join(args.split())))
    return out


def dockerfile_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Build arguments and their defaults (``ARG NAME=default``; "" without one)."""
    out: dict[str, str] = {}
    for instr, args in instructions:
        if instr == "ARG":
            name, _, default = args.partition("=")
            out[name] = default.strip('"')
    return out


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The image environment set by ENV instructions (``KEY=VALUE ...`` form)."""
    env: dict[str, str] = {}
    for instr, args in instructions:
        if instr == "ENV":
            for item in shlex.split(args):
                key, sep, val = item.partition("=")
                assert sep, f"Dockerfile: use ENV KEY=VALUE, got {args!r}"
                env[key] = val
    return env


def dockerfile_workdir(instructions: list[tuple[str, str]]) -> str:
    workdirs = [args for instr, args in instructions if instr == "WORKDIR"]
    assert workdirs, "Dockerfile sets no WORKDIR"
    return workdirs[-1]


def service_command(service: Mapping[str, Any]) -> list[str]:
    """A service's command as argv (compose accepts a list or a shell-style string)."""
    cmd = service.get("command")
    assert cmd, "service has no command"
    return list(cmd) if isinstance(cmd, list) else shlex.split(cmd)


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the ``- KEY=VALUE`` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@dataclass(frozen=True)
class Mount:
    source: str  # named volume, or a host path starting with . or /
    target: str
    read_only: bool

    @property
    def is_named_volume(self) -> bool:
        return not self.source.startswith((".", "/", "~"))


def service_mounts(service: Mapping[str, Any]) -> list[Mount]:
    mounts = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict):  # long syntax
            mounts.append(Mount(item["source"], item["target"], bool(item.get("read_only"))))
            continue
        parts = item.split(":")
        assert len(parts) in (2, 3), f"volume {item!r}: expected SOURCE:TARGET[:MODE]"
        mode = parts[2] if len(parts) == 3 else "rw"
        mounts.append(Mount(parts[0], parts[1], "ro" in mode.split(",")))
    return mounts


@dataclass(frozen=True)
class Published:
    host_ip: str
    host_port: str
    container_port: str


def service_ports(service: Mapping[str, Any]) -> list[Published]:
    out = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            out.append(Published(str(item.get("host_ip", "")), str(item.get("published", "")),
                                 str(item["target"])))
            continue
        spec = str(item).split("/")[0]
        parts = spec.split(":")
        if len(parts) == 3:
            out.append(Published(*parts))
        elif len(parts) == 2:
            out.append(Published("", parts[0], parts[1]))
        else:
            out.append(Published("", "", parts[0]))
    return out


def option_value(argv: list[str], option: str) -> str | None:
    """The value of ``--option VALUE`` or ``--option=VALUE`` in argv, else None."""
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def set_option(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == option:
            out[i + 1] = value
            return out
        if arg.startswith(option + "="):
            out[i] = f"{option}={value}"
            return out
    return out + [option, value]


# ---------------------------------------------------------------------------------------------
# Machine resources: ports, databases, processes
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_connection():
    import psycopg2

    try:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                connect_timeout=10)
    except psycopg2.OperationalError as e:  # pragma: no cover - environment problem
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER} (trust auth); "
            f".ci/run starts it. ({e})"
        ) from e
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """Create a uniquely named, empty database and drop it (connections and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def sample_connections(database: str, done: threading.Event, counts: list[int],
                       every_s: float = 0.05) -> None:
    """Until ``done`` is set, append how many sessions ``database`` has (from pg_stat_activity).

    Run it in a thread beside the processes under test; the sampler's own session is on the
    ``postgres`` database, so it is never counted.
    """
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            while not done.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                            (database,))
                counts.append(cur.fetchone()[0])
                done.wait(every_s)
    finally:
        conn.close()


def tcp_connections_of(pid: int, port: int) -> int:
    """How many TCP connections to ``port`` process ``pid`` holds open (ESTABLISHED), read from
    /proc: what the process itself holds. ``pg_stat_activity`` also lists a session whose client
    has closed it until its backend exits, which on a loaded host came after the process had
    opened its next connection (a peak of 3 in CI where the worker never held more than 2).

    Distinct sockets are counted, not lines: the kernel writes /proc/net/tcp a page per read,
    resuming by position, so while other processes open and close sockets a read can show a
    line twice (19 of 3031 reads beside two threads churning connections, 2026-12-05); counting
    lines once reported a peak of 4, each of the worker's 2 sockets twice, in CI."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    held = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()  # sl local remote state ... uid timeout inode
            if (int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01"
                    and fields[9] in inodes):
                held.add(fields[9])
    return len(held)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers 200 (fail early if ``proc``, the server, has exited)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with status {proc.returncode} before {url} "
                                 "answered")
        try:
            status, _ = http_get(url, timeout=2.0)
            if status == 200:
                return
            last = status
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {timeout:.0f}s (last: {last})")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 25) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def stop(proc: Proc, grace: float = 10.0) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it is still there."""
    p = proc.popen
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while children it forked linger in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(5)


# ---------------------------------------------------------------------------------------------
# The compose-equivalent run
# ---------------------------------------------------------------------------------------------


@dataclass
class ComposeEquivalent:
    """docker-compose.yml's services, resolved with ``variables``, run as local processes."""

    tmp: Path
    variables: dict[str, str]
    compose: dict[str, Any] = field(init=False)
    image_env: dict[str, str] = field(init=False)
    workdir: str = field(init=False)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.compose = interpolate(load_compose_raw(), self.variables)
        instructions = dockerfile_instructions()
        self.image_env = dockerfile_env(instructions)
        self.workdir = dockerfile_workdir(instructions).rstrip("/")
        (self.tmp / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def services(self) -> dict[str, Any]:
        return self.compose["services"]

    def volume_dir(self, name: str) -> Path:
        d = self.tmp / "volumes" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _map_path(self, value: str, mounts: list[Mount]) -> str:
        """A container path -> the host path that plays its part here."""
        # Longest mount target first, so /app/studies wins over /app.
        for m in sorted(mounts, key=lambda m: len(m.target), reverse=True):
            if value == m.target or value.startswith(m.target.rstrip("/") + "/"):
                rest = value[len(m.target):].lstrip("/")
                base = self.volume_dir(m.source) if m.is_named_volume else (REPO / m.source)
                return str((base / rest).resolve()) if rest else str(base.resolve())
        if value == self.workdir or value.startswith(self.workdir + "/"):
            return str(REPO / value[len(self.workdir):].lstrip("/"))
        return value

    def _map_hosts(self, value: str) -> str:
        """URLs naming another compose service as host -> 127.0.0.1 (same port)."""
        if "://" not in value:
            return value
        parts = urlsplit(value)
        if parts.hostname in self.services:
            netloc = parts.netloc.replace(f"@{parts.hostname}", "@127.0.0.1", 1)
            if netloc == parts.netloc:  # no user info
                netloc = netloc.replace(parts.hostname, "127.0.0.1", 1)
            return urlunsplit(parts._replace(netloc=netloc))
        return value

    def environment(self, service: str) -> dict[str, str]:
        """What the service's process sees: image ENV, then the service's environment, mapped."""
        svc = self.services[service]
        mounts = service_mounts(svc)
        env = hpo_env()
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        for key, val in {**self.image_env, **service_environment(svc)}.items():
            if key.startswith("PIP_"):
                continue
            env[key] = self._map_hosts(self._map_path(val, mounts))
        return env

    def argv(self, service: str) -> tuple[list[str], dict[str, int]]:
        """The service's command, mapped; and its published container ports -> host ports."""
        svc = self.services[service]
        mounts = service_mounts(svc)
        argv = [self._map_path(a, mounts) for a in service_command(svc)]
        published: dict[str, int] = {}
        for p in service_ports(svc):
            host_port = free_port()
            published[p.container_port] = host_port
            if option_value(argv, "--port") == p.container_port:
                argv = set_option(argv, "--port", str(host_port))
            if option_value(argv, "--host") in ("0.0.0.0", "::"):
                argv = set_option(argv, "--host", "127.0.0.1")
        return argv, published

    def start(self, service: str, *, name: str | None = None, extra_argv: list[str] | None = None,
              stdout: Path | None = None) -> tuple[Proc, dict[str, int]]:
        """Start a service's command (or ``extra_argv`` in its environment, like ``compose exec``).

        Output goes to tmp/logs/NAME.log; with ``stdout``, standard output goes there instead.
        """
        argv, published = self.argv(service)
        if extra_argv is not None:
            argv = extra_argv
        name = name or service
        log = self.tmp / "logs" / f"{name}.log"
        with open(log, "wb") as err, open(stdout or os.devnull, "wb") as out:
            popen = subprocess.Popen(argv, cwd=REPO, env=self.environment(service),
                                     stdin=subprocess.DEVNULL,
                                     stdout=out if stdout else err, stderr=err,
                                     start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc, published

    def run(self, service: str, *, name: str | None = None, timeout: float = 120.0,
            extra_argv: list[str] | None = None, stdout: Path | None = None) -> Proc:
        """Run a one-shot service (or a command in a service's context) to completion."""
        proc, _ = self.start(service, name=name, extra_argv=extra_argv, stdout=stdout)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            raise AssertionError(f"{proc.name} ran past {timeout:.0f}s:\n{proc.tail()}") from None
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)

