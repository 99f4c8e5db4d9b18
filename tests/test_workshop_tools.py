"""Workshop mode: the course's tools that reach past the settings' URLs still log in.

A learner's stack in workshop mode has generated credentials (Redis ``requirepass``, a RabbitMQ
user of its own, a PostgreSQL password, a random admin token: seckill.credentials). Most tools
connect through ``settings().redis_url`` and friends and get them for free; these do not:

  * the redis-failover lab starts a replica (it must give the primary's password: ``masterauth``),
    a Sentinel (``sentinel auth-pass`` to watch the primary, and asked for the password itself),
    and gateways that find the primary through Sentinel (the password for both);
  * `make bench`'s Redis ceiling runs redis-benchmark, which takes a password only on its command
    line, where every user of the host can read it (/proc/<pid>/cmdline).

Each runs here, for real, against one learner's workshop stack on a port block of its own.
"""

from __future__ import annotations

import subprocess

import pytest
import redis

from seckill import chaos, credentials, stack
from seckill.config import BLOCK_SIZE, settings
from seckill.measure import bench
from seckill.stack import processes, sentinel

from conftest import SLOT, TEST_ENV

PORT_VARS = [k for k in TEST_ENV if k.endswith("_PORT")]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def learner(tmp_path_factory):
    """One learner's workshop stack (the settings it runs with), reset afterwards."""
    tmp = tmp_path_factory.mktemp("learner")
    # beside test_workshop_isolation's two learners (30000 + 100*slot, + one block), in this slot's 100
    base = 30000 + 100 * SLOT + 2 * BLOCK_SIZE
    with pytest.MonkeyPatch.context() as mp:
        for var in PORT_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("SECKILL_WORKSHOP", "1")
        mp.setenv("SECKILL_PORT_BASE", str(base))
        mp.setenv("SECKILL_RUN_DIR", str(tmp / "run"))
        mp.setenv("SECKILL_RESULTS_DIR", str(tmp / "results"))
        s = settings()
        assert s.redis_password and s.amqp_user != "guest", "workshop mode did not switch on"
        try:
            stack.up(out=None)
            yield s
        finally:
            stack.reset(out=None)  # also the PostgreSQL cluster kept in /var/tmp


def _no_password(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=3, socket_connect_timeout=3)


def test_replica_and_sentinel_log_in_and_ask_for_the_password(learner):
    s = learner
    try:
        sentinel.start(s)  # raises if the replica cannot sync (no masterauth) or Sentinel cannot see it
        assert sentinel.replica_synced(s) and sentinel.sentinel_knows_replica(s)
        assert sentinel.primary_port(s) == s.ports.redis
        for port in (s.ports.redis_replica, s.ports.sentinel):
            client = _no_password(port)
            with pytest.raises(redis.AuthenticationError):
                client.ping()  # a neighbour on the host gets nothing from either
            client.close()
        for name in (sentinel.REPLICA, sentinel.SENTINEL):
            proc = processes.alive(s.run_dir, processes.load(s.run_dir, name))
            assert proc is not None, f"{name} is not running"
            assert s.redis_password not in " ".join(proc.cmdline()), f"{name}: the password shows in its command line"
    finally:
        sentinel.stop(s)


def test_redis_failover_lab_runs_in_workshop_mode(learner):
    report = chaos.run("redis-failover", save=False)
    assert report.ok, str(report)
    m = report.metrics
    assert m["failover_s"] is not None and m["lost_acknowledged"] > 0
    client = redis.Redis.from_url(learner.redis_url, socket_timeout=3)
    assert client.info("replication")["role"] == "master"  # failed back: the original port is primary
    client.close()


def test_redis_benchmark_ceiling_logs_in_without_the_stacks_password_on_its_command_line(learner, monkeypatch):
    s = learner
    commands: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(command, *args, **kwargs):
        commands.append(list(command))
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(bench.subprocess, "run", recording_run)
    ops = bench.redis_lua_ceiling(quick=True, progress=None)
    assert ops > 0
    [command] = [c for c in commands if any("redis-benchmark" in part for part in c)]
    assert s.redis_password not in " ".join(command), "the stack's password on a command line (ps shows it)"
    user = command[command.index("--user") + 1]
    client = redis.Redis.from_url(s.redis_url, decode_responses=True, socket_timeout=3)
    try:
        assert client.acl_users() == ["default"], f"the benchmark's user {user} outlived the run"
    finally:
        client.close()


def test_a_tools_login_opens_its_keys_and_nothing_else(learner):
    """What a neighbour reading redis-benchmark's command line in `ps` could do with it: the bench keys only."""
    s = learner
    own = redis.Redis.from_url(s.redis_url, decode_responses=True, socket_timeout=3)
    keys = ["stock:990102", "buyers:990102"]
    own.set(keys[0], 5)
    own.set("stock:1", 7)
    login = credentials.redis_tool_login(own, s.redis_password, keys)
    user, secret = login[1], login[3]
    tool = redis.Redis(host="127.0.0.1", port=s.ports.redis, username=user, password=secret,
                       decode_responses=True, socket_timeout=3)
    try:
        assert tool.ping() and tool.decr(keys[0]) == 4 and tool.sadd(keys[1], "u1") == 1
        sha = own.script_load("return redis.call('GET', KEYS[1])")
        assert tool.evalsha(sha, 1, keys[0]) == "4"
        for denied in (lambda: tool.get("stock:1"), lambda: tool.evalsha(sha, 1, "stock:1"), tool.flushall,
                       lambda: tool.config_get("requirepass"), lambda: tool.keys("*"),
                       lambda: tool.execute_command("ACL", "SETUSER", user, "+@all", "~*")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                denied()
    finally:
        tool.close()
        credentials.drop_redis_tool_login(own, login)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=s.ports.redis, username=user, password=secret, socket_timeout=3).ping()
    assert own.get("stock:1") == "7"
    own.delete(*keys, "stock:1")
    own.close()
    assert credentials.redis_tool_login(own, "", keys) == []  # no password (single learner): nothing to make
