"""The Docker backend: the course's servers as containers of docker-compose.yml.

stack.py calls this module when the backend is ``docker`` (see :func:`choose`);
the rest of the course does not know which backend runs. The servers listen on
the same 127.0.0.1 ports as the native ones, so the gateways and the order
service (host processes: learners edit ``labs/``) talk to them unchanged.

    compose_command()       ["docker", "compose"] (v2) or ["docker-compose"] (v1)
    up / down / reset       the three services; `down` removes every container and
                            network of the project (volumes stay until `reset`)
    stop / kill / pause / unpause / start   one service: the failure labs
    state(s, service)       "running", "paused", "exited", "missing" and its health

Each checkout's run directory is its own Compose project (``seckill`` for the
default ``.run``, ``seckill-<hash>`` otherwise), so a test run on one engine
never touches the learner's containers.

Workshop mode (``SECKILL_WORKSHOP=1``) is the same as on the native backend: the
learner's port block, and their generated credentials (credentials.py) handed to
the containers: Redis ``requirepass``, RabbitMQ's default user instead of guest,
PostgreSQL's password. The project is ``seckill-<user>-<hash of the run dir>``,
so two learners on one engine share no container, network or volume, and
``docker ps`` shows whose is whose. The secrets travel in the environment of
``docker compose`` (readable by its user only), never on a command line. Anyone
who may use the engine's socket is root on that host: on a shared host the
passwords keep learners out of each other's ports, not out of the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from functools import lru_cache
from typing import TextIO

from seckill.config import REPO_ROOT, Settings, settings
from seckill.errors import SeckillError

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SERVICES = ("redis", "postgres", "rabbitmq")
PROFILES = ("failover", "x4", "tools")
# the official images at the versions the native path runs (Debian bookworm)
IMAGE_VARIABLES = {
    "SECKILL_REDIS_IMAGE": "redis:7.0",
    "SECKILL_POSTGRES_IMAGE": "postgres:15",
    "SECKILL_RABBITMQ_IMAGE": "rabbitmq:3.10",
    "SECKILL_NGINX_IMAGE": "nginx:1.22",
    "SECKILL_TOOLS_IMAGE": "seckill/tools:bookworm",
}
# The learner's credentials (workshop mode), as docker-compose.yml reads them. Never on a command line:
# foreground_command (an `env VAR=… docker compose run` line for processes.start) leaves them out.
SECRET_VARIABLES = ("SECKILL_REDIS_PASSWORD", "SECKILL_AMQP_USER", "SECKILL_AMQP_PASSWORD", "SECKILL_PG_PASSWORD")
START_TIMEOUT_S = 180.0  # a first start pulls nothing (images are there) but RabbitMQ takes ~10 s


class DockerError(SeckillError):
    """Docker or Compose refused or failed; the message says what to do."""


# -- what is there --------------------------------------------------------------------

_ANSWERS: dict[str | None, tuple[float, tuple[bool, str]]] = {}
ANSWER_TTL_S = 10.0  # `auto` asks often (every status); the engine's presence does not flicker


def engine_answers(timeout: float = 5.0) -> tuple[bool, str]:
    """Does a Docker engine answer ``docker info``? Returns (yes, one line why); kept for 10 s."""
    key = os.environ.get("DOCKER_HOST")
    seen = _ANSWERS.get(key)
    if seen and time.monotonic() - seen[0] < ANSWER_TTL_S:
        return seen[1]
    answer = _ask_engine(timeout)
    _ANSWERS[key] = (time.monotonic(), answer)
    return answer


def _ask_engine(timeout: float) -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "no docker client on PATH"
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker info did not answer ({exc.__class__.__name__})"
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        return False, f"no Docker engine answers: {first[:120]}"
    return True, f"Docker engine {result.stdout.strip()} answers"


@lru_cache(maxsize=None)
def _compose_for(docker_host: str | None, path: str | None) -> tuple[str, ...] | None:
    if shutil.which("docker"):
        try:
            if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20).returncode == 0:
                return ("docker", "compose")
        except (OSError, subprocess.TimeoutExpired):
            pass
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    return None


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) if it works, else ``docker-compose`` (v1), else None."""
    found = _compose_for(os.environ.get("DOCKER_HOST"), os.environ.get("PATH"))
    return list(found) if found else None


def project_name(s: Settings) -> str:
    """One Compose project per run directory: the learner's stack and a test run never meet.

    ``seckill`` for the checkout's .run/, ``seckill-<hash>`` for another run dir, and in workshop
    mode ``seckill-<user>-<hash>`` (the hash keeps two run dirs of one user apart too).
    """
    if s.run_dir == (REPO_ROOT / ".run").resolve() and not s.workshop:
        return "seckill"
    digest = hashlib.sha1(str(s.run_dir).encode()).hexdigest()[:8]
    if s.workshop:
        return f"seckill-{_user_label()}-{digest}"
    return "seckill-" + digest


