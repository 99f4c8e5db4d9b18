"""The Docker backend on a real engine: the stack, a sale, the failure labs and notebooks in containers.

The module starts its own dockerd (tests/docker_engine.py: own socket, data
root and containerd namespace; root on Linux only) and runs the stand-in images
built from Debian packages through docker-compose.yml, selected with the same
SECKILL_*_IMAGE variables a learner sets for a registry mirror. Everything runs
with SECKILL_BACKEND=docker, on ports of its own (the test slot's ports + 50,
next to the native test stack of the same run) and in its own Compose project.
Where dockerd cannot run, every test here skips with one line saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis
import yaml

import docker_engine
from conftest import BURST_LIMITS, TEST_ENV

from seckill.measure import burst, invariants
from seckill import chaos, stack
from seckill.stack import docker_backend
from seckill.system import tiers
from seckill.config import settings
from seckill.system.sale import create_sale

REPO = Path(__file__).resolve().parent.parent
SECKILL = str(REPO / ".venv" / "bin" / "seckill")
WHY_NOT = docker_engine.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

PORT_VARIABLES = ("SECKILL_REDIS_PORT", "SECKILL_POSTGRES_PORT", "SECKILL_AMQP_PORT", "SECKILL_RABBITMQ_DIST_PORT",
                  "SECKILL_EPMD_PORT", "SECKILL_GATEWAY_PORT", "SECKILL_NGINX_PORT",
                  "SECKILL_REDIS_REPLICA_PORT", "SECKILL_SENTINEL_PORT")


def docker_env() -> dict[str, str]:
    """The native test stack's settings moved by 50 ports, with the docker backend and its own run dir."""
    env = {name: str(int(TEST_ENV[name]) + 50) for name in PORT_VARIABLES}
    env.update(SECKILL_BACKEND="docker", SECKILL_RUN_DIR=TEST_ENV["SECKILL_RUN_DIR"] + "-docker")
    env["SECKILL_RESULTS_DIR"] = str(Path(env["SECKILL_RUN_DIR"]) / "results")
    return env


@pytest.fixture(scope="module")
def engine():
    started = docker_engine.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in docker_engine.env().items():  # every docker call of this module: our engine
                mp.setenv(name, value)
            images = docker_engine.build_images(out=None)
            yield {**docker_engine.env(), **images}
    finally:
        if started:
            docker_engine.stop()


