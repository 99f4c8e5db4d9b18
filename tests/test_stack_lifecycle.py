"""`seckill up` / `status` / `down` / `reset` from the command line, on a stack of their own.

This test runs its own stack (own run dir, own ports) so it can stop it
without disturbing the one the other tests share.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from seckill.stack import processes

REPO = Path(__file__).resolve().parent.parent
SECKILL = str(Path(sys.executable).parent / "seckill")
from conftest import PORT_SHIFT, SLOT  # noqa: E402

PORTS = {"SECKILL_REDIS_PORT": 18379, "SECKILL_POSTGRES_PORT": 18432, "SECKILL_AMQP_PORT": 18672,
         "SECKILL_RABBITMQ_DIST_PORT": 18673, "SECKILL_EPMD_PORT": 18369}
PORTS = {name: port + PORT_SHIFT for name, port in PORTS.items()}


@pytest.fixture(scope="module")
def run_dir():
    path = REPO / ".run" / f"test-lifecycle{SLOT or ''}"
    env = {**os.environ, "SECKILL_RUN_DIR": str(path), **{k: str(v) for k, v in PORTS.items()}}
    yield path, env
    subprocess.run([SECKILL, "down"], env=env, capture_output=True, timeout=120)


def seckill(env, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([SECKILL, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def status(env) -> dict:
    result = seckill(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_up_twice_is_harmless_and_down_leaves_nothing(run_dir):
    path, env = run_dir
    first = seckill(env, "up")
    assert first.returncode == 0, first.stderr
    assert f"redis=redis://127.0.0.1:{PORTS['SECKILL_REDIS_PORT']}/0" in first.stdout
    before = status(env)
    assert {name: info["health"] for name, info in before.items()} == {
        "redis": "ok", "postgres": "ok", "rabbitmq": "ok"}
    assert all(info["pid"] and info["port"] and info["url"] for info in before.values())

    second = seckill(env, "up")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("already running") == 3
    assert {n: i["pid"] for n, i in status(env).items()} == {n: i["pid"] for n, i in before.items()}

    logs = seckill(env, "logs", "redis")
    assert logs.returncode == 0 and "Ready to accept connections" in logs.stdout

    # A crash: Redis dies hard. status says so; the next `up` brings back only Redis.
    os.kill(before["redis"]["pid"], signal.SIGKILL)
    processes.wait_until(lambda: not psutil.pid_exists(before["redis"]["pid"]), timeout=5)
    assert status(env)["redis"]["health"] == "down"
    third = seckill(env, "up")
    assert third.returncode == 0, third.stderr
    after = status(env)
    assert after["redis"]["health"] == "ok" and after["redis"]["pid"] != before["redis"]["pid"]
    assert after["postgres"]["pid"] == before["postgres"]["pid"]

    # A stale pid file from a crash long ago, whose pid now belongs to someone else.
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        (path / "pids" / "ghost.json").write_text(json.dumps({
            "name": "ghost", "pid": bystander.pid, "port": None, "create_time": time.time() - 86_400,
            "log": "", "command": ["ghost"]}))
        down = seckill(env, "down")
        assert down.returncode == 0, down.stderr
        assert bystander.poll() is None, "down killed a process it did not start"
    finally:
        bystander.kill()
        bystander.wait()

    assert processes.ours(path) == [], "down left processes of this checkout running"
    for port in PORTS.values():
        assert not processes.port_open(port), f"port {port} still listens after down"
    assert not list((path / "pids").glob("*.json")), "down left pid files behind"


def test_down_when_nothing_runs_and_reset_wipes_the_data(run_dir):
    path, env = run_dir
    result = seckill(env, "down")
    assert result.returncode == 0 and "nothing" in result.stderr
    assert (path / "redis").exists() and (path / "postgres").exists()
    result = seckill(env, "reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert not (path / "redis").exists() and not (path / "postgres").exists()


def test_a_taken_port_is_one_clear_line(run_dir, tmp_path):
    _, env = run_dir
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        env = {**env, "SECKILL_RUN_DIR": str(tmp_path / "run"), "SECKILL_REDIS_PORT": str(taken)}
        result = seckill(env, "up")
    assert result.returncode == 1
    assert f"port {taken} for redis is taken" in result.stderr and "SECKILL_REDIS_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    seckill(env, "down")


def test_backend_choice(monkeypatch):
    from seckill import stack

    monkeypatch.setenv("SECKILL_BACKEND", "native")
    assert stack.backend() == "native"
    monkeypatch.setenv("SECKILL_BACKEND", "docker")
    assert stack.backend() == "docker"
    monkeypatch.setenv("SECKILL_BACKEND", "kubernetes")
    with pytest.raises(stack.StackError, match="native, docker or auto"):
        stack.backend()
    monkeypatch.setenv("SECKILL_BACKEND", "auto")
    # auto prefers what runs the whole course: the installed servers first, even with Docker there
    from seckill.stack import docker_backend, installer

    monkeypatch.setattr(docker_backend, "engine_answers", lambda: (True, "Docker engine 20.10 answers"))
    monkeypatch.setattr(docker_backend, "compose_command", lambda: ["docker", "compose"])
    monkeypatch.setattr(installer, "missing", lambda names=None: [])
    assert stack.choose() == ("native", "auto: the server binaries are installed")
    # no servers and no apt (not root): Docker, and the reason says so
    monkeypatch.setattr(installer, "missing", lambda names=None: ["redis", "postgres"])
    monkeypatch.setattr(installer, "can_apt", lambda: False)
    name, why = stack.choose()
    assert name == "docker" and "redis, postgres not installed" in why and "answers" in why
    # ... unless no engine answers: native, whose `up` says what to install
    monkeypatch.setattr(docker_backend, "engine_answers", lambda: (False, "no docker client on PATH"))
    name, why = stack.choose()
    assert name == "native" and "no docker client on PATH" in why


def test_two_ups_at_once_start_each_server_once(run_dir):
    path, env = run_dir
    both = [subprocess.Popen([SECKILL, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in both]
    assert [code for code, _ in results] == [0, 0], results
    assert sum(err.count("starting on") for _, err in results) == 3, "a server was started twice"
    assert sum(err.count("already running") for _, err in results) == 3
    assert {i["health"] for i in status(env).values()} == {"ok"}
    assert seckill(env, "down").returncode == 0
