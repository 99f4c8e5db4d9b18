"""docker-compose.yml is valid without a Docker engine, and matches the native stack.

Debian's `docker-compose` (v1, Python) parses the file and validates it against
the Compose schema offline; unknown keys are rejected.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from seckill.config import Ports

REPO = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose not installed (make test installs it as root)")


def config(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMPOSE, "-f", str(path), "config", *extra], capture_output=True, text=True,
                          timeout=60)


def test_compose_file_is_valid():
    result = config(REPO / "docker-compose.yml", "-q")
    assert result.returncode == 0, result.stderr


def test_an_unknown_key_is_rejected(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text((REPO / "docker-compose.yml").read_text().replace(
        "  redis:\n", "  redis:\n    no_such_option: true\n", 1))
    result = config(bad, "-q")
    assert result.returncode != 0 and "no_such_option" in result.stderr


def test_same_services_on_the_same_ports_as_the_native_stack():
    import yaml  # PyYAML comes with JupyterLab

    data = yaml.safe_load(config(REPO / "docker-compose.yml").stdout)
    ports = Ports.from_env()  # compose reads the same SECKILL_*_PORT variables
    published = {}
    for name, service in data["services"].items():
        for mapping in service["ports"]:
            if isinstance(mapping, dict):
                published[name] = (mapping.get("host_ip"), int(mapping["published"]))
            else:
                host_ip, host_port, _ = str(mapping).split(":")
                published[name] = (host_ip, int(host_port))
    assert published == {"redis": ("127.0.0.1", ports.redis), "postgres": ("127.0.0.1", ports.postgres),
                         "rabbitmq": ("127.0.0.1", ports.amqp)}
