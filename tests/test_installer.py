"""Missing server binaries: installed as root with apt, otherwise one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seckill.stack import installer

SECKILL = str(Path(sys.executable).parent / "seckill")


def test_the_servers_are_found_here():
    for name in installer.SERVERS:
        assert installer.find(name), f"{name} not found although make test installs it"


def test_missing_without_root_says_what_to_install(monkeypatch):
    monkeypatch.setenv("SECKILL_BIN_PATH", "/nonexistent")
    monkeypatch.setattr(installer, "is_root", lambda: False)
    with pytest.raises(installer.MissingServers) as err:
        installer.ensure_servers(["redis", "rabbitmq"])
    message = str(err.value)
    assert "\n" not in message
    for hint in ("apt-get install -y redis-server rabbitmq-server", "brew install redis rabbitmq",
                 "conda install -c conda-forge redis-server rabbitmq-server"):
        assert hint in message


def test_cli_without_root_and_binaries_exits_non_zero_with_one_line(tmp_path):
    env = {**os.environ, "SECKILL_BIN_PATH": "/nonexistent", "SECKILL_RUN_DIR": str(tmp_path / "run"),
           "SECKILL_NO_INSTALL": "1"}  # as root we would install: forbid it, as a non-root user is
    command = [SECKILL, "up"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seckill: missing"), result.stderr
    assert "apt-get install" in lines[0] and "brew install" in lines[0] and "conda install" in lines[0]
