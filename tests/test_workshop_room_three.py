"""Three learners on one host at once: one stops *their* broker mid-sale, the other two keep selling.

A first version of the issue's room test, without the hub: three workshop stacks with distinct port
blocks, run dirs and credentials, driven by the learners' own `seckill` commands as subprocesses.
Learner A runs the failure lab `seckill chaos mq-down` while B and C each run a load test on their own
flask tier at the same time. Then: every port is distinct, A's failure lab holds its invariants,
B's and C's load tests hold theirs (oversold 0, lost 0) with their brokers never stopped (same pid),
and the room log and dashboard show all three. Heavy (three stacks on this machine): about 3 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seckill.course import dashboard
from seckill.stack import processes
from seckill.config import BLOCK_SIZE, Ports

from conftest import SLOT, TEST_ENV

SECKILL = str(Path(sys.executable).parent / "seckill")
LEARNERS = ("alice", "bob", "carol")
pytestmark = pytest.mark.timeout(900)


def _env(tmp: Path, i: int, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("SECKILL_") and k.endswith("_PORT"))}
    env.update(SECKILL_WORKSHOP="1", SECKILL_PORT_BASE=str(31000 + 100 * SLOT + i * BLOCK_SIZE),
               SECKILL_RUN_DIR=str(tmp / name), SECKILL_RESULTS_DIR=str(tmp / name / "results"),
               SECKILL_ROOM_LOG=str(tmp / "room"), JUPYTERHUB_USER=name, SECKILL_BACKEND="native",
               SECKILL_IMPL=TEST_ENV["SECKILL_IMPL"])
    return env


def _run(args: list[str], env: dict, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([SECKILL, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_three_learners_one_breaks_their_broker_the_others_sell_untouched(tmp_path):
    (tmp_path / "room").mkdir(mode=0o1777)
    envs = {name: _env(tmp_path, i, name) for i, name in enumerate(LEARNERS)}
    ports = [Ports.block(int(e["SECKILL_PORT_BASE"])).all() for e in envs.values()]
    flat = [p for block in ports for p in block.values()]
    assert len(flat) == len(set(flat)), "two learners share a port"
    try:
        ups = {n: subprocess.Popen([SECKILL, "tier", "up", "flask"], env=e, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for n, e in envs.items()}
        for n, p in ups.items():
            out, err = p.communicate(timeout=400)
            assert p.returncode == 0, f"{n}: {err[-800:]}"
        brokers = {n: processes.load(Path(e["SECKILL_RUN_DIR"]), "rabbitmq").pid for n, e in envs.items()}

        chaos = subprocess.Popen([SECKILL, "chaos", "mq-down", "--tier", "flask", "--json"], env=envs["alice"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        loads = {n: subprocess.Popen([SECKILL, "load", "flask", "--users", "150", "--spawn-rate", "150",
                                      "--duration", "8", "--stock", "100", "--product", "4242", "--json"],
                                     env=envs[n], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in ("bob", "carol")}
        out, err = chaos.communicate(timeout=500)
        assert chaos.returncode == 0, f"alice's mq-down failed: {err[-1500:]}"
        report = json.loads(out)
        assert report["ok"], [c for c in report["checks"] if not c["held"]]
        for n, p in loads.items():
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, f"{n}'s load test: {err[-1500:]}"
            inv = json.loads(out)["invariants"]
            assert inv["oversold"] == 0 and inv["lost"] == 0 and inv["ok"], (n, inv)
            # their broker was never stopped: the very process that started is still there
            run_dir = Path(envs[n]["SECKILL_RUN_DIR"])
            assert processes.load(run_dir, "rabbitmq").pid == brokers[n]
            assert processes.alive(run_dir, processes.load(run_dir, "rabbitmq")), f"{n}'s broker is gone"
        assert processes.load(Path(envs["alice"]["SECKILL_RUN_DIR"]), "rabbitmq").pid != brokers["alice"]

        snap = dashboard.snapshot(tmp_path / "room")
        rows = {r["learner"]: r for r in snap["learners"]}
        assert set(rows) == set(LEARNERS)
        assert rows["alice"]["chaos_done"] == ["mq-down"]
        assert all(rows[n]["load"]["ok"] and rows[n]["stack_up"] for n in ("bob", "carol"))
        assert {r["learner"] for r in snap["leaderboard"]} == {"bob", "carol"}
    finally:
        for n, e in envs.items():
            _run(["reset"], e, timeout=120)
