"""`hpo dashboard` over real HTTP: read-only unless --allow-edits, only for its own Host names.

The server is the real command (gunicorn in front of optuna-dashboard behind hpo's guard) on a
journal storage with two studies; requests go through http.client or a raw socket, so the Host
and Origin headers are exactly what a hostile page or a DNS-rebinding attack would send.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.conftest import hpo_cmd, hpo_env

pytestmark = pytest.mark.e2e  # the real `hpo dashboard` in a process of its own


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _journal_with_studies(folder: Path) -> Path:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = folder / "hpo.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    for name in ("keep", "other"):
        study = optuna.create_study(study_name=name, storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return path


def request(port: int, method: str, path: str, host: str | None = None,
            headers: dict[str, str] | None = None, body: bytes | None = None
            ) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def raw_without_host(port: int) -> int:
    """An HTTP/1.0 request with no Host header at all: its status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /api/studies HTTP/1.0\r\n\r\n")
        head = s.recv(64).decode("latin-1")
    return int(head.split()[1])


def study_names(port: int) -> list[str]:
    status, body, _ = request(port, "GET", "/api/studies")
    assert status == 200, body
    return sorted(s["study_name"] for s in json.loads(body)["study_summaries"])


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    return _journal_with_studies(tmp_path_factory.mktemp("guard"))


def _start(journal: Path, *extra: str, host: str = "127.0.0.1") -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        hpo_cmd("dashboard", "--storage", str(journal), "--host", host, "--port", str(port),
                "--artifacts", str(journal.parent / "artifacts"), *extra),
        cwd=journal.parent, env=hpo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            request(port, "GET", "/api/studies")
            return proc, port
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    raise AssertionError("the dashboard did not answer within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def read_only(journal: Path) -> Iterator[int]:
    proc, port = _start(journal, "--allowed-host", "dash.lab.example")
    try:
        yield port
    finally:
        _stop(proc)


MUTATIONS = [
    ("DELETE", "/api/studies/0", None),
    ("POST", "/api/studies", b'{"study_name": "new", "directions": ["minimize"]}'),
    ("POST", "/api/studies/0/rename", b'{"study_name": "renamed"}'),
    ("PUT", "/api/studies/0/note", b'{"version": 1, "body": "defaced"}'),
    ("PATCH", "/api/studies/0", b"{}"),
    ("POST", "/api/trials/0/user-attrs", b'{"user_attrs": {"x": 1}}'),
]


@pytest.mark.parametrize("method,path,body", MUTATIONS)
def test_mutating_requests_are_403_by_default(read_only: int, method: str, path: str,
                                              body: bytes | None) -> None:
    before = study_names(read_only)
    status, text, _ = request(read_only, method, path, body=body)
    assert status == 403, (status, text)
    assert b"read-only" in text and b"--allow-edits" in text
    assert study_names(read_only) == before == ["keep", "other"]


def test_reads_are_served_by_gunicorn_for_the_bound_names(read_only: int) -> None:
    for host in (f"127.0.0.1:{read_only}", f"localhost:{read_only}", "localhost",
                 f"LOCALHOST.:{read_only}", f"dash.lab.example:{read_only}"):
        status, body, headers = request(read_only, "GET", "/api/studies", host=host)
        assert status == 200, (host, body)
    status, body, headers = request(read_only, "GET", "/dashboard")
    assert status == 200 and b"<html" in body.lower()
    assert "gunicorn" in headers.get("Server", "").lower(), headers


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example",
    "attacker.test:80", "", "[::2]:8080", "dash.lab.example.evil",
])
def test_foreign_host_header_is_refused(read_only: int, host: str) -> None:
    status, body, _ = request(read_only, "GET", "/api/studies", host=host)
    assert status == 403, (host, status, body)
    assert b"not a name of this dashboard" in body
    status, _, _ = request(read_only, "DELETE", "/api/studies/0", host=host)
    assert status == 403


def test_request_without_host_is_refused(read_only: int) -> None:
    assert raw_without_host(read_only) == 403


def test_allow_edits_lets_mutations_through_but_not_foreign_hosts(journal: Path,
                                                                   tmp_path: Path) -> None:
    copy = tmp_path / "hpo.journal"
    copy.write_bytes(journal.read_bytes())
    proc, port = _start(copy, "--allow-edits")
    try:
        assert study_names(port) == ["keep", "other"]
        studies = json.loads(request(port, "GET", "/api/studies")[1])["study_summaries"]
        other = next(s["study_id"] for s in studies if s["study_name"] == "other")
        # Still no foreign Host, and no cross-site origin, even with edits allowed.
        assert request(port, "DELETE", f"/api/studies/{other}", host="evil.example")[0] == 403
        assert request(port, "DELETE", f"/api/studies/{other}",
                       headers={"Origin": "http://evil.example"})[0] == 403
        assert study_names(port) == ["keep", "other"]
        status, body, _ = request(port, "DELETE", f"/api/studies/{other}",
                                  headers={"Origin": f"http://127.0.0.1:{port}"})
        assert status in (200, 204), (status, body)
        assert study_names(port) == ["keep"]
    finally:
        _stop(proc)


def test_bound_to_every_interface_answers_this_machines_names(journal: Path) -> None:
    proc, port = _start(journal, host="0.0.0.0")
    try:
        for host in (socket.gethostname(), f"127.0.0.1:{port}"):
            assert request(port, "GET", "/api/studies", host=host)[0] == 200, host
        assert request(port, "GET", "/api/studies", host="evil.example")[0] == 403
        assert request(port, "DELETE", "/api/studies/0", host=socket.gethostname())[0] == 403
    finally:
        _stop(proc)


def test_a_port_in_use_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    """gunicorn, left to find out, printed 6-11 lines of its retries."""
    journal = _journal_with_studies(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(hpo_cmd("dashboard", "--storage", str(journal), "--port",
                                        str(port)), env=hpo_env(), capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and "Address already in use" in result.stderr, result
    assert "Traceback" not in result.stderr and result.stdout == "", result
