"""No database password in any printed line, log line or process argument list.

On the real PostgreSQL: a role of our own with a password (the server's trust authentication
still lets it in; the URL carries the password either way), a database it owns, and a real
`hpo run` with 2 workers given the URL through HPO_STORAGE. While it runs, every process's
argument list is read (`ps`) again and again; afterwards every printed line, every worker log and
the output of every other command that takes the URL (init, worker, status, export, report of
an unreachable server, a dashboard start) is searched for the password. The server's
configuration is never changed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.conftest import LIGHT_METRIC, _admin, hpo_cmd, hpo_env, run_hpo, study_variant

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PASSWORD = f"pw{uuid.uuid4().hex}"


@pytest.fixture
def secret_url(postgres: sqlalchemy.Engine) -> Iterator[str]:
    """A database owned by a fresh role with a password; both dropped afterwards."""
    role = f"hpo_pw_{uuid.uuid4().hex[:10]}"
    db = f"hpo_test_pw_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{db}" OWNER {role}'))
    try:
        yield f"postgresql+psycopg2://{role}:{PASSWORD}@127.0.0.1:5432/{db}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))


def _ps() -> str:
    return subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True,
                          timeout=30).stdout


@pytest.mark.slow
@pytest.mark.e2e
def test_no_password_in_ps_output_or_logs(secret_url: str, tmp_path: Path) -> None:
    with sqlalchemy.create_engine(secret_url, poolclass=sqlalchemy.pool.NullPool).connect() as c:
        assert c.execute(sqlalchemy.text("SELECT current_user")).scalar().startswith("hpo_pw_")

    # studies/smoke.yaml scored as cheaply as a study file allows: what is checked here is
    # every line and argument list the run shows, not the values it finds.
    smoke = str(study_variant(tmp_path, "smoke", metric=LIGHT_METRIC))
    run_log = tmp_path / "run.out"
    with open(run_log, "w") as out:
        run = subprocess.Popen(hpo_cmd("run", smoke, "--workers", "2"), cwd=tmp_path,
                               env=hpo_env(HPO_STORAGE=secret_url), stdout=out,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
        snapshots, saw_workers = [], False
        try:
            deadline = time.monotonic() + 400
            while run.poll() is None and time.monotonic() < deadline:
                listing = _ps()
                snapshots.append(listing)
                saw_workers |= listing.count(" worker ") >= 2 and "hpo" in listing
                time.sleep(0.2)
        finally:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
                run.wait(120)
    printed = run_log.read_text()
    assert run.returncode == 0, printed
    assert saw_workers, "the workers were never seen in ps"
    for listing in snapshots:
        assert PASSWORD not in listing, "the password is in a process's arguments"
    assert PASSWORD not in printed, printed
    assert "***" in printed, "the storage URL should be shown with its password hidden"
    logs = sorted((tmp_path / "runs" / "logs").glob("*.log"))
    assert len(logs) >= 2
    for log in logs:
        text = log.read_text()
        assert "trial" in text, log
        assert PASSWORD not in text, log

    # Every other command that takes the URL: no password in what it prints.
    port_1 = secret_url.replace("127.0.0.1:5432", "127.0.0.1:1")
    outputs = [
        run_hpo("init", smoke, cwd=tmp_path, HPO_STORAGE=secret_url),
        run_hpo("worker", smoke, cwd=tmp_path, HPO_STORAGE=secret_url, timeout=120),
        run_hpo("status", cwd=tmp_path, HPO_STORAGE=secret_url),
        run_hpo("status", "smoke", cwd=tmp_path, HPO_STORAGE=secret_url),
        run_hpo("export", "smoke", "--out", str(tmp_path / "best.yaml"), cwd=tmp_path,
                HPO_STORAGE=secret_url),
        run_hpo("status", cwd=tmp_path, HPO_STORAGE=port_1),  # unreachable: error message
        run_hpo("status", cwd=tmp_path, HPO_STORAGE=secret_url.replace("5432", "x5")),
        run_hpo("status", cwd=tmp_path, HPO_STORAGE=secret_url.rsplit("/", 1)[0] + "/"),
    ]
    for result in outputs:
        text = result.stdout + result.stderr
        assert PASSWORD not in text, (result.args, text)
    assert [r.returncode for r in outputs] == [0, 0, 0, 0, 0, 1, 2, 2], \
        [(r.args[3:], r.returncode, r.stderr) for r in outputs]
    assert PASSWORD not in (tmp_path / "best.yaml").read_text()

    # The dashboard's start line (read while it serves), then stopped.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dash = subprocess.Popen(hpo_cmd("dashboard", "--port", str(port)),
                            cwd=tmp_path, env=hpo_env(HPO_STORAGE=secret_url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        first = dash.stdout.readline()
        assert "***" in first and PASSWORD not in first, first
        assert PASSWORD not in _ps()
    finally:
        os.killpg(dash.pid, signal.SIGTERM)
        rest = dash.communicate(timeout=60)[0]
    assert PASSWORD not in rest