@pytest.fixture(scope="module")
def dstack(engine):
    """The whole course's servers in containers (module scope); removed with their volumes at the end."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**engine, **docker_env()}.items():
            mp.setenv(name, value)
        assert stack.backend() == "docker"
        try:
            urls = stack.up(out=None)
            yield urls
        finally:
            tiers.down(out=None)
            stack.reset(out=None)


def project_objects(kind: str) -> list[str]:
    """Names of the engine's containers / networks / volumes of the test's Compose project."""
    label = f"label=com.docker.compose.project={docker_backend.project_name(settings())}"
    args = {"container": ["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
            "network": ["network", "ls", "--filter", label, "--format", "{{.Name}}"],
            "volume": ["volume", "ls", "--filter", label, "--format", "{{.Name}}"]}[kind]
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.split()


# -- the stack --------------------------------------------------------------------------------

def test_lifecycle_down_up_keeps_data_reset_removes_everything(dstack):
    s = settings()
    status = stack.status()
    assert {k: (v["health"], v["container"], v["backend"]) for k, v in status.items()} == {
        name: ("ok", "running", "docker") for name in ("redis", "postgres", "rabbitmq")}
    shown = subprocess.run([SECKILL, "status"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "backend: docker (SECKILL_BACKEND=docker)" in shown.stdout, shown

    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS docker_keepsake (v text)")
        conn.execute("INSERT INTO docker_keepsake VALUES ('kept')")
    assert "redis" in stack.logs("redis", 20).lower()

    removed = stack.down(out=None)
    assert any("postgres" in name for name in removed)
    assert project_objects("container") == [] and project_objects("network") == []
    assert project_objects("volume"), "down removed the volumes (only reset may)"

    stack.up(out=None)
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT v FROM docker_keepsake").fetchall() == [("kept",)]

    stack.reset(out=None)
    assert project_objects("container") == [] and project_objects("volume") == []
    stack.up(out=None)
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('docker_keepsake')").fetchone() == (None,)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_stop_kill_pause_start_one_service(dstack):
    s = settings()
    client = redis.Redis.from_url(s.redis_url, socket_timeout=1, socket_connect_timeout=1)
    # (RabbitMQ's stop and start: the mq-down lab below)
    assert stack.stop_service("postgres") is True
    assert stack.status()["postgres"]["health"] == "down"
    assert stack.stop_service("postgres") is False  # already stopped
    stack.start_service("postgres")
    assert stack.status()["postgres"]["health"] == "ok"

    assert stack.stop_service("redis", kill=True) is True
    assert stack.status()["redis"]["container"] == "exited"
    with pytest.raises(redis.ConnectionError):
        client.ping()
    stack.start_service("redis")
    assert client.ping()

    docker_backend.pause("redis")
    assert stack.status()["redis"]["container"] == "paused"
    with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
        redis.Redis.from_url(s.redis_url, socket_timeout=1, socket_connect_timeout=1).ping()
    stack.start_service("redis")  # unpauses
    assert client.ping() and stack.healthy()


def test_bad_service_name_is_a_clear_error(dstack):
    with pytest.raises(stack.StackError, match="choose one of"):
        stack.stop_service("mongodb")


# -- a sale, end to end, on the containers -----------------------------------------------------

@pytest.mark.parametrize("tier", ["flask", "fastapi"])
def test_a_sale_end_to_end(dstack, tier):
    s = settings()
    state = tiers.up(tier, limits=BURST_LIMITS, out=None)
    try:
        create_sale(s, 7101, 300, name=f"docker {tier}", force=True)
        result = burst.buy_burst(state["base_url"], 7101, users=1000, requests=3000, concurrency=64)
        assert result.counts["success"] == 300, result.summary()
        assert result.counts["server_error"] == 0 and result.counts["failed"] == 0, result.summary()
        assert invariants.wait_for_drain(s, 7101, expected_orders=300, timeout_s=60)
        check = invariants.check_sale(s, 7101, result.order_ids)
        assert check.ok and check.oversold == 0 and check.lost == 0 and check.pg_stock == 0, check.as_dict()
    finally:
        tiers.down(out=None)


def test_flask_x4_with_nginx_in_a_container(dstack, tmp_path, monkeypatch):
    monkeypatch.setenv("SECKILL_BIN_PATH", str(tmp_path))  # no native nginx: the compose service runs
    state = tiers.up("flask-x4", limits=BURST_LIMITS, out=None)
    try:
        with urllib.request.urlopen(f"{state['base_url']}/healthz", timeout=5) as resp:
            assert json.loads(resp.read())["tier"] == "flask-x4"
        assert "nginx" in docker_backend.containers(settings(), one_off=True)
    finally:
        tiers.down(out=None)
    assert "nginx" not in docker_backend.containers(settings(), one_off=True)


# -- the failure labs ------------------------------------------------------------------------

@pytest.mark.parametrize("lab", ["mq-down", "redis-down", "consumer-crash", "redis-failover"])
def test_failure_lab(dstack, lab):
    try:
        report = chaos.run(lab, save=False)
    finally:
        tiers.down(out=None)  # the queue labs leave their tier running on purpose
    broken = [c for c in report.checks if not c.held]
    assert report.ok and not broken, f"{report}"
    assert stack.healthy(), f"{lab} left the stack broken"
    # only the three services (and the Redis family's namespace): the replica and Sentinel are gone
    assert set(docker_backend.containers(settings())) == {"redis-net", "redis", "postgres", "rabbitmq"}


# -- notebooks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["00_start_here", "12_stock_reservation", "30_failure_labs_redis"])
def test_notebook_runs_on_docker(dstack, name, tmp_path):
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    path = REPO / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    NotebookClient(nb, km=km, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors[0]


# -- the stand-ins keep the official images' contract, as the compose file uses it ------------------

def contract(compose: dict) -> dict[str, dict]:
    """Per image variable: the environment names, executables (command, entrypoint, health check) used."""
    used: dict[str, dict] = {}
    for name, service in compose["services"].items():
        image = service["image"]
        entry = used.setdefault(image, {"services": [], "environment": set(), "executables": set()})
        entry["services"].append(name)
        # a variable the service's own shell command or health check reads is the compose file's
        # business (Redis's password, written to a file by `sh -c`), not the image's contract
        own = json.dumps([service.get("command"), service.get("entrypoint"), service.get("healthcheck")])
        entry["environment"] |= {v for v in service.get("environment") or {} if v not in own}
        for key in ("command", "entrypoint"):
            words = service.get(key)
            if words:
                entry["executables"].add(words[0])
        test = (service.get("healthcheck") or {}).get("test")
        if test:
            entry["executables"].add(test[1] if test[0] == "CMD" else "sh")
    return used


def disagreements(compose: dict, inspect=None) -> list[str]:
    """What the compose file relies on that a stand-in does not provide (empty: they agree)."""
    problems = []
    variables = {docker_engine.standin_tag(v): d for v, d in docker_engine.STANDINS.items()}
    for image, used in contract(compose).items():
        directory = variables.get(image)
        if directory is None:
            problems.append(f"{image} ({', '.join(used['services'])}) is not a stand-in of docker/standin")
            continue
        entrypoint = directory / "docker-entrypoint.sh"
        script = entrypoint.read_text() if entrypoint.exists() else ""
        for variable in sorted(used["environment"]):
            if variable not in script:
                problems.append(f"{image}: {variable} is not handled by {entrypoint.relative_to(REPO)}")
        missing = (inspect or _missing_executables)(image, sorted(used["executables"]))
        problems += [f"{image}: {exe} is not on its PATH" for exe in missing]
    return problems


def _missing_executables(image: str, names: list[str]) -> list[str]:
    script = "; ".join(f"command -v {n} >/dev/null || echo {n}" for n in names)
    result = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", script],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def compose_config(env: dict[str, str]) -> dict:
    base = docker_backend.compose_command()
    assert base, "no docker compose / docker-compose"
    result = subprocess.run([*base, "-f", str(docker_backend.COMPOSE_FILE), "config"], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=60, check=True)
    return yaml.safe_load(result.stdout)


def test_standins_and_compose_file_agree(engine):
    compose = compose_config({k: v for k, v in engine.items() if k.startswith("SECKILL_")})
    # every image of the file is a variable: with the stand-ins selected, no official image is left
    assert not [s["image"] for s in compose["services"].values() if not s["image"].startswith("seckill-standin/")]
    assert disagreements(compose) == []


def test_a_disagreement_is_found(engine):
    compose = compose_config({k: v for k, v in engine.items() if k.startswith("SECKILL_")})
    postgres = compose["services"]["postgres"]
    postgres["environment"]["POSTGRES_INITDB_ARGS"] = "--data-checksums"   # not honoured by the stand-in
    postgres["healthcheck"]["test"] = ["CMD", "pg_isready_typo", "-U", "seckill"]
    found = disagreements(compose)
    assert any("POSTGRES_INITDB_ARGS" in p for p in found) and any("pg_isready_typo" in p for p in found), found


def test_health_checks_pass_in_the_running_containers(dstack):
    s = settings()
    for service in ("redis", "postgres", "rabbitmq"):
        assert docker_backend.state(s, service)["health"] == "healthy", service


def test_wrk_and_redis_benchmark_from_the_tools_image(dstack, monkeypatch):
    from seckill.measure import bench

    monkeypatch.setattr(bench.shutil, "which", lambda name: None)  # a machine without wrk and redis-tools
    assert bench._in_tools_image(bench._tool("wrk", "wrk"))
    assert "4.1" in bench.wrk_version()  # Debian says "debian/4.1.0-3+b2"
    s = settings()
    done = subprocess.run([*bench._tool("redis-benchmark", "redis-tools"), "-p", str(s.ports.redis), "-n", "2000",
                           "-c", "5", "--csv", "PING"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and bench.parse_redis_benchmark_csv(done.stdout) > 0, done.stderr
