"""docker-compose.yml is valid without a Docker engine, and matches the native stack.

Debian's `docker-compose` (v1, Python) parses the file and validates it against
the Compose schema offline; unknown keys are rejected.
"""

from __future__ import annotations

import json
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


def test_workshop_credentials_reach_the_services_and_defaults_stay_single_learner(tmp_path, monkeypatch):
    """What compose_env hands over in workshop mode lands in the three services; without it, the old defaults."""
    import yaml

    from seckill.config import settings
    from seckill.stack import docker_backend

    def services(env: dict[str, str]) -> dict:
        result = subprocess.run([COMPOSE, "-f", str(REPO / "docker-compose.yml"), "config"], capture_output=True,
                                text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)["services"]

    single = services(docker_backend.compose_env(settings()))
    assert single["redis"]["environment"]["REDIS_PASSWORD"] in ("", None)
    assert single["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"] == "guest"
    assert single["postgres"]["environment"]["POSTGRES_PASSWORD"] == "seckill"

    monkeypatch.setenv("SECKILL_WORKSHOP", "1")
    monkeypatch.setenv("SECKILL_RUN_DIR", str(tmp_path / "learner"))
    s = settings()
    shared = services(docker_backend.compose_env(s))
    assert shared["redis"]["environment"]["REDIS_PASSWORD"] == s.redis_password
    assert shared["rabbitmq"]["environment"] == {"RABBITMQ_DEFAULT_USER": s.amqp_user,
                                                 "RABBITMQ_DEFAULT_PASS": s.amqp_password}
    assert shared["postgres"]["environment"]["POSTGRES_PASSWORD"] == s.pg_password
    # the password goes through a file the container writes, never onto redis-server's command line
    assert s.redis_password not in json.dumps(shared["redis"]["command"])
    assert docker_backend.project_name(s).startswith("seckill-") and docker_backend.project_name(s) != "seckill"


def test_a_foreground_compose_command_carries_no_secret(tmp_path, monkeypatch):
    """nginx and the tools run as `env VAR=… docker compose run …`: a command line anyone may read."""
    from seckill.config import settings
    from seckill.stack import docker_backend

    monkeypatch.setattr(docker_backend, "compose_command", lambda: ["docker", "compose"])
    monkeypatch.setenv("SECKILL_WORKSHOP", "1")
    monkeypatch.setenv("SECKILL_RUN_DIR", str(tmp_path / "learner"))
    s = settings()
    line = " ".join(docker_backend.foreground_command("nginx", s) + docker_backend.tool_command("wrk", s=s))
    assert f"SECKILL_REDIS_PORT={s.ports.redis}" in line
    for secret in (s.redis_password, s.amqp_password, s.pg_password, s.admin_token):
        assert secret not in line
