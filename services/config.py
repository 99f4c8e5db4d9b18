"""Where everything lives and listens: one place for ports, paths and limits.

Every value can be overridden with an environment variable (``SECKILL_*``), so a
learner whose machine already uses a port moves the course elsewhere without
editing code. The defaults are *not* the services' usual ports (6379, 5432,
5672): the course's servers coexist with any system Redis, PostgreSQL or
RabbitMQ already running.

Many learners on one host (a workshop): ``SECKILL_PORT_BASE=N`` puts every port of the stack in the
block N … N+31 (layout in :data:`BLOCK`), and ``SECKILL_WORKSHOP=1`` without a base picks the block
from the Unix uid, the run dir from the home directory, and generated credentials (credentials.py).
A port given one by one (``SECKILL_REDIS_PORT`` …) still wins over the block.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seckill import credentials
from seckill.errors import SeckillError

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # everything binds to loopback only
# nginx connects to the gateways from this address of its own (proxy_bind), so the
# gateways behind it can trust X-Forwarded-For from nginx and from nobody else on the host.
NGINX_SOURCE = "127.0.80.80"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; unset it or give a port like {default}") from None


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; unset it or give a value like {default}") from None


def on_unless_off(name: str, environ=os.environ) -> bool:
    """A speed-up's A/B switch: on unless ``name`` is 0/false/off/no (anything else, or unset, is on)."""
    return environ.get(name, "1").strip().lower() not in ("0", "false", "off", "no")


def _bool_env(name: str, default: bool) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: use 1 or 0")


class ConfigError(SeckillError):
    """A setting the user gave cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Ports:
    redis: int = 16379
    postgres: int = 15432
    amqp: int = 16672
    rabbitmq_dist: int = 16673
    epmd: int = 16369
    gateway: int = 18000
    nginx: int = 18080
    redis_replica: int = 16380   # failure lab redis-failover: the replica
    sentinel: int = 16381        # ... and the Sentinel watching the primary

    jupyterlab: int = 18888      # `make lab` (SECKILL_LAB_PORT); under JupyterHub the hub picks it

    @classmethod
    def from_env(cls) -> "Ports":
        base = port_base()
        defaults = cls() if base is None else cls.block(base)
        return cls(**{name: _int_env(_PORT_ENV.get(name, f"SECKILL_{name.upper()}_PORT"), getattr(defaults, name))
                      for name in defaults.__dataclass_fields__})

    @classmethod
    def block(cls, base: int) -> "Ports":
        """Every port at its offset in the block base … base+BLOCK_SIZE-1 (see BLOCK)."""
        return cls(**{name: base + offset for name, offset in BLOCK.items()})

    def all(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


_PORT_ENV = {"jupyterlab": "SECKILL_LAB_PORT"}
# One stack's ports inside its block. The gateway comes last: the tiers behind nginx put their
# instances on the ports after it (gateway+1 … gateway+N), up to the end of the block.
BLOCK = {"redis": 0, "redis_replica": 1, "sentinel": 2, "postgres": 3, "amqp": 4, "rabbitmq_dist": 5,
         "epmd": 6, "jupyterlab": 7, "nginx": 8, "gateway": 16}
BLOCK_SIZE = 32
# Automatic blocks (workshop mode without SECKILL_PORT_BASE): 20000 + (uid mod 380) * 32, i.e.
# 20000 … 32159, below the kernel's ephemeral range (32768+) so outgoing connections never take them.
AUTO_BASE = 20000
AUTO_BLOCKS = 380


def workshop() -> bool:
    """SECKILL_WORKSHOP=1: a shared host; ports, run dir and credentials are per user."""
    return _bool_env("SECKILL_WORKSHOP", False)


def port_base(uid: int | None = None) -> int | None:
    """The first port of this stack's block: SECKILL_PORT_BASE, else from the uid in workshop mode, else None.

    Two uids that differ by a multiple of AUTO_BLOCKS share a block: `seckill up` then finds the
    ports taken and says so; give one of them SECKILL_PORT_BASE.
    """
    raw = os.environ.get("SECKILL_PORT_BASE")
    if raw:
        base = _int_env("SECKILL_PORT_BASE", 0)
        if not 1024 <= base <= 65535 - BLOCK_SIZE:
            raise ConfigError(f"SECKILL_PORT_BASE={base} is out of range; give a port between 1024 and "
                              f"{65535 - BLOCK_SIZE} (the stack takes the {BLOCK_SIZE} ports from there)")
        return base
    if workshop():
        return AUTO_BASE + ((os.getuid() if uid is None else uid) % AUTO_BLOCKS) * BLOCK_SIZE
    return None


@dataclass(frozen=True)
class Limits:
    """The gateway's protections. All of them are per tier configurable."""

    bucket_capacity: float = 5000.0  # global token bucket: burst size
    bucket_rate: float = 5000.0      # global token bucket: tokens per second
    user_limit: int = 5              # per user, per window (the seed's Q2: 10 s / 5)
    ip_limit: int = 100              # per client IP, per window (10 s / 100)
    window_s: float = 10.0
    nginx_rate: float = 3000.0       # nginx limit_req, requests per second (tiers behind nginx)
    nginx_burst: int = 1000          # requests above the rate let through at once; beyond: 429
    local_slice: int = 20            # tier local-stock: units an instance leases from Redis at a time

    @classmethod
    def from_env(cls) -> "Limits":
        d = cls()
        return cls(
            bucket_capacity=_float_env("SECKILL_BUCKET_CAPACITY", d.bucket_capacity),
            bucket_rate=_float_env("SECKILL_BUCKET_RATE", d.bucket_rate),
            user_limit=_int_env("SECKILL_USER_LIMIT", d.user_limit),
            ip_limit=_int_env("SECKILL_IP_LIMIT", d.ip_limit),
            window_s=_float_env("SECKILL_LIMIT_WINDOW_S", d.window_s),
            nginx_rate=_float_env("SECKILL_NGINX_RATE", d.nginx_rate),
            nginx_burst=_int_env("SECKILL_NGINX_BURST", d.nginx_burst),
            local_slice=_int_env("SECKILL_LOCAL_SLICE", d.local_slice),
        )


