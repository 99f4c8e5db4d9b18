"""What every lab's checks share: expect(), Check, and the Context with the servers."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

GRADER_DB = "seckill_grader"
GRADER_REDIS_DB = 15


class CheckFailed(AssertionError):
    """A check saw behaviour that is wrong; `hint` points to the idea, `detail` says what was seen."""

    def __init__(self, hint: str, detail: str | None = None) -> None:
        super().__init__(detail or hint)
        self.hint = hint
        self.detail = detail


def expect(condition: Any, hint: str, detail: str | None = None) -> None:
    if not condition:
        raise CheckFailed(hint, detail)


def not_implemented(exc: BaseException | None) -> bool:
    """Is NotImplementedError the exception or anywhere in its chain (a wrapped lab stub)?"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, NotImplementedError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class Check:
    title: str
    func: Callable[["Context", Any], None]
    hint: str  # shown when the learner's code raises instead of answering
    timeout: float = 15.0
    # titles of checks whose property this one relies on: when one of them failed, this one is
    # reported "skipped: depends on ..." instead of blaming its own property (a knock-on failure)
    depends: tuple[str, ...] = ()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Context:
    """The servers one grading run uses, isolated from the learner's running sale."""

    urls: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    # -- Redis: db 15, flushed per check -----------------------------------------
    def redis(self):
        import redis

        base = self.urls["redis"].rsplit("/", 1)[0]
        client = redis.Redis.from_url(f"{base}/{GRADER_REDIS_DB}", decode_responses=True,
                                      socket_timeout=10, socket_connect_timeout=5)
        client.flushdb()
        self.cleanups.append(client.close)
        return client

    def faulty_redis(self, drop_after: int):
        """A client of the same db (not flushed) whose reply to command `drop_after` is lost."""
        base = self.urls["redis"].rsplit("/", 1)[0]
        client = faulty_redis_class().from_url(f"{base}/{GRADER_REDIS_DB}", decode_responses=True,
                                                socket_timeout=10, socket_connect_timeout=5)
        client.drop_after = drop_after
        self.cleanups.append(client.close)
        return client

    def amqp_proxy(self) -> "TcpProxy":
        """A TcpProxy in front of RabbitMQ; give the learner's code proxy.url(ctx.amqp_url)."""
        from urllib.parse import urlparse

        parsed = urlparse(self.amqp_url)
        proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5672)
        self.cleanups.append(proxy.close)
        return proxy

    # -- RabbitMQ: a queue of our own, deleted afterwards --------------------------
    @property
    def amqp_url(self) -> str:
        return self.urls["amqp"]

    def queue(self) -> str:
        name = f"grader-{uuid.uuid4().hex[:12]}"
        self.cleanups.append(lambda: self._delete_queue(name))
        return name

    def amqp(self):
        """A connection of the grader's own (closed after the check)."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        self.cleanups.append(lambda: connection.is_open and connection.close())
        return connection

    def _delete_queue(self, name: str) -> None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            connection.channel().queue_delete(queue=name)
        finally:
            connection.close()

    def message_count(self, queue: str) -> int | None:
        """Ready messages in `queue`, or None when it does not exist."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            return connection.channel().queue_declare(queue=queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return None
        finally:
            if connection.is_open:
                connection.close()

    # -- PostgreSQL: database seckill_grader ---------------------------------------
    @property
    def pg_dsn(self) -> str:
        return self.urls["postgres"].rsplit("/", 1)[0] + f"/{GRADER_DB}"

    def bad_pg_dsn(self) -> str:
        """The grader's database at a port where nothing listens: every write fails."""
        import re

        return re.sub(r":\d+/", f":{closed_port()}/", self.pg_dsn, count=1) + "?connect_timeout=2"

    def ensure_database(self) -> None:
        import psycopg

        from seckill.stack import db

        admin = self.urls["postgres"].rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (GRADER_DB,)).fetchone():
                try:
                    conn.execute(f'CREATE DATABASE "{GRADER_DB}"')
                except psycopg.errors.DuplicateDatabase:
                    pass  # another grader was quicker
        db.apply_schema(self.pg_dsn)

    def pg(self):
        """An autocommit connection to an emptied grader database (others' sessions ended first)."""
        import psycopg

        conn = psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=5)
        self.cleanups.append(conn.close)
        # A consumer left over from an earlier check (or one that timed out)
        # may hold locks: end every other session of the grader's database.
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (GRADER_DB,))
        conn.execute("SET lock_timeout = '5s'")
        disarm_pg_failpoints(conn)
        conn.execute("TRUNCATE orders, order_rejections, products")
        return conn

    def close(self) -> None:
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception:  # cleanup must never hide the check's result
                pass


