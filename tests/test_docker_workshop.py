"""Workshop mode on the Docker backend: two learners' container stacks on one engine neither collide
nor can touch each other.

Two learners (two run dirs, two port blocks, SECKILL_WORKSHOP=1, SECKILL_BACKEND=docker) run
`seckill up` at the same time on the tests' own dockerd (tests/docker_engine.py, the stand-in images
of docker/standin). Then: their Compose projects share no container, network, volume or published
port, each publishes exactly its own block's ports; learner B is refused by A's Redis, RabbitMQ and
PostgreSQL with B's credentials and with the single-learner defaults, while A's own credentials work;
and no secret shows on a host command line or in a container's command. Where dockerd cannot run,
every test skips with one line (as tests/test_docker_backend.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

import docker_engine
from conftest import SLOT, TEST_ENV
from learner_access import assert_postgres_refuses_b, assert_rabbitmq_refuses_b, assert_redis_refuses_b
from test_docker_backend import engine  # noqa: F401  (the fixture: the tests' own dockerd and stand-ins)

from seckill.config import BLOCK_SIZE, Settings, settings
from seckill.stack import docker_backend

REPO = Path(__file__).resolve().parent.parent
SECKILL = str(REPO / ".venv" / "bin" / "seckill")
WHY_NOT = docker_engine.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

PORT_VARS = [k for k in TEST_ENV if k.endswith("_PORT")]
# below the workshop's automatic blocks of real uids on a hub host and away from test_workshop_isolation's
BASES = {"a": 28000 + 100 * SLOT, "b": 28000 + 100 * SLOT + BLOCK_SIZE}


def learner_env(engine_env: dict[str, str], tmp: Path, name: str) -> dict[str, str]:
    """The whole environment of learner ``name``'s `seckill` commands."""
    env = {k: v for k, v in os.environ.items() if k not in PORT_VARS}
    env.update(engine_env)
    env.update(SECKILL_BACKEND="docker", SECKILL_WORKSHOP="1", SECKILL_PORT_BASE=str(BASES[name]),
               SECKILL_RUN_DIR=str(tmp / name), SECKILL_RESULTS_DIR=str(tmp / name / "results"))
    env.pop("SECKILL_ROOM_LOG", None)
    return env


