"""docker-compose.yml, Dockerfile and .env.example: checked statically, then run as processes.

No Docker engine runs on the test machines. So the file is proven two ways:

1. Static: it parses, the rules of the deployment hold (below, one test per rule), and, where a
   compose implementation is installed (``docker compose`` or Debian's ``docker-compose``), its own
   ``config`` validator accepts the file. Only that validator test is ever skipped.
2. Run: each service's command and environment are read from the file, resolved the way compose
   resolves them (with STUDY=a tiny variant of studies/smoke.yaml and a fresh database on the test
   PostgreSQL), and started as processes: ``init`` once, then 16 ``worker`` processes and the
   ``dashboard`` together, until the study has exactly its budget of finished trials, with no
   connection error and at most 2 connections per worker. See tests/_compose_helpers.py for the
   few things mapped from container to host (service host names, volumes, WORKDIR, ports).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import threading
import time
import tomllib
from urllib.parse import urlsplit

import pytest
import yaml
from _compose_helpers import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    HOST_FILE,
    OVERRIDE_FILE,
    REPO,
    REQUIRED,
    ComposeEquivalent,
    MissingVariable,
    dockerfile_args,
    dockerfile_instructions,
    dockerfile_workdir,
    fresh_database,
    http_get,
    interpolate,
    load_compose_raw,
    option_value,
    read_env_file,
    sample_connections,
    service_command,
    service_environment,
    service_mounts,
    service_ports,
    stop,
    variable_defaults,
    wait_http,
)

from hpo.dashboard import DEFAULT_WORKERS as DASHBOARD_PROCESSES

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

HPO_SERVICES = ("init", "worker", "dashboard")
DEFAULT_STUDY = "studies/gaussgan.yaml"
TEST_STUDY = "studies/smoke.yaml"
N_WORKERS = 16             # `--scale worker=16`; each worker process imports torch (~0.5 GB)
SCALE_BUDGET = 24          # more trials than workers, so every worker claims at least one slot
CONNECTION_ERROR = re.compile(r"too many clients|could not connect|connection refused|"
                              r"OperationalError|server closed the connection", re.IGNORECASE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_compose_raw()


# The one variable without a default: compose refuses to start until it is set.
PASSWORD_ONLY = {"POSTGRES_PASSWORD": "set-by-the-user"}


@pytest.fixture(scope="module")
def resolved(raw) -> dict:
    """The file as compose sees it with only the password set: every default applied."""
    return interpolate(raw, PASSWORD_ONLY)


# ---------------------------------------------------------------------------------------------
# Static checks
# ---------------------------------------------------------------------------------------------


def test_services_and_named_volumes(resolved):
    services = resolved["services"]
    assert set(services) == {"db", *HPO_SERVICES}
    declared = set(resolved.get("volumes") or {})
    for name, svc in services.items():
        for mount in service_mounts(svc):
            if mount.is_named_volume:
                assert mount.source in declared, f"{name}: volume {mount.source!r} not declared"


def test_db_is_postgres16_healthchecked_private_with_credentials_from_env(raw, resolved):
    db = resolved["services"]["db"]
    assert db["image"].split("@")[0] in ("postgres:16", "postgres:16-alpine") or \
        db["image"].startswith("postgres:16."), db["image"]
    test = db["healthcheck"]["test"]
    test = " ".join(test) if isinstance(test, list) else test
    assert "pg_isready" in test
    # Over TCP: while the image initialises a new cluster, a temporary server answers on the
    # Unix socket only, and a socket check would let init connect to a server about to restart.
    assert "-h 127.0.0.1" in test or "-h localhost" in test, test
    assert "ports" not in db, "the database must not be published beyond the compose network"
    assert any(m.is_named_volume and m.target == "/var/lib/postgresql/data"
               for m in service_mounts(db)), "the database needs a named volume for its data"
    env = service_environment(raw["services"]["db"])
    for key in ("POSTGRES_USER", "POSTGRES_DB"):
        refs = variable_defaults(env.get(key, ""))
        assert key in refs and refs[key], f"db: {key} should be ${{{key}:-default}}"
    refs = variable_defaults(env.get("POSTGRES_PASSWORD", ""))
    assert refs.get("POSTGRES_PASSWORD") == REQUIRED, "the password must have no default"


@pytest.mark.parametrize("password", [None, ""])
def test_compose_refuses_to_start_without_a_password(raw, password):
    """No working default credentials: unset or empty, compose stops with the README's hint."""
    variables = {} if password is None else {"POSTGRES_PASSWORD": password}
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD.*README"):
        interpolate(raw, variables)
    conf = interpolate(raw, {"POSTGRES_PASSWORD": "chosen"})
    for name in ("db", *HPO_SERVICES):
        env = service_environment(conf["services"][name])
        if name == "db":
            assert env["POSTGRES_PASSWORD"] == "chosen"
        else:
            assert urlsplit(env["HPO_STORAGE"]).password == "chosen"
    assert read_env_file(ENV_EXAMPLE)["POSTGRES_PASSWORD"] == "", \
        ".env.example must not carry a working password"