# -- seeded rounds: one green run proves little ----------------------------------------

SEED_ENV = "SECKILL_GRADER_SEED"


def seeded_rounds(check_round: Callable[[int], None], rounds: int, must_pass: int | None = None) -> None:
    """Run check_round(seed) for seeds 1..rounds; fail when fewer than `must_pass` (default: all) pass.

    The failure names the first failing seed; SECKILL_GRADER_SEED=<seed> replays that round alone.
    Property-based course graders run a concurrency test many times because one green run proves little.
    """
    import os

    only = os.environ.get(SEED_ENV, "").strip()
    seeds = [int(only)] if only.isdigit() else list(range(1, rounds + 1))
    needed = len(seeds) if only.isdigit() else (rounds if must_pass is None else must_pass)
    failures: list[tuple[int, CheckFailed]] = []
    for seed in seeds:
        try:
            check_round(seed)
        except CheckFailed as exc:
            failures.append((seed, exc))
    if len(seeds) - len(failures) < needed:
        seed, exc = failures[0]
        raise CheckFailed(exc.hint, f"{exc.detail} [failed {len(failures)} of {len(seeds)} seeded rounds; "
                                    f"replay the first with {SEED_ENV}={seed}]")


def race(workers: int, job: Callable[[int], Any], timeout: float = 20.0) -> list[Any]:
    """Run job(i) for i in range(workers) in threads released together by a Barrier; their results, in order.

    The first exception a job raised is re-raised here (after every thread ended).
    """
    import threading

    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = job(i)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    return results


# -- failpoints -------------------------------------------------------------------------

def faulty_redis_class():
    """A redis.Redis whose reply to command number `drop_after` is lost: the command ran, the caller gets
    ConnectionError (what a connection dropped at that moment looks like from the client)."""
    import redis

    class DropAfter(redis.Redis):
        drop_after = 0
        commands = 0
        dropped = False

        def execute_command(self, *args, **options):
            result = super().execute_command(*args, **options)
            self.commands += 1
            if self.commands == self.drop_after:
                self.dropped = True
                raise redis.ConnectionError(f"connection dropped after command {self.commands} ({args[0]})")
            return result

    return DropAfter


PG_FAILPOINT_SQL = """
CREATE OR REPLACE FUNCTION grader_failpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A sequence is not transactional: the first firing after arming gets 1, whatever rolls back.
    IF nextval('grader_failpoint_seq') = 1 THEN
        IF TG_ARGV[0] = 'drop' THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
        END IF;
        RAISE EXCEPTION 'grader failpoint: % on % failed once', TG_OP, TG_TABLE_NAME;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
"""

# (table, operation): the writes an order service makes
PG_SITES = [("orders", "INSERT"), ("products", "UPDATE"), ("order_rejections", "INSERT"), ("orders", "DELETE")]


def arm_pg_failpoint(conn, table: str, op: str, mode: str = "raise") -> None:
    """The next `op` on `table` fails once ('raise': an error; 'drop': the server ends the session)."""
    disarm_pg_failpoints(conn)
    conn.execute(PG_FAILPOINT_SQL)
    conn.execute("CREATE SEQUENCE grader_failpoint_seq")
    conn.execute(f"CREATE TRIGGER grader_failpoint BEFORE {op} ON {table} FOR EACH ROW "
                 f"EXECUTE FUNCTION grader_failpoint('{mode}')")


