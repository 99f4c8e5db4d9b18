"""A Redis replica and a Sentinel beside the course's Redis (failure lab redis-failover).

The seed's first answer to "Redis挂了？" is 主从切换 (< 30 s): a replica follows
the primary, Sentinel watches it, and when the primary stops answering Sentinel
promotes the replica and tells clients where the new primary is. This module
runs that arrangement as two more native processes of this checkout:

  * ``redis-replica``: ``redis-server --replicaof <primary>`` on its own port
    (``SECKILL_REDIS_REPLICA_PORT``), data under .run/redis-replica;
  * ``redis-sentinel``: ``redis-server <conf> --sentinel`` on
    ``SECKILL_SENTINEL_PORT``, monitoring the primary as ``seckill``.

On the docker backend the two are services of docker-compose.yml (profile
``failover``) sharing the primary's network namespace, on the same ports; the
partition there is :class:`ReplicaCut` (the host's relay cannot sit between
two containers), see :func:`replication_link`.

One Sentinel with quorum 1 is enough to watch a failover happen on one
machine, and only that: in production you run at least three Sentinels on
separate machines, so that one Sentinel cut off from the primary cannot
promote a replica on its own (a split brain). Both processes carry the
checkout's marker, so ``seckill down`` stops them with everything else.

In workshop mode (Redis with a password, see seckill.credentials) the two
carry the stack's password too: the replica authenticates to the primary
(``masterauth``) and asks it of its own clients (``requirepass``, it becomes
the primary); Sentinel authenticates to both (``sentinel auth-pass``) and asks
it of its clients. The password goes into files of mode 0600 in the run dir
(mode 0700), never onto a command line, which every user can read in /proc.

Replication is asynchronous: the primary acknowledges a write before the
replica has it. Whatever the primary acknowledged in its last moments and
had not yet sent is gone after the failover; that is what the lab measures.
On loopback that window is microseconds, so the lab widens it the way a real
network does: the replica replicates through a :class:`ReplicationLink`, a
relay the lab can cut (a partition between primary and replica). The primary
goes on acknowledging; what it sends into the cut never arrives.
"""

from __future__ import annotations

import shutil
import signal
import socket
import threading
import time
from typing import TextIO

import redis as redis_lib

from seckill.stack import docker_backend, installer, processes, servers
from seckill import stack
from seckill.config import HOST, Settings
from seckill.errors import SeckillError

REPLICA = "redis-replica"
SENTINEL = "redis-sentinel"
DOWN_AFTER_MS = 1000       # Sentinel calls the primary down after 1 s without an answer
FAILOVER_TIMEOUT_MS = 120_000


class SentinelError(SeckillError):
    """The replica or Sentinel could not be started or did not do its job; the message says why."""


def _client(port: int, password: str = "", **kwargs) -> redis_lib.Redis:
    """A client of one of the family (primary, replica, Sentinel): all share the stack's password."""
    return redis_lib.Redis(host=HOST, port=port, password=password or None, socket_connect_timeout=1,
                           socket_timeout=2, decode_responses=True, **kwargs)


def sentinel_address(s: Settings) -> str:
    """The value for SECKILL_REDIS_SENTINEL that points clients at our Sentinel."""
    return f"{HOST}:{s.ports.sentinel}"


def client_env(s: Settings) -> dict[str, str]:
    """The environment that makes the gateways find the primary through Sentinel."""
    return {"SECKILL_REDIS_SENTINEL": sentinel_address(s), "SECKILL_REDIS_MASTER": s.redis_master}


def _redis_binary() -> str:
    return installer.find("redis") or "redis-server"


