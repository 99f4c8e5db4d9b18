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
        for mapping in service.get("ports", []):
            if isinstance(mapping, dict):
                published.setdefault(name, []).append((mapping.get("host_ip"), int(mapping["published"])))
            else:
                host_ip, host_port, _ = str(mapping).split(":")
                published.setdefault(name, []).append((host_ip, int(host_port)))
    # the Redis family (primary; replica and Sentinel of profile failover) shares redis-net's namespace
    assert published == {"redis-net": [("127.0.0.1", ports.redis), ("127.0.0.1", ports.redis_replica),
                                       ("127.0.0.1", ports.sentinel)],
                         "postgres": [("127.0.0.1", ports.postgres)], "rabbitmq": [("127.0.0.1", ports.amqp)]}
    for name in ("redis", "redis-replica", "redis-sentinel"):
        assert data["services"][name]["network_mode"] == "service:redis-net"


def test_every_image_is_a_variable_defaulting_to_the_official_image():
    import yaml

    from seckill.stack import docker_backend

    data = yaml.safe_load(config(REPO / "docker-compose.yml").stdout)
    images = {name: service["image"] for name, service in data["services"].items()}
    assert set(images.values()) == set(docker_backend.IMAGE_VARIABLES.values())
    text = (REPO / "docker-compose.yml").read_text()
    for variable, default in docker_backend.IMAGE_VARIABLES.items():
        assert f"${{{variable}:-{default}}}" in text, variable
