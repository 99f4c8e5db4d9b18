"""Workshop mode: two learners' stacks on one host neither collide nor can touch each other.

Two real stacks (Redis, PostgreSQL, RabbitMQ) start in workshop mode, each with its own port block,
run dir and generated credentials; learner B then tries A's servers with B's own credentials (and
the old defaults), and must be refused by every one of them, including A's admin endpoint.
"""

from __future__ import annotations

import json
import shutil
import stat
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis

from seckill import config, credentials, stack
from seckill.stack import processes
from seckill.system import tiers
from seckill.config import BLOCK_SIZE, ConfigError, Ports, port_base, settings

from conftest import SLOT, TEST_ENV
from learner_access import assert_postgres_refuses_b, assert_rabbitmq_refuses_b, assert_redis_refuses_b

PORT_VARS = [k for k in TEST_ENV if k.endswith("_PORT")]


# -- the port blocks (no servers) --------------------------------------------------

def test_every_port_of_a_block_lies_inside_it_and_blocks_of_nearby_uids_are_disjoint(monkeypatch):
    for var in PORT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("SECKILL_PORT_BASE", raising=False)
    monkeypatch.setenv("SECKILL_WORKSHOP", "1")
    taken: dict[int, int] = {}
    for uid in range(1000, 1000 + config.AUTO_BLOCKS):
        base = port_base(uid)
        ports = Ports.block(base)
        # the gateways behind nginx use gateway+1 … gateway+4: they belong to the block too
        used = set(ports.all().values()) | {ports.gateway + 1 + i for i in range(4)}
        assert len(used) == len(ports.all()) + 4, f"two services share a port in uid {uid}'s block"
        assert all(base <= p < base + BLOCK_SIZE for p in used), (uid, sorted(used))
        assert max(used) < 32768, "a block reaches into the ephemeral port range"
        for p in used:
            assert p not in taken, f"uid {uid} and uid {taken[p]} share port {p}"
            taken[p] = uid


def test_port_base_moves_every_port_and_a_single_port_still_wins(monkeypatch):
    for var in PORT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SECKILL_PORT_BASE", "24000")
    p = Ports.from_env()
    assert p == Ports.block(24000)
    monkeypatch.setenv("SECKILL_REDIS_PORT", "24999")
    assert Ports.from_env().redis == 24999
    for bad in ("abc", "80", "65530"):
        monkeypatch.setenv("SECKILL_PORT_BASE", bad)
        with pytest.raises(ConfigError, match="SECKILL_PORT_BASE"):
            Ports.from_env()


def test_credentials_are_private_stable_and_refused_when_others_can_read_them(tmp_path):
    first = credentials.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / credentials.FILE).stat().st_mode) == 0o600
    assert credentials.load_or_create(tmp_path) == first, "a second read must not regenerate"
    assert credentials.load_or_create(tmp_path / "other") != first
    (tmp_path / credentials.FILE).chmod(0o644)
    with pytest.raises(credentials.CredentialsError, match="chmod 600"):
        credentials.load_or_create(tmp_path)


def test_the_single_learner_default_is_unchanged(monkeypatch):
    monkeypatch.delenv("SECKILL_WORKSHOP", raising=False)
    s = settings()
    assert s.redis_password == "" and s.amqp_user == "guest" and s.admin_token == "seckill-admin"
    assert not (s.run_dir / credentials.FILE).exists()


# -- two real stacks ----------------------------------------------------------------

def _learner(monkeypatch, tmp: Path, name: str, base: int):
    """Switch this process's environment to learner ``name``'s workshop stack."""
    for var in PORT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SECKILL_WORKSHOP", "1")
    monkeypatch.setenv("SECKILL_PORT_BASE", str(base))
    monkeypatch.setenv("SECKILL_RUN_DIR", str(tmp / name))
    monkeypatch.setenv("SECKILL_RESULTS_DIR", str(tmp / name / "results"))
    return settings()