@dataclass(frozen=True)
class Settings:
    run_dir: Path
    ports: Ports
    limits: Limits = field(default_factory=Limits)
    pg_user: str = "seckill"
    pg_password: str = "seckill"
    pg_database: str = "seckill"
    queue: str = "orders"
    # Peers whose X-Forwarded-For is believed (addresses or networks). Nobody by default:
    # a tier reached directly counts the TCP peer; the tiers behind nginx trust NGINX_SOURCE.
    trusted_proxies: tuple[str, ...] = ()
    # Load-test switch (off by default, announced in the gateway's start line): believe
    # X-Forwarded-For from every loopback peer, for generators that cannot bind a source
    # address per simulated client (wrk, locust). SECKILL_LOADTEST_FORWARDED=1.
    loadtest_forwarded: bool = False
    admin_token: str = "seckill-admin"
    # Sentinel "host:port" (failure lab redis-failover): when set, the gateways ask it
    # where the primary of `redis_master` is instead of using the fixed Redis port.
    redis_sentinel: str = ""
    redis_master: str = "seckill"
    # With Redis down, answer 409 sold_out from memory for a product this process saw
    # sold out (everything else: 503). SECKILL_DEGRADE_SOLD_OUT=0 turns it off.
    degrade_sold_out: bool = True
    # Workshop mode (credentials.py): Redis requirepass and the RabbitMQ user; "" = no password, guest.
    redis_password: str = ""
    amqp_user: str = "guest"
    amqp_password: str = "guest"
    workshop: bool = False
    # Sizing for a shared host (`seckill workshop plan`): PostgreSQL's shared_buffers, and RabbitMQ's
    # memory high-watermark as an absolute size (0: RabbitMQ's default, 40 % of the machine's RAM).
    pg_shared_buffers_mb: int = 128
    rabbitmq_watermark_mb: int = 0

    @classmethod
    def from_env(cls) -> "Settings":
        shared = workshop()
        run_dir = Path(os.environ.get("SECKILL_RUN_DIR") or default_run_dir(shared)).resolve()
        proxies = os.environ.get("SECKILL_TRUSTED_PROXIES")
        secret: dict = {}
        if shared:
            try:
                secret = credentials.load_or_create(run_dir)
            except credentials.CredentialsError as exc:
                raise ConfigError(str(exc)) from None
        return cls(
            run_dir=run_dir,
            ports=Ports.from_env(),
            limits=Limits.from_env(),
            queue=os.environ.get("SECKILL_QUEUE", "orders"),
            trusted_proxies=tuple(p.strip() for p in proxies.split(",") if p.strip()) if proxies is not None
            else cls.trusted_proxies,
            admin_token=secret.get("admin_token") or os.environ.get("SECKILL_ADMIN_TOKEN", cls.admin_token),
            redis_sentinel=os.environ.get("SECKILL_REDIS_SENTINEL", ""),
            redis_master=os.environ.get("SECKILL_REDIS_MASTER", cls.redis_master) or cls.redis_master,
            degrade_sold_out=_bool_env("SECKILL_DEGRADE_SOLD_OUT", cls.degrade_sold_out),
            pg_password=secret.get("pg_password", cls.pg_password),
            redis_password=secret.get("redis_password", ""),
            amqp_user=secret.get("amqp_user", cls.amqp_user),
            amqp_password=secret.get("amqp_password", cls.amqp_password),
            workshop=shared,
            pg_shared_buffers_mb=_int_env("SECKILL_PG_SHARED_BUFFERS_MB", cls.pg_shared_buffers_mb),
            rabbitmq_watermark_mb=_int_env("SECKILL_RABBITMQ_WATERMARK_MB", cls.rabbitmq_watermark_mb),
            loadtest_forwarded=_bool_env("SECKILL_LOADTEST_FORWARDED", cls.loadtest_forwarded),
        )

    # -- connection URLs -------------------------------------------------
    @property
    def redis_url(self) -> str:
        auth = f":{self.redis_password}@" if self.redis_password else ""
        return f"redis://{auth}{HOST}:{self.ports.redis}/0"

    @property
    def postgres_url(self) -> str:
        return (f"postgresql://{self.pg_user}:{self.pg_password}@{HOST}:{self.ports.postgres}"
                f"/{self.pg_database}")

    @property
    def amqp_url(self) -> str:
        # %2F is the default virtual host "/"; the timeouts make a dead broker fail fast.
        return f"amqp://{self.amqp_user}:{self.amqp_password}@{HOST}:{self.ports.amqp}/%2F?connection_attempts=1&socket_timeout=3"

    def urls(self) -> dict[str, str]:
        return {"redis": self.redis_url, "postgres": self.postgres_url, "amqp": self.amqp_url}


def default_run_dir(shared: bool = False) -> Path:
    """.run/ in the checkout; in workshop mode ~/.local/state/seckill, so a course installed once
    for everyone still gives each user a run dir of their own."""
    if shared:
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "seckill"
    return REPO_ROOT / ".run"


def settings() -> Settings:
    """Read the settings afresh (cheap), so a changed environment takes effect."""
    return Settings.from_env()