def learner_settings(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for var in PORT_VARS:
            mp.delenv(var, raising=False)
        for k, v in env.items():
            if k.startswith("SECKILL_") or k == "DOCKER_HOST":
                mp.setenv(k, v)
        return settings()


def seckill(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([SECKILL, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def room(engine, tmp_path_factory):  # noqa: F811
    """Learners a and b, both stacks started at once by `seckill up`; reset (volumes too) at the end."""
    tmp = tmp_path_factory.mktemp("docker-room")
    envs = {name: learner_env(engine, tmp, name) for name in BASES}
    t0 = time.monotonic()
    try:
        ups = {name: subprocess.Popen([SECKILL, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for name, env in envs.items()}
        for name, proc in ups.items():
            out, _ = proc.communicate(timeout=400)
            assert proc.returncode == 0, f"learner {name}'s `seckill up` failed:\n{out}"
        print(f"\ntwo learners' docker stacks up in {time.monotonic() - t0:.1f} s")
        yield {name: learner_settings(env) for name, env in envs.items()}, envs
    finally:  # both at once: half the wait
        resets = [subprocess.Popen([SECKILL, "reset", "--yes"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL) for env in envs.values()]
        for proc in resets:
            proc.wait(timeout=300)


def objects(s: Settings, kind: str) -> set[str]:
    label = f"label=com.docker.compose.project={docker_backend.project_name(s)}"
    args = {"container": ["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
            "network": ["network", "ls", "--filter", label, "--format", "{{.Name}}"],
            "volume": ["volume", "ls", "--filter", label, "--format", "{{.Name}}"]}[kind]
    return set(subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.split())


def published_ports(s: Settings) -> set[int]:
    """Host ports the project's containers publish (docker inspect: every binding, any address)."""
    ids = list(docker_backend.containers(s).values())
    found = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                      check=True).stdout)
    ports = set()
    for c in found:
        for bindings in (c["HostConfig"].get("PortBindings") or {}).values():
            for b in bindings or []:
                assert b["HostIp"] == "127.0.0.1", f"{c['Name']} publishes on {b['HostIp'] or 'every address'}"
                ports.add(int(b["HostPort"]))
    return ports


def test_two_learners_share_no_container_network_volume_or_port(room):
    learners, _ = room
    a, b = learners["a"], learners["b"]
    assert docker_backend.project_name(a) != docker_backend.project_name(b)
    for kind in ("container", "network", "volume"):
        mine, theirs = objects(a, kind), objects(b, kind)
        assert mine and theirs, f"no {kind} labelled with a learner's project"
        assert not mine & theirs, f"learners a and b share {kind}s {mine & theirs}"
    for s, base in ((a, BASES["a"]), (b, BASES["b"])):
        ports = published_ports(s)
        assert ports == {s.ports.redis, s.ports.redis_replica, s.ports.sentinel, s.ports.postgres, s.ports.amqp}
        assert all(base <= p < base + BLOCK_SIZE for p in ports), (base, sorted(ports))
    assert not published_ports(a) & published_ports(b)


def test_learner_b_cannot_use_learner_a_redis(room):
    learners, _ = room
    a, b = learners["a"], learners["b"]
    assert_redis_refuses_b(a, b)


def test_learner_b_cannot_use_learner_a_rabbitmq(room):
    learners, _ = room
    a, b = learners["a"], learners["b"]
    assert_rabbitmq_refuses_b(a, b)


def test_learner_b_cannot_use_learner_a_postgres(room):
    learners, _ = room
    a, b = learners["a"], learners["b"]
    assert_postgres_refuses_b(a, b)
    with psycopg.connect(a.postgres_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] >= 0  # `seckill up` made the schema


def test_no_secret_on_a_command_line_or_in_a_container_command(room):
    learners, envs = room
    secrets = {name: [s.redis_password, s.amqp_password, s.pg_password, s.admin_token]
               for name, s in learners.items()}
    assert all(all(v) for v in secrets.values())
    for proc in psutil.process_iter(["pid", "cmdline"]):  # the containers' processes are the host's too
        cmdline = " ".join(proc.info["cmdline"] or [])
        for name, values in secrets.items():
            assert not any(v in cmdline for v in values), f"a secret of {name} in the command line of {proc.pid}"
    for name, s in learners.items():
        ids = list(docker_backend.containers(s).values())
        for c in json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                           check=True).stdout):
            shown = json.dumps([c.get("Path"), c.get("Args"), c["Config"].get("Cmd"), c["Config"].get("Entrypoint")])
            assert not any(v in shown for v in secrets[name]), f"a secret of {name} in {c['Name']}'s command"
    for name, s in learners.items():
        assert (s.run_dir.stat().st_mode & 0o777) == 0o700, f"{name}'s run dir is open to others"


def test_a_changed_password_is_one_line_and_one_learner_down_leaves_the_other(room):
    learners, envs = room
    a, b = learners["a"], learners["b"]
    # b's credentials.json regenerated while the data stayed: the cluster refuses the new password
    file = b.run_dir / "credentials.json"
    kept = file.read_text()
    file.write_text(json.dumps({**json.loads(kept), "pg_password": "another-one"}))
    try:
        again = seckill(envs["b"], "up")
    finally:
        file.write_text(kept)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("seckill: PostgreSQL on port ")
    assert "`seckill reset`" in again.stderr

    done = seckill(envs["b"], "down")
    assert done.returncode == 0, done.stderr
    assert not docker_backend.containers(b)
    assert set(docker_backend.containers(a)) == {"redis-net", "redis", "postgres", "rabbitmq"}
    own = redis.Redis.from_url(a.redis_url, socket_timeout=3)
    assert own.ping()
    own.close()
    assert objects(b, "volume"), "down removed learner b's volumes (only reset may)"