class ReplicationLink:
    """A TCP relay on 127.0.0.1 between the replica and the primary, which the lab can cut.

    Connected, it passes bytes both ways. ``cut()`` makes it drop everything the
    primary sends from then on (the replica's own messages still reach the
    primary, which therefore sees nothing wrong) — a one-way partition, the
    way a congested or broken network loses a replication stream. When the
    primary dies, the relay closes the replica's side, as a dead peer would.
    """

    def __init__(self, primary_port: int):
        self.primary_port = primary_port
        self._server = socket.create_server((HOST, 0))
        self.port = self._server.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self.dropped_bytes = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="replication-link", daemon=True).start()

    def cut(self) -> None:
        self._cut.set()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def close(self) -> None:
        self._closed.set()
        for sock in [self._server, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                replica, _ = self._server.accept()
                primary = socket.create_connection((HOST, self.primary_port), timeout=2)
                primary.settimeout(None)
            except OSError:
                if self._closed.is_set():
                    return
                try:
                    replica.close()
                except (OSError, UnboundLocalError):
                    pass
                continue
            self._sockets += [replica, primary]
            threading.Thread(target=self._pump, args=(primary, replica, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(replica, primary, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_primary: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_primary and self._cut.is_set():
                    self.dropped_bytes += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ReplicaCut:
    """The docker backend's partition between primary and replica, made inside Redis.

    ``cut()`` points the replica at a port where nothing listens (REPLICAOF
    127.0.0.1 1): it keeps its data but hears nothing more, and keeps trying
    to reconnect, as across a broken network. The primary, which never waits
    for replicas, goes on acknowledging writes that never reach it — what
    :class:`ReplicationLink` does with its relay on the host, which the
    containers' shared namespace cannot reach. Sentinel still knows the
    replica and promotes it when the primary dies.
    """

    NOWHERE = 1           # a port nobody listens on in the Redis family's namespace
    port = None           # the replica follows the primary directly until the cut
    dropped_bytes = None  # not counted: nothing is sent at all

    def __init__(self, replica_port: int, password: str = ""):
        self.replica_port = replica_port
        self.password = password
        self._cut = False

    def cut(self) -> None:
        _client(self.replica_port, self.password).replicaof(HOST, self.NOWHERE)
        self._cut = True

    @property
    def is_cut(self) -> bool:
        return self._cut

    def close(self) -> None:
        pass  # the replica is promoted or removed by the lab's fail-back


def replication_link(s: Settings) -> "ReplicationLink | ReplicaCut":
    """What the lab cuts: a host relay natively, the replica's REPLICAOF on the docker backend."""
    if stack.backend() == "docker":
        return ReplicaCut(s.ports.redis_replica, s.redis_password)
    return ReplicationLink(s.ports.redis)


def _docker_start(s: Settings, out: TextIO | None) -> None:
    _client(s.ports.redis, s.redis_password).config_set("repl-diskless-sync-delay", 0)
    docker_backend.remove((SENTINEL, REPLICA), s=s)  # both start afresh, as the native ones do
    t0 = time.monotonic()
    docker_backend.start(REPLICA, s=s)
    if not processes.wait_until(lambda: replica_synced(s), timeout=30):
        raise SentinelError(f"the replica did not sync within 30 s; see `seckill logs {REPLICA}`")
    if out:
        print(f"• {REPLICA:<15}synced with the primary in {time.monotonic() - t0:.1f} s", file=out, flush=True)
    t0 = time.monotonic()
    docker_backend.start(SENTINEL, s=s)
    if not processes.wait_until(lambda: sentinel_knows_replica(s), timeout=30):
        raise SentinelError(f"Sentinel did not find the replica within 30 s; see `seckill logs {SENTINEL}`")
    if out:
        print(f"• {SENTINEL:<15}watching the primary in {time.monotonic() - t0:.1f} s", file=out, flush=True)


def start(s: Settings, out: TextIO | None = None, replicate_via: int | None = None) -> None:
    """Start the replica (synced with the primary), then Sentinel (knowing the replica).

    ``replicate_via``: the port of a :class:`ReplicationLink` to replicate
    through, instead of connecting to the primary directly (native only).
    """
    if stack.backend() == "docker":
        try:
            return _docker_start(s, out)
        except docker_backend.DockerError as exc:
            raise SentinelError(str(exc)) from None
    for name, port in ((REPLICA, s.ports.redis_replica), (SENTINEL, s.ports.sentinel)):
        processes.stop(s.run_dir, name, timeout=10)
        if processes.port_open(port):
            env_var = "SECKILL_REDIS_REPLICA_PORT" if name == REPLICA else "SECKILL_SENTINEL_PORT"
            raise SentinelError(f"port {port} for {name} is taken by {processes.who_listens(port)}; "
                                f"stop it or set {env_var} to a free port")
    # the first full sync at once, not after Redis's default 5 s wait for more replicas
    _client(s.ports.redis, s.redis_password).config_set("repl-diskless-sync-delay", 0)
    data = s.run_dir / "redis-replica"
    shutil.rmtree(data, ignore_errors=True)  # a replica starts from a full sync anyway
    data.mkdir(parents=True)
    t0 = time.monotonic()
    auth = [str(servers.private_file(data / "auth.conf", servers.redis_auth_conf(s)))] if s.redis_password else []
    processes.start(s.run_dir, REPLICA, [
        _redis_binary(), *auth, "--bind", HOST, "--port", str(s.ports.redis_replica), "--dir", str(data),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "", "--set-proc-title", "no",
        "--replicaof", HOST, str(replicate_via or s.ports.redis)],
        port=s.ports.redis_replica, ready=lambda: replica_synced(s), timeout=30)
    if out:
        print(f"• {REPLICA:<15}synced with the primary in {time.monotonic() - t0:.1f} s", file=out, flush=True)

    conf_dir = s.run_dir / "redis-sentinel"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "sentinel.conf"  # written afresh: Sentinel rewrites it with what it learns
    auth = [f"sentinel auth-pass {s.redis_master} {s.redis_password}",  # to talk to primary and replica
            f"requirepass {s.redis_password}"] if s.redis_password else []  # and to be talked to
    servers.private_file(conf, "\n".join([
        f"bind {HOST}", f"port {s.ports.sentinel}", "daemonize no", 'logfile ""', "set-proc-title no",
        f"dir {conf_dir}", "sentinel resolve-hostnames no",
        f"sentinel monitor {s.redis_master} {HOST} {s.ports.redis} 1",   # quorum 1: one Sentinel decides
        f"sentinel down-after-milliseconds {s.redis_master} {DOWN_AFTER_MS}",
        # also how long Sentinel tolerates a replica that follows the primary through
        # another address (our ReplicationLink) before it "corrects" it: longer than the lab
        f"sentinel failover-timeout {s.redis_master} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {s.redis_master} 1", *auth, ""]))
    t0 = time.monotonic()
    processes.start(s.run_dir, SENTINEL, [_redis_binary(), str(conf), "--sentinel"],
                    port=s.ports.sentinel, ready=lambda: sentinel_knows_replica(s), timeout=30)
    if out:
        print(f"• {SENTINEL:<15}watching the primary in {time.monotonic() - t0:.1f} s", file=out, flush=True)


def replica_synced(s: Settings, port: int | None = None) -> bool:
    try:
        info = _client(port or s.ports.redis_replica, s.redis_password).info("replication")
    except redis_lib.RedisError:
        return False
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def sentinel_knows_replica(s: Settings) -> bool:
    try:
        replicas = _client(s.ports.sentinel, s.redis_password).sentinel_slaves(s.redis_master)
    except redis_lib.RedisError:
        return False
    return any(int(r.get("port", 0)) == s.ports.redis_replica and not r.get("is_disconnected")
               and not r.get("is_sdown") for r in replicas)


def primary_port(s: Settings) -> int | None:
    """The port of the primary Sentinel names now (None when Sentinel does not answer)."""
    try:
        addr = _client(s.ports.sentinel, s.redis_password).sentinel_get_master_addr_by_name(s.redis_master)
    except redis_lib.RedisError:
        return None
    return int(addr[1]) if addr else None


def writable(port: int, password: str = "") -> bool:
    """Does a write succeed on this port now (a primary that answers)?"""
    try:
        return bool(_client(port, password).set("failover:probe", time.time(), ex=60))
    except redis_lib.RedisError:
        return False


def wait_for_promotion(s: Settings, old_port: int, timeout_s: float = 30.0, interval_s: float = 0.05) -> float | None:
    """Seconds until Sentinel names a new primary AND a write succeeds on it; None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        port = primary_port(s)
        if port and port != old_port and writable(port, s.redis_password):
            return time.monotonic() - t0
        time.sleep(interval_s)
    return None


def freeze(s: Settings, name: str = REPLICA) -> int | None:
    """SIGSTOP a process of ours (docker: pause its container): it stops reading its sockets,
    as in a long VM or GC pause."""
    if stack.backend() == "docker":
        return docker_backend.pause(name, s=s)
    return processes.kill(s.run_dir, name, sig=signal.SIGSTOP)


def thaw(s: Settings, name: str = REPLICA) -> int | None:
    if stack.backend() == "docker":
        return docker_backend.unpause(name, s=s)
    return processes.kill(s.run_dir, name, sig=signal.SIGCONT)


def _stop(s: Settings, name: str) -> bool:
    if stack.backend() == "docker":
        return bool(docker_backend.remove((name,), s=s))
    return processes.stop(s.run_dir, name, timeout=10)


def fail_back(s: Settings, out: TextIO | None = None) -> None:
    """Make the original Redis port the primary again, with the promoted replica's data; stop the rest.

    Sentinel goes first (nothing must re-arrange the roles meanwhile). The
    original Redis (restarted by the caller, empty or stale) copies the current
    primary with REPLICAOF, then becomes primary again (REPLICAOF NO ONE) and
    saves a snapshot; then the replica stops. The course's stack is as before.
    """
    _stop(s, SENTINEL)
    current = s.ports.redis_replica
    original = _client(s.ports.redis, s.redis_password)
    if current != s.ports.redis and _client(current, s.redis_password).info("replication").get("role") == "master":
        original.replicaof(HOST, current)
        if not processes.wait_until(lambda: replica_synced(s, s.ports.redis), timeout=30):
            raise SentinelError(f"the original Redis did not sync from port {current}; see `seckill logs redis`")
        original.replicaof("NO", "ONE")
        original.save()
    _stop(s, REPLICA)
    if out:
        print(f"• Redis on port {s.ports.redis} is the primary again; replica and Sentinel stopped",
              file=out, flush=True)


def stop(s: Settings) -> list[str]:
    """Stop the replica and Sentinel (a no-op when they do not run)."""
    return [name for name in (SENTINEL, REPLICA) if _stop(s, name)]
