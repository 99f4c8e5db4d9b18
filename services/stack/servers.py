"""How to run Redis, PostgreSQL and RabbitMQ as plain processes of this checkout.

Each server gets its own folder under ``.run/`` for data and a log under
``.run/logs/``, listens on 127.0.0.1 on a project port (see config.py), and is
checked with a real client before we call it ready: a TCP port that accepts is
not yet a database that answers.

Facts that shaped this file:
  * PostgreSQL refuses to run as root, so as root we run it as the ``postgres``
    user (the Debian package creates it), with its data dir owned by that user.
  * RabbitMQ's Erlang VM needs a node name, a distribution port and an epmd port
    of its own, plus a HOME for its cookie; two checkouts (or a system RabbitMQ)
    then never collide.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from seckill.stack import installer, processes
from seckill.config import HOST, Settings


@dataclass(frozen=True)
class NativeServer:
    name: str
    port: int
    stop_signal: int
    prepare: Callable[[], tuple[list[str], dict, str | None]]  # -> command, env, user
    ready: Callable[[], bool]
    timeout: float = 60.0


# -- Redis -------------------------------------------------------------------

def redis_server(s: Settings) -> NativeServer:
    def prepare():
        data = s.run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [installer.find("redis") or "redis-server"]
        if s.redis_password:
            # In a private file, not on the command line: /proc/<pid>/cmdline is world-readable.
            cmd.append(str(private_file(data / "auth.conf", redis_auth_conf(s))))
        cmd += ["--bind", HOST, "--port", str(s.ports.redis),
               "--dir", str(data), "--dbfilename", "dump.rdb",
               "--save", "60 1000",          # snapshot now and then, and on shutdown
               "--appendonly", "no", "--daemonize", "no", "--logfile", "",
               "--maxclients", "4096",
               # keep /proc/<pid>/environ readable: `seckill down` finds our processes by it
               "--set-proc-title", "no"]
        return cmd, {}, None

    def ready() -> bool:
        import redis
        try:
            return bool(redis.Redis.from_url(s.redis_url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    return NativeServer("redis", s.ports.redis, signal.SIGTERM, prepare, ready, timeout=30)


def redis_auth_conf(s: Settings) -> str:
    """Workshop mode: every Redis of the stack asks for the password and, as a replica, gives it.

    ``masterauth`` lets the primary follow a promoted replica (the failover lab's fail-back, or
    Sentinel turning a returning primary into a replica) without a second configuration.
    """
    return f"requirepass {s.redis_password}\nmasterauth {s.redis_password}\n"


def private_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600 from the start)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# -- PostgreSQL --------------------------------------------------------------

def _postgres_user() -> str | None:
    """The unprivileged user PostgreSQL runs as when we are root (None: ourselves)."""
    if not installer.is_root():
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise installer.MissingServers("running as root, but there is no 'postgres' user to run PostgreSQL as; "
                                   "install the postgresql package or run as a normal user")


def _reachable_by(user: str, path: Path) -> bool:
    """Can ``user`` reach ``path``? (A checkout under /root is not reachable by postgres.)"""
    probe = subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(path)],
                           capture_output=True)
    return probe.returncode == 0


def postgres_home(s: Settings) -> Path:
    """Where the cluster lives: .run/postgres, or a reachable folder it links to."""
    home = s.run_dir / "postgres"
    user = _postgres_user()
    if home.is_symlink():
        # the link's target: the postgres user may not traverse .run/ (a run dir of mode 0700)
        return home.resolve()
    home.mkdir(parents=True, exist_ok=True)  # a fresh run dir (a learner's first `seckill up`) has none
    if user is None:
        return home
    shutil.chown(home, user=user)
    if _reachable_by(user, home):
        return home
    # The checkout sits where the postgres user cannot go: keep the cluster in
    # /var/tmp and leave a link in .run/ so `seckill reset` still finds it.
    digest = hashlib.sha1(str(s.run_dir).encode()).hexdigest()[:10]
    elsewhere = Path("/var/tmp") / f"seckill-postgres-{digest}"
    elsewhere.mkdir(parents=True, exist_ok=True)
    shutil.chown(elsewhere, user=user)
    home.rmdir()
    home.symlink_to(elsewhere)
    return elsewhere


def postgres_server(s: Settings) -> NativeServer:
    def prepare():
        user = _postgres_user()
        home = postgres_home(s)
        data = home / "data"
        if not (data / "PG_VERSION").exists():
            pwfile = private_file(home / "pwfile", s.pg_password + "\n")
            if user:
                shutil.chown(pwfile, user=user)
            initdb = [installer.sibling("postgres", "initdb"), "-D", str(data), "-U", s.pg_user,
                      "--pwfile", str(pwfile),
                      # workshop mode: a password on the socket too, no `trust` line in pg_hba.conf
                      "--auth-local=" + ("scram-sha-256" if s.workshop else "trust"), "--auth-host=scram-sha-256",
                      "-E", "UTF8", "--locale=C"]
            result = subprocess.run(initdb, capture_output=True, text=True, user=user)
            pwfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise processes.StartError("initdb failed: " + (result.stderr or result.stdout).strip()[-400:])
        cmd = [installer.find("postgres") or "postgres", "-D", str(data),
               "-p", str(s.ports.postgres), "-k", str(home),
               "-c", f"listen_addresses={HOST}", "-c", "max_connections=300",
               "-c", f"shared_buffers={s.pg_shared_buffers_mb}MB", "-c", "logging_collector=off"]
        return cmd, {}, user

    def ready() -> bool:
        import psycopg
        admin = s.postgres_url.rsplit("/", 1)[0] + "/postgres"
        try:
            with psycopg.connect(admin, connect_timeout=2, autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (s.pg_database,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{s.pg_database}"')
            return True
        except psycopg.OperationalError:
            return False

    return NativeServer("postgres", s.ports.postgres, signal.SIGINT, prepare, ready, timeout=60)


# -- RabbitMQ ----------------------------------------------------------------

def rabbitmq_node(s: Settings) -> str:
    digest = hashlib.sha1(str(s.run_dir).encode()).hexdigest()[:8]
    return f"seckill-{digest}@localhost"


def rabbitmq_server(s: Settings) -> NativeServer:
    base = s.run_dir / "rabbitmq"

    def prepare():
        for sub in ("mnesia", "log", "home"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf = (f"listeners.tcp.default = {HOST}:{s.ports.amqp}\n"
                # a small disk must not stop publishers in a course
                "disk_free_limit.absolute = 50MB\n")
        if s.rabbitmq_watermark_mb:
            # many brokers on one host: each one's share, not 40 % of the whole machine each
            conf += f"vm_memory_high_watermark.absolute = {s.rabbitmq_watermark_mb}MB\n"
        if s.amqp_user != "guest":
            # workshop mode: the broker's first boot creates this user instead of guest/guest
            conf += f"default_user = {s.amqp_user}\ndefault_pass = {s.amqp_password}\n"
        private_file(base / "rabbitmq.conf", conf)
        (base / "enabled_plugins").write_text("[].\n")
        env = {
            "HOME": str(base / "home"),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": rabbitmq_node(s),
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(s.ports.amqp),
            "RABBITMQ_DIST_PORT": str(s.ports.rabbitmq_dist),
            "ERL_EPMD_PORT": str(s.ports.epmd),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            # a VM that fails to boot writes its crash dump here, not into the cwd
            "ERL_CRASH_DUMP": str(base / "log" / "erl_crash.dump"),
            # Make the start script exec the Erlang VM instead of keeping a shell
            # parent that forwards signals: the pid we record is then the broker
            # itself, and SIGTERM to it is RabbitMQ's own clean shutdown.
            "RUNNING_UNDER_SYSTEMD": "true",
        }
        return [installer.find("rabbitmq") or "rabbitmq-server"], env, None

    def ready() -> bool:
        import pika
        try:
            conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
            conn.close()
            return True
        except Exception:  # pika raises many kinds while the broker boots
            return False

    return NativeServer("rabbitmq", s.ports.amqp, signal.SIGTERM, prepare, ready, timeout=90)


def all_servers(s: Settings) -> list[NativeServer]:
    return [redis_server(s), postgres_server(s), rabbitmq_server(s)]


def start(s: Settings, server: NativeServer) -> processes.Record:
    command, env, user = server.prepare()
    return processes.start(s.run_dir, server.name, command, port=server.port, ready=server.ready,
                           env=env, user=user, timeout=server.timeout, stop_signal=server.stop_signal)


def data_paths(s: Settings) -> list[Path]:
    """Everything `seckill reset` wipes."""
    paths = [s.run_dir / "redis", s.run_dir / "rabbitmq", s.run_dir / "logs"]
    pg = s.run_dir / "postgres"
    if pg.is_symlink():
        paths.append(Path(os.readlink(pg)))
    paths.append(pg)
    return paths
