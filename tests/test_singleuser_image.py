"""The Zero to JupyterHub image (docker/singleuser/Dockerfile): built here, a learner's pod runs the course.

Opt-in (``SECKILL_TEST_SINGLEUSER=1``): the first build installs the servers from Debian and the
course's Python packages (minutes, see docs/workshop.md); later builds reuse the engine's layer cache.
The image is built FROM the tests' Debian base on the tests' own dockerd (tests/docker_engine.py),
then one container plays a learner's pod: its notebook server runs (a plain Jupyter server stands in
for jupyterhub-singleuser, which needs a hub), and beside it, in the same container, `seckill up`
starts Redis, PostgreSQL and RabbitMQ as native processes in workshop mode, `seckill doctor` passes,
and a load test on tier flask sells out with oversold 0 and lost 0. The room log is the learner's
directory of a room on the host, mounted as Zero to JupyterHub mounts ``subPath: "{username}"`` of the
shared volume: the learner's events arrive there, and the dashboard (SECKILL_ROOM_BY_DIR=1) ranks them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import docker_engine
from test_docker_backend import engine  # noqa: F401  (the fixture: the tests' own dockerd and stand-ins)

from seckill import room as room_log
from seckill.config import AUTO_BASE, AUTO_BLOCKS, BLOCK_SIZE
from seckill.course import dashboard

WHY_NOT = docker_engine.unavailable() or (
    None if os.environ.get("SECKILL_TEST_SINGLEUSER") == "1"
    else "opt-in: SECKILL_TEST_SINGLEUSER=1 builds the Zero to JupyterHub image (minutes the first time)")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

LEARNER_UID = 1000  # Zero to JupyterHub runs the single-user server as uid 1000 (jovyan), gid 100
LEARNER = "alice"  # JUPYTERHUB_USER, as KubeSpawner sets it
TIMINGS: dict[str, float] = {}


def timed(name: str, *cmd: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    TIMINGS[name] = round(time.monotonic() - t0, 1)
    if check:
        assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def pod(engine, tmp_path_factory):  # noqa: F811
    """A learner's container of the freshly built image, its notebook server running; removed at the end."""
    TIMINGS["build"] = round(docker_engine.build_singleuser(out=None), 1)
    room = tmp_path_factory.mktemp("room")
    (room / LEARNER).mkdir()
    os.chown(room / LEARNER, LEARNER_UID, 100)  # what the chart's init container does (docs/workshop.md)
    name = f"seckill-singleuser-test-{os.getpid()}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    timed("run", "docker", "run", "-d", "--name", name, "--network", "none", "--shm-size", "256m",
          "-v", f"{room / LEARNER}:/srv/room", "-e", "SECKILL_ROOM_LOG=/srv/room", "-e", f"JUPYTERHUB_USER={LEARNER}",
          docker_engine.SINGLEUSER_TAG,
          "jupyter", "server", "--ip", "127.0.0.1", "--port", "8888", "--no-browser", "--ServerApp.token=t")
    try:
        yield name, room
    finally:
        logs = subprocess.run(["docker", "logs", "--tail", "30", name], capture_output=True, text=True)
        print(f"\n{name} log tail:\n{logs.stdout[-1500:]}{logs.stderr[-1500:]}")
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)
        print(f"singleuser image timings (s): {TIMINGS}")


def in_pod(pod, name: str, *cmd: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """A command in the learner's container, through its start script (their copy of the course, their env)."""
    return timed(name, "docker", "exec", pod[0], "seckill-start-learner", *cmd, timeout=timeout, check=check)


def test_a_learner_pod_runs_the_stack_beside_the_notebook_server_and_sells_out(pod, monkeypatch):
    # the notebook server answers inside the pod (a Jupyter server: jupyterhub-singleuser needs a hub)
    probe = ("import json, time, urllib.request\n"
             "for _ in range(60):\n"
             "    try:\n"
             "        print(json.load(urllib.request.urlopen('http://127.0.0.1:8888/api/status?token=t'))['started'])\n"
             "        break\n"
             "    except OSError:\n"
             "        time.sleep(1)\n"
             "else:\n"
             "    raise SystemExit('the notebook server never answered')\n")
    in_pod(pod, "notebook server answers", "python", "-c", probe)
    assert in_pod(pod, "jupyterhub-singleuser present", "jupyterhub-singleuser", "--version").stdout.strip()

    up = in_pod(pod, "seckill up", "seckill", "up")
    assert "redis=redis://:" in up.stdout, "workshop mode: Redis has a password"
    assert "amqp://seckill:" in up.stdout and "amqp://guest" not in up.stdout
    status = json.loads(in_pod(pod, "seckill status", "seckill", "status", "--json").stdout)
    base = AUTO_BASE + (LEARNER_UID % AUTO_BLOCKS) * BLOCK_SIZE
    assert {k: (v["health"], v["backend"]) for k, v in status.items()} == {
        k: ("ok", "native") for k in ("redis", "postgres", "rabbitmq")}
    assert all(base <= v["port"] < base + BLOCK_SIZE for v in status.values()), status
    # workshop mode: the learner's run dir under $HOME, their generated secrets readable by them only
    mode = in_pod(pod, "credentials private", "sh", "-c", 'stat -c "%a %U" "$HOME/.local/state/seckill/credentials.json"')
    assert mode.stdout.split() == ["600", "jovyan"]

    # outside workshop mode the run dir would be the shared install's .run/ (root's): one line says what to do
    ro = in_pod(pod, "seckill up outside workshop mode", "env", "SECKILL_WORKSHOP=0", "seckill", "up", check=False)
    assert ro.returncode == 1 and "Traceback" not in ro.stderr and "SECKILL_WORKSHOP=1" in ro.stderr, ro.stderr

    doctor = in_pod(pod, "seckill doctor", "seckill", "doctor", "--json", check=False)
    report = json.loads(doctor.stdout)
    failed = [c for c in report["checks"] if not c["ok"] and not c.get("warning")]
    assert report["ok"] and not failed, failed

    in_pod(pod, "tier up flask", "seckill", "tier", "up", "flask", "--load-test")
    load = in_pod(pod, "load test", "seckill", "load", "flask", "--users", "60", "--spawn-rate", "60",
                  "--duration", "8", "--stock", "40", "--requests-per-user", "2", "--processes", "1", "--json",
                  check=False)
    result = json.loads(load.stdout)
    inv, summary = result["invariants"], result["summary"]
    assert load.returncode == 0 and inv["ok"], (inv, load.stderr[-2000:])
    assert inv["oversold"] == 0 and inv["lost"] == 0 and inv["successes"] == 40, inv
    # the room log reached the host's room through the mount, and the dashboard ranks the learner
    _, room = pod
    log = room / LEARNER / f"{LEARNER}.jsonl"
    assert log.exists() and log.stat().st_uid == LEARNER_UID, sorted(p.name for p in room.rglob("*"))
    monkeypatch.setenv(room_log.BY_DIR_ENV, "1")
    snap = dashboard.snapshot(room)
    row = {r["learner"]: r for r in snap["learners"]}[LEARNER]
    assert row["stack_up"] is True and row["load"]["ok"], row
    assert [(r["learner"], r["oversold"], r["lost"]) for r in snap["leaderboard"]] == [(LEARNER, 0, 0)]
    in_pod(pod, "seckill down", "seckill", "down")
    print(f"\nload test in the pod: {summary.get('requests_per_s')} req/s, sell-through "
          f"{row['load'].get('sell_through')}")