def test_db_allows_connections_for_128_workers(resolved):
    """Each worker holds at most 2 connections (tests/test_scale_out.py measures it), so
    ``--scale worker=128`` needs 256 besides the dashboard's and init's."""
    argv = service_command(resolved["services"]["db"])
    assert argv[0] == "postgres", argv
    settings = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    assert int(settings["max_connections"]) >= 2 * 128 + 2, settings


def test_only_the_dashboard_is_published_and_only_on_localhost(raw, resolved):
    for name, svc in resolved["services"].items():
        if name != "dashboard":
            assert "ports" not in svc, f"{name} publishes ports"
    ports = service_ports(resolved["services"]["dashboard"])
    assert [(p.host_ip, p.host_port, p.container_port) for p in ports] == \
        [("127.0.0.1", "8080", "8080")]
    # The address is literal, not a variable someone could widen to 0.0.0.0 by accident.
    raw_ports = raw["services"]["dashboard"]["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in raw_ports), raw_ports
    # Published by the override compose reads by itself, never by docker-compose.yml: a host
    # network override could not be layered on a file that publishes a port (issue 19).
    base = interpolate(load_compose_raw(COMPOSE_FILE), PASSWORD_ONLY)
    assert not [n for n, svc in base["services"].items() if "ports" in svc]


def test_host_network_override_puts_every_service_on_the_host_on_localhost_ports():
    """docker-compose.yml + docker-compose.host.yml: host networking, nothing published, the
    database on 127.0.0.1 away from 5432 and the hpo services' storage URL pointing there."""
    variables = {**PASSWORD_ONLY, "DB_PORT": "54999", "DASHBOARD_PORT": "8999"}
    conf = interpolate(load_compose_raw(COMPOSE_FILE, HOST_FILE), variables)
    for name, svc in conf["services"].items():
        assert svc.get("network_mode") == "host", name
        assert "ports" not in svc, f"{name}: a host-network service cannot publish ports"
    db = conf["services"]["db"]
    assert service_environment(db)["PGPORT"] == "54999"
    assert "listen_addresses=127.0.0.1" in service_command(db)
    default_port = variable_defaults(load_compose_raw(HOST_FILE))["DB_PORT"]
    assert default_port != "5432", "the host's own PostgreSQL may listen on 5432"
    for name in HPO_SERVICES:
        url = urlsplit(service_environment(conf["services"][name])["HPO_STORAGE"])
        assert (url.hostname, url.port, url.password) == ("127.0.0.1", 54999, "set-by-the-user")
    argv = service_command(conf["services"]["dashboard"])
    assert (option_value(argv, "--host"), option_value(argv, "--port")) == ("127.0.0.1", "8999")


def test_init_is_one_shot_after_db_is_healthy(resolved):
    init = resolved["services"]["init"]
    assert service_command(init) == ["hpo", "init", DEFAULT_STUDY]
    assert init["depends_on"]["db"]["condition"] == "service_healthy"
    assert str(init.get("restart", "no")) in ("no", "False"), "init runs once"


def test_worker_is_scalable_and_restarts_on_failure_with_one_thread(resolved):
    worker = resolved["services"]["worker"]
    assert service_command(worker) == ["hpo", "worker", DEFAULT_STUDY]
    assert "container_name" not in worker, "a fixed container name prevents --scale"
    assert "ports" not in worker, "a host port prevents --scale"
    assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert str(worker["restart"]).startswith("on-failure")
    # compose stops a service before those it depends on: the database outlives every worker
    # and the dashboard, so `stop` and `down` leave no trial RUNNING (issue 19).
    for name in ("worker", "dashboard"):
        assert resolved["services"][name]["depends_on"]["db"]["condition"] == "service_healthy"
    env = service_environment(worker)
    assert env["HPO_TORCH_THREADS"] == "1"
    assert env["OMP_NUM_THREADS"] == "1"


def test_dashboard_serves_the_same_storage_and_artifacts_as_the_workers(resolved):
    services = resolved["services"]
    dash, worker = services["dashboard"], services["worker"]
    argv = service_command(dash)
    assert argv[:2] == ["hpo", "dashboard"]
    assert option_value(argv, "--host") == "0.0.0.0", "listen on the container's interface"
    assert option_value(argv, "--port") == service_ports(dash)[0].container_port
    dash_env, worker_env = service_environment(dash), service_environment(worker)
    for key in ("HPO_STORAGE", "HPO_ARTIFACTS"):
        assert dash_env[key] == worker_env[key], key
        assert service_environment(services["init"])[key] == worker_env[key], key
    artifacts = worker_env["HPO_ARTIFACTS"]
    shared = [m for m in service_mounts(worker) if m.is_named_volume
              and (artifacts + "/").startswith(m.target.rstrip("/") + "/")]
    assert shared, f"HPO_ARTIFACTS={artifacts} is not on a named volume in worker"
    assert shared[0] in service_mounts(dash), "dashboard must mount the workers' artifact volume"
    assert not shared[0].read_only


@pytest.mark.parametrize("variables", [
    PASSWORD_ONLY,
    {"POSTGRES_USER": "alice", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "search"},
])
def test_storage_url_names_the_db_service_and_its_credentials(raw, variables):
    conf = interpolate(raw, variables)
    db_env = service_environment(conf["services"]["db"])
    for name in HPO_SERVICES:
        url = urlsplit(service_environment(conf["services"][name])["HPO_STORAGE"])
        assert url.scheme == "postgresql+psycopg2"
        assert url.hostname == "db" and (url.port or 5432) == 5432
        assert url.username == db_env["POSTGRES_USER"]
        assert url.password == db_env["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == db_env["POSTGRES_DB"]
    if "POSTGRES_USER" in variables:
        assert db_env["POSTGRES_USER"] == variables["POSTGRES_USER"]


def test_study_selects_the_file_and_defaults_to_gaussgan(raw):
    for name in ("init", "worker"):
        refs = variable_defaults(service_command(raw["services"][name]))
        assert refs.get("STUDY") == DEFAULT_STUDY, f"{name}: ${{STUDY:-{DEFAULT_STUDY}}}"
        conf = interpolate(raw, {**PASSWORD_ONLY, "STUDY": TEST_STUDY})
        assert service_command(conf["services"][name])[-1] == TEST_STUDY
    assert (REPO / DEFAULT_STUDY).is_file()
    assert (REPO / TEST_STUDY).is_file()


def test_hpo_services_share_one_image_built_from_this_repo(resolved):
    images = {resolved["services"][n].get("image") for n in HPO_SERVICES}
    assert len(images) == 1 and None not in images, images
    for name in HPO_SERVICES:
        build = resolved["services"][name].get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), f"{name}: build context {context!r}"


def test_env_example_lists_every_variable_with_the_files_defaults():
    used = variable_defaults(load_compose_raw(COMPOSE_FILE, OVERRIDE_FILE, HOST_FILE))
    example = read_env_file(ENV_EXAMPLE)
    assert set(example) == set(used), f".env.example {sorted(example)} vs file {sorted(used)}"
    for key, default in used.items():
        assert default is not None, f"${{{key}}} has no default in {COMPOSE_FILE.name}"
        if default == REQUIRED:  # to be set by the user: empty in the example
            assert example[key] == "", f"{key}: .env.example must leave it empty"
            continue
        assert example[key] == default, f"{key}: .env.example {example[key]!r}, file {default!r}"


def test_dockerfile_slim_cpu_torch_project_installed_non_root(resolved):
    instructions = dockerfile_instructions()
    args = dockerfile_args(instructions)
    froms = [interpolate(a, args) for i, a in instructions if i == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"

    runs = [interpolate(a, args) for i, a in instructions if i == "RUN"]
    torch_at = next(i for i, a in enumerate(runs) if "torch==" in a)
    torch_run = runs[torch_at].split()
    assert "--index-url" in torch_run
    assert torch_run[torch_run.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    with open(REPO / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    pinned = next(d for d in deps if d.replace(" ", "").startswith("torch=="))
    assert pinned.replace(" ", "") in torch_run, f"image torch must match pyproject's {pinned}"
    project_at = next(i for i, a in enumerate(runs) if "pip install" in a and " ." in f"{a} ")
    assert torch_at < project_at, "install CPU torch before the project, or pip fetches CUDA torch"
    assert "--no-deps" in runs[project_at].split(), "every dependency comes from the lock layer"

    users = [a.split(":")[0] for i, a in instructions if i == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"

    # Study paths given to the CLI are relative to WORKDIR, where studies/ is copied.
    workdir = dockerfile_workdir(instructions)
    copies = [a.split() for i, a in instructions if i == "COPY"]
    assert any(c[0].rstrip("/") == "studies" and c[-1].rstrip("/") in
               ("studies", "./studies", f"{workdir}/studies") for c in copies)
    mounts = service_mounts(resolved["services"]["worker"])
    for m in mounts:
        if not m.is_named_volume and m.source.rstrip("/").endswith("studies"):
            assert m.target == f"{workdir}/studies" and m.read_only


def test_dependencies_come_from_the_lock_in_a_layer_before_the_source():
    """A README or code edit must not re-download the dependencies (issue 19: 35 s, 50 wheels):
    requirements.lock is copied and installed before anything else of the project, and it pins
    every runtime dependency of pyproject.toml (torch has its own, earlier layer)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    steps = [(i, a) for i, a in dockerfile_instructions() if i in ("COPY", "RUN")]
    lock_copy = steps.index(("COPY", "requirements.lock ./"))
    lock_install = next(n for n, (i, a) in enumerate(steps)
                        if i == "RUN" and "-r requirements.lock" in a)
    first_source = next(n for n, (i, a) in enumerate(steps)
                        if i == "COPY" and a != "requirements.lock ./")
    assert lock_copy < lock_install < first_source, steps

    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"requirements.lock: not NAME==VERSION: {line!r}"
            pins[canonicalize_name(name)] = version
    with open(REPO / "pyproject.toml", "rb") as f:
        deps = [Requirement(d) for d in tomllib.load(f)["project"]["dependencies"]]
    for dep in deps:
        key = canonicalize_name(dep.name)
        if key == "torch":
            assert key not in pins, "torch comes from the CPU index layer, not the lock"
            continue
        assert key in pins, f"requirements.lock lacks {dep.name} (run `make lock`)"
        assert dep.specifier.contains(pins[key], prereleases=True), \
            f"requirements.lock pins {dep.name}=={pins[key]}, pyproject wants {dep} (make lock)"


def test_dockerignore_keeps_the_context_small_but_keeps_what_the_dockerfile_copies():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for must in (".git", ".venv", "runs"):
        assert must in patterns, f".dockerignore should exclude {must}"
    copied = [src for i, a in dockerfile_instructions() if i == "COPY"
              for src in a.split()[:-1] if not src.startswith("--")]
    assert copied
    for src in copied:
        src = src.rstrip("/")
        assert (REPO / src).exists(), f"Dockerfile copies missing {src}"
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(src, p)]
        assert not hits, f".dockerignore {hits} drops {src}, which the Dockerfile copies"


def _compose_validator() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.parametrize("files", [(), (COMPOSE_FILE, HOST_FILE)], ids=["default", "host"])
@pytest.mark.parametrize("study", [DEFAULT_STUDY, TEST_STUDY])
def test_compose_validator_accepts_the_file(study, files, tmp_path):
    validator = _compose_validator()
    if validator is None:
        pytest.skip("no compose implementation installed (neither `docker compose` nor Debian's "
                    "`docker-compose`); the static checks above still ran")
    env_file = tmp_path / "env"
    env_file.write_text(ENV_EXAMPLE.read_text() + f"\nSTUDY={study}\nPOSTGRES_PASSWORD=x\n")
    result = subprocess.run(
        [*validator, "--project-directory", str(REPO),
         *[arg for f in files for arg in ("-f", str(f))], "--env-file", str(env_file), "config"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    conf = yaml.safe_load(result.stdout)
    worker = conf["services"]["worker"]
    assert service_command(worker) == ["hpo", "worker", study]
    assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"


# ---------------------------------------------------------------------------------------------
# The compose-equivalent run: init, 8 workers and the dashboard against the real PostgreSQL
# ---------------------------------------------------------------------------------------------


def study_name_and_budget(study_file: str) -> tuple[str, int]:
    with open(REPO / study_file) as f:
        spec = yaml.safe_load(f)
    return spec["name"], int(spec["budget"]["trials"])


def trial_states(url: str, name: str) -> dict[str, int]:
    """Trial counts by state; a FAIL that was retried as another trial is not counted."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counts: dict[str, int] = {}
    for t in trials:
        if t.state.name == "FAIL" and t.number in retried:
            continue
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


@pytest.fixture
def stack(tmp_path):
    """The compose file resolved with STUDY=a tiny smoke variant and a fresh database; every
    process stopped."""
    from conftest import LIGHT_METRIC, study_variant

    study = study_variant(tmp_path, "compose_scale",
                          budget={"trials": SCALE_BUDGET, "steps": 20, "eval_every": 10},
                          metric=LIGHT_METRIC)
    with fresh_database("hpo_compose") as db:
        variables = {"STUDY": str(study), "POSTGRES_USER": "postgres",
                     "POSTGRES_PASSWORD": "trust", "POSTGRES_DB": db}
        ce = ComposeEquivalent(tmp_path, variables)
        try:
            yield ce
        finally:
            ce.stop_all()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_compose_equivalent_run_init_16_workers_and_dashboard(stack: ComposeEquivalent):
    name, budget = study_name_and_budget(stack.variables["STUDY"])
    assert budget == SCALE_BUDGET
    storage = stack.environment("worker")["HPO_STORAGE"]
    assert urlsplit(storage).hostname == "127.0.0.1"
    assert urlsplit(storage).path.lstrip("/") == stack.variables["POSTGRES_DB"]

    # db is "healthy" (PostgreSQL answers); init runs to completion before anything else.
    init = stack.run("init", timeout=180)
    assert init.popen.returncode == 0, f"init failed:\n{init.tail()}"

    # `docker compose up --scale worker=16`: the workers and the dashboard start together.
    counts_seen: list[int] = []
    done = threading.Event()
    sampler = threading.Thread(target=sample_connections,
                               args=(stack.variables["POSTGRES_DB"], done, counts_seen))
    sampler.start()
    try:
        workers = [stack.start("worker", name=f"worker-{i}")[0] for i in range(N_WORKERS)]
        dashboard, published = stack.start("dashboard")
        base = f"http://127.0.0.1:{published['8080']}"

        deadline = time.monotonic() + 330
        answered_while_running = False
        while any(w.popen.poll() is None for w in workers) and time.monotonic() < deadline:
            if not answered_while_running and dashboard.popen.poll() is None:
                try:
                    answered_while_running = http_get(f"{base}/api/studies",
                                                      timeout=2)[0] == 200
                except OSError:
                    pass
            time.sleep(1)
    finally:
        done.set()
        sampler.join()
    running = [w.name for w in workers if w.popen.poll() is None]
    assert not running, f"still running after the deadline: {running}\n{workers[0].tail()}"
    for w in workers:
        assert w.popen.returncode == 0, f"{w.name} exited {w.popen.returncode}:\n{w.tail()}"
        errors = [line for line in w.log.read_text(errors="replace").splitlines()
                  if CONNECTION_ERROR.search(line)]
        assert not errors, f"{w.name}: {errors[:3]}"
    # 2 per worker (pool of one + budget lock), and one pooled connection for each of the
    # dashboard's gunicorn worker processes (each opens its own storage after the fork).
    bound = 2 * N_WORKERS + DASHBOARD_PROCESSES
    assert counts_seen and max(counts_seen) <= bound, (max(counts_seen), bound)

    counts = trial_states(storage, name)
    finished = sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))
    assert finished == budget, f"budget {budget}, trials by state {counts}"
    assert counts.get("RUNNING", 0) == 0 and counts.get("WAITING", 0) == 0, counts
    assert counts.get("COMPLETE", 0) >= 1, counts

    # The dashboard: up the whole time, and it shows this study, its reports and its images.
    assert dashboard.popen.poll() is None, f"dashboard exited:\n{dashboard.tail()}"
    wait_http(f"{base}/api/studies", timeout=60, proc=dashboard.popen)
    assert answered_while_running, "the dashboard did not answer while the workers ran"
    status, body = http_get(f"{base}/dashboard")
    assert status == 200 and b"<html" in body.lower()
    summaries = json.loads(http_get(f"{base}/api/studies")[1])["study_summaries"]
    study_id = next(s["study_id"] for s in summaries if s["study_name"] == name)
    detail = json.loads(http_get(f"{base}/api/studies/{study_id}?after=0", timeout=30)[1])
    trials = detail["trials"]
    assert len(trials) >= budget
    assert any(t["intermediate_values"] for t in trials), "no trial reported intermediate values"
    images = [(t["trial_id"], a["artifact_id"]) for t in trials for a in t["artifacts"]
              if a["mimetype"] == "image/png"]
    assert images, "no trial has a PNG artifact"
    trial_id, artifact_id = images[0]
    status, png = http_get(f"{base}/artifacts/{study_id}/{trial_id}/{artifact_id}")
    assert status == 200 and png.startswith(PNG_SIGNATURE), "artifact not served from the volume"

    # README: `docker compose exec -T dashboard hpo export NAME --top 3 > best.yaml`.
    out = stack.tmp / "best.yaml"
    export = stack.run("dashboard", name="export", timeout=120, stdout=out,
                       extra_argv=["hpo", "export", name, "--top", "3"])
    assert export.popen.returncode == 0, f"export failed:\n{export.tail()}"
    configs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert 1 <= len(configs) <= 3, f"export wrote {len(configs)} configs"
    assert all(c["study"] == name for c in configs), configs

    # A second `docker compose up`: init is idempotent and a worker finds the budget met.
    again = stack.run("init", name="init-again", timeout=120)
    assert again.popen.returncode == 0, f"second init failed:\n{again.tail()}"
    late = stack.run("worker", name="worker-late", timeout=120)
    assert late.popen.returncode == 0, f"late worker failed:\n{late.tail()}"
    assert trial_states(storage, name) == counts, "a worker ran trials past the budget"

    stop(dashboard)
