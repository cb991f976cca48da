"""Workers on several hosts: artifacts in a real S3-compatible server, and a worker's footprint.

One real ``hpo worker`` process runs a small study on a fresh database of the test PostgreSQL with
``HPO_ARTIFACTS=s3://bucket/prefix``, against moto's S3 server started here on 127.0.0.1. While
it runs, the worker's own sockets to the server are sampled (and ``pg_stat_activity`` for that
database beside them): a worker holds at most two connections (one pooled, one for the budget
lock), which is what lets hundreds of workers share one server (docs/scaling.md). Then
``hpo dashboard``, given the same environment, serves the trial's PNG out of the bucket.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from _compose_helpers import (
    Proc,
    free_port,
    http_get,
    sample_connections,
    stop,
    tcp_connections_of,
    wait_http,
)
from conftest import hpo_cmd, hpo_env, run_hpo, study_variant

from hpo.artifacts import PrefixedArtifactStore, parse_s3_url
from hpo.errors import UsageError

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BUCKET, PREFIX = "hpo-artifacts", "studies/scale"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRIALS = 3


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free port of 127.0.0.1, with an empty bucket; stopped afterwards."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "hpo-test-key",
           "AWS_SECRET_ACCESS_KEY": f"secret-{uuid.uuid4().hex}"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                          region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket=BUCKET)
    try:
        yield env, client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def worker_run(module_pg_url, s3_server, tmp_path_factory):
    """init, then one real worker with S3 artifacts while its connections are sampled."""
    env_s3, _ = s3_server
    tmp = tmp_path_factory.mktemp("scale_out")
    name = f"scale_{uuid.uuid4().hex[:8]}"
    study = study_variant(tmp, name, budget={"trials": TRIALS, "steps": 20, "eval_every": 10})
    env = dict(env_s3, HPO_STORAGE=module_pg_url, HPO_ARTIFACTS=f"s3://{BUCKET}/{PREFIX}")
    init = run_hpo("init", str(study), cwd=tmp, **env)
    assert init.returncode == 0, init.stderr

    database = module_pg_url.rsplit("/", 1)[1]
    sessions: list[int] = []
    done = threading.Event()
    sampler = threading.Thread(target=sample_connections, args=(database, done, sessions, 0.02))
    sampler.start()
    proc = subprocess.Popen(hpo_cmd("worker", str(study)), cwd=tmp, env=hpo_env(**env),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    held: list[int] = []  # the worker's own sockets to the server, sampled beside
    watcher = threading.Thread(target=_sample_held, args=(proc, done, held))
    watcher.start()
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
        done.set()
        sampler.join()
        watcher.join()
    worker = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return {"name": name, "env": env, "tmp": tmp, "worker": worker, "sessions": sessions,
            "held": held, "url": module_pg_url}


def _sample_held(proc: subprocess.Popen, done: threading.Event, held: list[int]) -> None:
    port = 5432  # the test PostgreSQL (conftest.pg_url: 127.0.0.1:5432)
    while not done.is_set() and proc.poll() is None:
        with contextlib.suppress(OSError):  # the process ended between poll and read
            held.append(tcp_connections_of(proc.pid, port))
        done.wait(0.02)


def test_a_worker_holds_at_most_two_postgres_connections(worker_run):
    """What the worker holds is counted from its own sockets (/proc); the server's session
    count, sampled beside, also lists sessions the worker closed until their backends exit."""
    worker = worker_run["worker"]
    assert worker.returncode == 0, worker.stderr
    held, sessions = worker_run["held"], worker_run["sessions"]
    assert len(held) >= 20, f"only {len(held)} samples of the worker's sockets"
    assert max(sessions) >= 1, "the server never saw the worker's connections"
    assert max(held) >= 1, "the sampler never saw the worker's connections"
    assert max(held) <= 2, f"peak {max(held)} connections held by one worker"


def test_worker_artifacts_go_to_s3_and_the_dashboard_serves_them(worker_run, s3_server):
    import optuna

    _, client = s3_server
    assert worker_run["worker"].returncode == 0, worker_run["worker"].stderr
    trials = optuna.load_study(study_name=worker_run["name"],
                               storage=worker_run["url"]).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == TRIALS
    ids = [t.user_attrs["samples_png"] for t in finished if "samples_png" in t.user_attrs]
    assert ids, "no trial recorded a sample plot"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/")
            .get("Contents", [])}
    for artifact_id in ids:
        key = f"{PREFIX}/{artifact_id}"
        assert key in keys, f"{key} not in the bucket ({sorted(keys)})"
        assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read().startswith(PNG_SIGNATURE)
    assert not (worker_run["tmp"] / "runs" / "artifacts").exists(), "artifacts also went to disk"

    # The dashboard, given the same environment, reads the PNG back out of the bucket.
    port = free_port()
    log = worker_run["tmp"] / "dashboard.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(hpo_cmd("dashboard", "--port", str(port)),
                                 cwd=worker_run["tmp"], env=hpo_env(**worker_run["env"]),
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    dashboard = Proc("dashboard", popen, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/studies", timeout=90, proc=popen)
        summaries = json.loads(http_get(f"{base}/api/studies")[1])["study_summaries"]
        study_id = next(s["study_id"] for s in summaries if s["study_name"] == worker_run["name"])
        detail = json.loads(http_get(f"{base}/api/studies/{study_id}?after=0", timeout=30)[1])
        served = [(t["trial_id"], a["artifact_id"]) for t in detail["trials"]
                  for a in t["artifacts"] if a["mimetype"] == "image/png"]
        assert {a for _, a in served} >= set(ids)
        trial_id, artifact_id = served[0]
        status, png = http_get(f"{base}/artifacts/{study_id}/{trial_id}/{artifact_id}")
        assert status == 200 and png.startswith(PNG_SIGNATURE)
    finally:
        stop(dashboard)
    output = log.read_text() + worker_run["worker"].stderr + worker_run["worker"].stdout
    assert f"s3://{BUCKET}/{PREFIX}" in log.read_text(), "the dashboard names its artifact store"
    assert worker_run["env"]["AWS_SECRET_ACCESS_KEY"] not in output, "a secret was printed"


@pytest.mark.parametrize("location", ["s3://", "s3:///prefix", "s3://bucket/p?x=1"])
def test_a_malformed_s3_location_is_a_usage_error(location):
    with pytest.raises(UsageError, match="s3://bucket"):
        parse_s3_url(location)


def test_bad_artifact_location_is_one_line_and_exit_status_2(tmp_path: Path):
    result = run_hpo("dashboard", "--artifacts", "s3://", "--port", str(free_port()),
                     cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "s3://bucket" in result.stderr, result.stderr


def test_prefixed_store_keys_every_artifact_under_its_prefix():
    class Recorder:
        def __init__(self):
            self.calls = []

        def write(self, key, body):
            self.calls.append(("write", key))

        def open_reader(self, key):
            self.calls.append(("read", key))

        def remove(self, key):
            self.calls.append(("remove", key))

    inner = Recorder()
    store = PrefixedArtifactStore(inner, "/a/b/")  # type: ignore[arg-type]
    store.write("id1", None)  # type: ignore[arg-type]
    store.open_reader("id1")
    store.remove("id1")
    assert inner.calls == [("write", "a/b/id1"), ("read", "a/b/id1"), ("remove", "a/b/id1")]


def test_status_lists_the_worker_with_its_last_heartbeat(worker_run):
    import re
    import socket

    assert worker_run["worker"].returncode == 0, worker_run["worker"].stderr
    result = run_hpo("status", worker_run["name"], cwd=worker_run["tmp"], timeout=120,
                     **worker_run["env"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "workers: 1" in out, out
    host = socket.gethostname()
    row = next(line for line in out.splitlines() if line.startswith(f"{host}:"))
    # worker id (host:pid:token), host, finished trials, none running, heartbeat age from the DB
    match = re.fullmatch(rf"{re.escape(host)}:\d+:[0-9a-f]{{8}}\s+{re.escape(host)}\s+(\d+)\s+-\s+"
                         r"(\d+) s ago",
                         row.strip())
    assert match, row
    assert int(match[1]) == TRIALS
    assert 0 <= int(match[2]) < 300, row