@pytest.fixture(scope="module")
def two_learners(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("room")
    # far from every slot's test ports (17xxx-19xxx) and below the ephemeral range
    base_a, base_b = 30000 + 100 * SLOT, 30000 + 100 * SLOT + BLOCK_SIZE
    learners = {}
    try:
        for name, base in (("a", base_a), ("b", base_b)):
            with pytest.MonkeyPatch.context() as mp:
                s = _learner(mp, tmp, name, base)
                stack.up(out=None)
                learners[name] = s
        with pytest.MonkeyPatch.context() as mp:
            _learner(mp, tmp, "a", base_a)
            learners["a_tier"] = tiers.up("flask", out=None)
        yield tmp, learners
    finally:
        for name, base in (("a", base_a), ("b", base_b)):
            with pytest.MonkeyPatch.context() as mp:
                _learner(mp, tmp, name, base)
                stack.reset(out=None)  # also the PostgreSQL cluster kept in /var/tmp


def test_each_learner_has_own_ports_run_dir_and_private_secrets(two_learners):
    tmp, ls = two_learners
    a, b = ls["a"], ls["b"]
    assert not set(a.ports.all().values()) & set(b.ports.all().values())
    assert a.run_dir != b.run_dir
    for s in (a, b):
        assert stat.S_IMODE(s.run_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((s.run_dir / credentials.FILE).stat().st_mode) == 0o600
    assert a.redis_password != b.redis_password and a.amqp_password != b.amqp_password
    assert a.pg_password != b.pg_password and a.admin_token != b.admin_token
    # no secret on a command line (world-readable in /proc)
    for proc in processes.ours(a.run_dir):
        cmdline = " ".join(proc.cmdline())
        for secret in (a.redis_password, a.amqp_password, a.pg_password, a.admin_token):
            assert secret not in cmdline, f"a secret shows in the command line of {proc.name()}"


def test_learner_b_cannot_read_or_write_learner_a_redis(two_learners):
    _, ls = two_learners
    a, b = ls["a"], ls["b"]
    assert_redis_refuses_b(a, b)


def test_learner_b_cannot_connect_to_learner_a_rabbitmq(two_learners):
    _, ls = two_learners
    a, b = ls["a"], ls["b"]
    assert_rabbitmq_refuses_b(a, b)


def test_learner_b_cannot_connect_to_learner_a_postgres(two_learners):
    _, ls = two_learners
    a, b = ls["a"], ls["b"]
    assert_postgres_refuses_b(a, b)
    hba = (a.run_dir / "postgres" / "data" / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] != "trust" for rule in rules), "pg_hba.conf still trusts someone"
    with psycopg.connect(a.postgres_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _create_sale(base_url: str, token: str) -> int:
    req = urllib.request.Request(f"{base_url}/api/admin/sales", method="POST",
                                 data=json.dumps({"product_id": 1701, "stock": 3}).encode(),
                                 headers={"Content-Type": "application/json", "X-Admin-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_learner_b_cannot_create_sales_in_learner_a_gateway(two_learners):
    _, ls = two_learners
    a, b = ls["a"], ls["b"]
    base_url = ls["a_tier"]["base_url"]
    assert _create_sale(base_url, b.admin_token) == 403
    assert _create_sale(base_url, "seckill-admin") == 403
    assert _create_sale(base_url, a.admin_token) == 201


def test_stale_pid_files_pointing_at_another_stack_never_stop_it(two_learners, monkeypatch):
    """A crashed stack's pid files that now name another learner's live servers are only hints."""
    tmp, ls = two_learners
    a, b = ls["a"], ls["b"]
    scratch = tmp / "crashed"
    pids = processes.pid_dir(scratch)
    pids.mkdir(parents=True)
    for file in processes.pid_dir(b.run_dir).glob("*.json"):
        shutil.copy(file, pids / file.name)  # every pid of B's live servers, in a stranger's run dir
    _learner(monkeypatch, tmp, "crashed", a.ports.redis + 3 * BLOCK_SIZE)
    assert all(info["pid"] is None for info in stack.status().values()), "a stranger's pid passed for ours"
    for name in ("redis", "postgres", "rabbitmq"):
        with pytest.raises(processes.StartError):
            processes.kill(scratch, name)  # the crash lab's SIGKILL must find nothing to kill
    stack.down(out=None)
    for name in ("redis", "postgres", "rabbitmq"):
        assert processes.alive(b.run_dir, processes.load(b.run_dir, name)), f"B's {name} was stopped"
    client = redis.Redis.from_url(b.redis_url, socket_timeout=3)
    assert client.ping()
    client.close()