def _user_label() -> str:
    """This Unix user's name as a Compose project may spell it (lower-case letters, digits, - and _)."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = ""
    return re.sub(r"[^a-z0-9_-]", "", name.lower())[:24] or f"uid{os.getuid()}"


def compose_env(s: Settings) -> dict[str, str]:
    """The environment docker-compose.yml is interpolated with (ports, credentials, images, nginx dir)."""
    env = dict(os.environ)
    env.update({
        "SECKILL_REDIS_PORT": str(s.ports.redis), "SECKILL_POSTGRES_PORT": str(s.ports.postgres),
        "SECKILL_AMQP_PORT": str(s.ports.amqp), "SECKILL_REDIS_REPLICA_PORT": str(s.ports.redis_replica),
        "SECKILL_SENTINEL_PORT": str(s.ports.sentinel), "SECKILL_REDIS_MASTER": s.redis_master,
        "SECKILL_NGINX_DIR": str(s.run_dir / "nginx"),
        "SECKILL_PG_SHARED_BUFFERS_MB": str(s.pg_shared_buffers_mb),
        # the learner's own (workshop mode) or the single-learner defaults: "" is no Redis password
        "SECKILL_REDIS_PASSWORD": s.redis_password, "SECKILL_AMQP_USER": s.amqp_user,
        "SECKILL_AMQP_PASSWORD": s.amqp_password, "SECKILL_PG_PASSWORD": s.pg_password,
    })
    for name, default in IMAGE_VARIABLES.items():
        env[name] = os.environ.get(name) or default
    return env


def _compose(s: Settings, *args: str, profiles: tuple[str, ...] = (), timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess:
    base = compose_command()
    if base is None:
        raise DockerError("neither `docker compose` nor `docker-compose` works; install one "
                          "(Docker Desktop has both) or use SECKILL_BACKEND=native")
    cmd = [*base, "-p", project_name(s), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        cmd += ["--profile", profile]
    try:
        result = subprocess.run([*cmd, *args], env=compose_env(s), text=True, capture_output=True,
                                timeout=timeout, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        raise DockerError(f"`{' '.join(base)} {' '.join(args)}` did not finish in {timeout:.0f} s; "
                          "is the Docker engine busy? see `docker ps`") from None
    if check and result.returncode != 0:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])[:400]
        raise DockerError(f"`{' '.join(base)} {' '.join(args)}` failed: {tail}")
    return result


# -- one container's state -------------------------------------------------------------

def containers(s: Settings, *, one_off: bool = False) -> dict[str, str]:
    """{service: container id} of the project's containers (asked of the engine: fast, any Compose)."""
    try:
        result = subprocess.run(
            ["docker", "ps", "-a", "--no-trunc", "--filter", f"label=com.docker.compose.project={project_name(s)}",
             "--format", '{{.ID}} {{.Label "com.docker.compose.service"}} {{.Label "com.docker.compose.oneoff"}}'],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerError(f"docker ps did not answer ({exc.__class__.__name__}); is the Docker engine running?") from None
    if result.returncode != 0:
        raise DockerError(f"docker ps failed: {result.stderr.strip()[:200]}")
    found = {}
    for line in result.stdout.splitlines():
        cid, service, oneoff = (line.split() + ["", ""])[:3]
        if (oneoff.lower() == "true") == one_off:
            found.setdefault(service, cid)
    return found


def container_id(s: Settings, service: str) -> str | None:
    return containers(s).get(service)


def state(s: Settings, service: str) -> dict:
    """{"status": running|paused|exited|created|missing, "health": healthy|unhealthy|starting|None}."""
    cid = container_id(s, service)
    if cid is None:
        return {"status": "missing", "health": None}
    result = subprocess.run(["docker", "inspect", "--format", "{{json .State}}", cid],
                            capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        return {"status": "missing", "health": None}
    data = json.loads(result.stdout)
    return {"status": data.get("Status", "unknown"), "health": (data.get("Health") or {}).get("Status"),
            "container": cid}


def _wait_healthy(s: Settings, services: tuple[str, ...], timeout: float, out: TextIO | None) -> None:
    deadline = time.monotonic() + timeout
    pending = list(services)
    t0 = time.monotonic()
    while pending and time.monotonic() < deadline:
        for service in list(pending):
            st = state(s, service)
            if st["status"] == "running" and st["health"] in ("healthy", None):
                pending.remove(service)
                _say(out, f"• {service:<9}healthy in {time.monotonic() - t0:.1f} s (container {st.get('container', '')[:12]})")
            elif st["status"] in ("exited", "dead", "missing"):
                raise DockerError(f"container {service} {st['status']}; see `seckill logs {service}`")
        if pending:
            time.sleep(0.5)
    if pending:
        raise DockerError(f"{', '.join(pending)} not healthy within {timeout:.0f} s; see `seckill logs SERVICE`")


def _say(out: TextIO | None, text: str) -> None:
    if out is not None:
        out.write(text + "\n")
        out.flush()


# -- the stack ------------------------------------------------------------------------

def up(s: Settings | None = None, out: TextIO | None = None, services: tuple[str, ...] = SERVICES) -> None:
    """Create or start the services (idempotent) and wait until their health checks pass."""
    s = s or settings()
    _say(out, f"• starting {', '.join(services)} with {' '.join(compose_command() or ['docker compose'])} "
              f"(project {project_name(s)}) …")
    _compose(s, "up", "-d", "--no-recreate", *services, timeout=START_TIMEOUT_S)
    _wait_healthy(s, services, START_TIMEOUT_S, out)


def down(s: Settings | None = None, *, volumes: bool = False) -> list[str]:
    """Remove every container and network of the project (all profiles); volumes only if asked.

    Returns the services that had a container.
    """
    s = s or settings()
    present = list(containers(s)) + [f"{name} (one-off)" for name in containers(s, one_off=True)]
    # the Redis family's anonymous /data volumes (of the image's VOLUME) go with their containers
    family = [name for name in ("redis-net", "redis-replica", "redis-sentinel") if name in present]
    if family:
        _compose(s, "rm", "-s", "-f", "-v", *family, profiles=PROFILES, timeout=120)
    args = ["down", "--remove-orphans", "-t", "10"] + (["-v"] if volumes else [])
    _compose(s, *args, profiles=PROFILES, timeout=120)
    left = list(containers(s).values()) + list(containers(s, one_off=True).values())
    if left:  # e.g. a one-off `run` container whose client was killed: nothing of ours stays
        _engine("rm", "-f", "-v", *left)
    return present


def stop(service: str, *, kill: bool = False, s: Settings | None = None) -> bool:
    """``compose stop`` (SIGTERM, clean) or ``compose kill`` (SIGKILL: a crash). Returns whether it ran."""
    s = s or settings()
    st = state(s, service)
    running = st["status"] in ("running", "paused")
    if running:  # by container id: `docker kill` at once, without Compose's start-up time
        if st["status"] == "paused":
            _engine("unpause", st["container"])
        _engine(*(["kill"] if kill else ["stop", "-t", "20"]), st["container"])
    return running


def _engine(*args: str, timeout: float = 60) -> None:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise DockerError(f"`docker {' '.join(args)}` failed: {result.stderr.strip()[:300]}")


def start(service: str, *, s: Settings | None = None, out: TextIO | None = None) -> None:
    """Start one service again (create it if missing, unpause it if paused) and wait for its health."""
    s = s or settings()
    st = state(s, service)["status"]
    if st == "paused":
        _compose(s, "unpause", service, profiles=PROFILES)
    else:
        profiles = PROFILES if service not in SERVICES else ()
        _compose(s, "up", "-d", "--no-recreate", service, profiles=profiles, timeout=START_TIMEOUT_S)
    _wait_healthy(s, (service,), START_TIMEOUT_S, out)


def pause(service: str, *, s: Settings | None = None) -> None:
    """Freeze every process of the service (cgroup freezer), as in a long VM pause."""
    _compose(s or settings(), "pause", service, profiles=PROFILES)


def unpause(service: str, *, s: Settings | None = None) -> None:
    _compose(s or settings(), "unpause", service, profiles=PROFILES)


def remove(services: tuple[str, ...], *, s: Settings | None = None) -> list[str]:
    """Stop and remove these services' containers and their anonymous volumes; returns those that existed."""
    s = s or settings()
    existed = [name for name in services if container_id(s, name)]
    if existed:
        _compose(s, "rm", "-s", "-f", "-v", *existed, profiles=PROFILES)
    return existed


def remove_file(service: str, path: str, *, s: Settings | None = None) -> None:
    """Delete a file in a (stopped) service's volumes, e.g. Redis's /data/dump.rdb, via a throw-away container."""
    s = s or settings()
    _compose(s, "run", "--rm", "--no-deps", "-T", "--entrypoint", "rm", service, "-f", path,
             profiles=PROFILES, timeout=120)


def logs(service: str, lines: int = 60, *, s: Settings | None = None) -> str:
    s = s or settings()
    result = _compose(s, "logs", "--no-color", "--tail", str(lines), service, profiles=PROFILES, check=False)
    return (result.stdout + result.stderr).strip() or f"(no log: {service} has no container)"


def foreground_command(service: str, s: Settings | None = None) -> list[str]:
    """The command that runs a profile service in the foreground (``compose run --rm``), for
    processes.start: its stop signal reaches the container, which is removed when it ends."""
    s = s or settings()
    base = compose_command()
    if base is None:
        raise DockerError("neither `docker compose` nor `docker-compose` works; install one or use "
                          "SECKILL_BACKEND=native")
    variables = [f"{k}={v}" for k, v in compose_env(s).items()
                 if (k.startswith("SECKILL_") and k not in SECRET_VARIABLES) or k == "DOCKER_HOST"]
    return ["env", *variables, *base, "-p", project_name(s), "-f", str(COMPOSE_FILE),
            *[a for p in PROFILES for a in ("--profile", p)], "run", "--rm", "--no-deps", "-T", service]


def tool_command(tool: str, *, env: dict[str, str] | None = None, s: Settings | None = None) -> list[str]:
    """The command that runs wrk or redis-benchmark in the `tools` service (host network, services/measure/wrk
    mounted at /wrk), for machines without them; ``env`` is passed into the container."""
    command = foreground_command("tools", s)
    extra = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    return [*command[:-1], *extra, "tools", tool]