def disarm_pg_failpoints(conn) -> None:
    for table in {t for t, _ in PG_SITES}:
        conn.execute(f"DROP TRIGGER IF EXISTS grader_failpoint ON {table}")
    conn.execute("DROP SEQUENCE IF EXISTS grader_failpoint_seq")


class TcpProxy:
    """A loopback TCP proxy in front of a server, for faults a real network has: it can drop every
    connection at once, or drop the connection at the moment the client sends an AMQP method
    (e.g. basic.publish: the message never reaches the broker and its confirm never comes), or freeze the
    connection when the server sends an AMQP method (e.g. basic.ack: the broker took the message, then
    answers nothing more while the TCP connection stays open, as a paused VM or a stuck broker does).

    Counts connections, so a check can see a client that opens one per call or never closes it.
    """

    def __init__(self, host: str, port: int) -> None:
        import threading

        self.target = (host, port)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self.cut_on: tuple[int, int] | None = None  # (class id, method id) of the AMQP method to cut at
        self.cuts = 0
        self.freeze_on: tuple[int, int] | None = None  # (class id, method id) the server sends, then goes silent
        self.frozen: list = []  # the connections frozen so far
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="grader-proxy").start()

    def url(self, amqp_url: str) -> str:
        import re

        return re.sub(r"@([^:/]+):\d+", f"@127.0.0.1:{self.port}", amqp_url, count=1)

    @property
    def open_connections(self) -> int:
        with self.lock:
            return len(self.pairs)

    def _accept(self) -> None:
        import threading

        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self.lock:
                self.pairs.append(pair)
                self.accepted += 1
            threading.Thread(target=self._pump_client, args=(pair,), daemon=True).start()
            threading.Thread(target=self._pump_server, args=(pair,), daemon=True).start()

    def _drop(self, pair) -> None:
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _pump_server(self, pair) -> None:
        """Server to client, frame by frame, so the connection can go silent after a chosen method."""
        import struct

        client, upstream = pair
        buffer, silent = b"", False
        try:
            while data := upstream.recv(65536):
                if silent:
                    continue  # read and drop: the client hears nothing more, the TCP connection stays open
                buffer += data
                out = b""
                while len(buffer) >= 7:
                    kind, _channel, size = struct.unpack(">BHI", buffer[:7])
                    if len(buffer) < 8 + size:
                        break
                    frame, buffer = buffer[:8 + size], buffer[8 + size:]
                    if kind == 1 and self.freeze_on is not None and size >= 4 \
                            and struct.unpack(">HH", frame[7:11]) == self.freeze_on:
                        self.freeze_on = None
                        self.frozen.append(pair)
                        silent, buffer = True, b""
                        break
                    out += frame
                if out:
                    client.sendall(out)
        except OSError:
            pass
        self._drop(pair)

    def _pump_client(self, pair) -> None:
        """Client to server, frame by frame (AMQP 0-9-1 framing), so a method can be cut out."""
        import struct

        client, upstream = pair
        buffer = b""
        header_done = False
        try:
            while data := client.recv(65536):
                buffer += data
                out = b""
                if not header_done:
                    if len(buffer) < 8:
                        continue
                    out, buffer, header_done = buffer[:8], buffer[8:], True
                while len(buffer) >= 7:
                    kind, _channel, size = struct.unpack(">BHI", buffer[:7])
                    if len(buffer) < 8 + size:
                        break
                    frame, buffer = buffer[:8 + size], buffer[8 + size:]
                    if kind == 1 and self.cut_on is not None and size >= 4 \
                            and struct.unpack(">HH", frame[7:11]) == self.cut_on:
                        self.cut_on = None
                        self.cuts += 1
                        if out:
                            upstream.sendall(out)
                        self._drop(pair)
                        return
                    out += frame
                if out:
                    upstream.sendall(out)
        except OSError:
            pass
        self._drop(pair)

    def cut_all(self) -> None:
        """Drop every open connection now (a network blip, a broker restart)."""
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._drop(pair)

    def close(self) -> None:
        self.closed = True
        self.server.close()
        self.cut_all()


AMQP_PUBLISH = (60, 40)
AMQP_ACK = (60, 80)
