"""Workshop mode: one stack's own generated secrets, kept where only its user can read them.

On a shared host every learner's servers listen on the same 127.0.0.1, so a fixed password
(guest/guest, seckill/seckill, the admin token ``seckill-admin``) lets any learner empty another's
Redis or create sales in their gateway. In workshop mode (``SECKILL_WORKSHOP=1``) each stack gets:

    {"redis_password": …, "amqp_user": "seckill", "amqp_password": …,
     "pg_password": …, "admin_token": …}

generated once with :mod:`secrets` (32 url-safe characters, 192 bits) and saved as
``<run dir>/credentials.json`` with mode 0600 (written whole, then linked into place, so a second process racing
the first reads the first's file instead of writing its own). The servers are started with them
(Redis ``requirepass``, a RabbitMQ default user instead of guest, a PostgreSQL scram-sha-256
password with no ``trust`` line) and every client of this checkout reads them back through
:mod:`seckill.config`. This module imports nothing of the course: config imports it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

FILE = "credentials.json"
KEYS = ("redis_password", "amqp_user", "amqp_password", "pg_password", "admin_token")


class CredentialsError(Exception):
    """The credentials file is unusable (unreadable, corrupt, or readable by others)."""


def path(run_dir: Path) -> Path:
    return Path(run_dir) / FILE


def generate() -> dict[str, str]:
    """Fresh secrets for one stack (url-safe: they go into URLs without quoting)."""
    return {"redis_password": secrets.token_urlsafe(24), "amqp_user": "seckill",
            "amqp_password": secrets.token_urlsafe(24), "pg_password": secrets.token_urlsafe(24),
            "admin_token": secrets.token_urlsafe(24)}


def load_or_create(run_dir: Path) -> dict[str, str]:
    """This stack's credentials, generated on first use; raises CredentialsError if unsafe or corrupt."""
    run_dir = Path(run_dir)
    file = path(run_dir)
    if not file.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        # Write a private temporary file whole, then link it into place: link() fails if the file
        # exists, so two racing processes agree on one set, and no reader sees a half-written file.
        tmp = run_dir / f".{FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(generate(), f, indent=2)
            f.write("\n")
        try:
            os.link(tmp, file)
        except FileExistsError:
            pass  # another process of ours won the race: read its file below
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise CredentialsError(f"{file} is readable by other users (mode {mode:o}); "
                               f"run `chmod 600 {file}` (and change the passwords: `seckill reset`)")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{file} cannot be read ({exc}); delete it and run `seckill reset`") from None
    missing = [k for k in KEYS if not isinstance(data.get(k), str) or not data.get(k)]
    if missing:
        raise CredentialsError(f"{file} lacks {', '.join(missing)}; delete it and run `seckill reset`")
    return {k: data[k] for k in KEYS}


# -- a Redis login for command-line tools ---------------------------------------------------------

# What a tool's temporary user may run: reads and writes on its own keys, scripts by their SHA,
# PING; never a command of Redis's @dangerous category (FLUSHALL, CONFIG, KEYS, DEBUG …).
TOOL_RULES = ("+@read", "+@write", "+evalsha", "+ping", "-@dangerous")


def redis_tool_login(client, password: str, keys: list[str]) -> list[str]:
    """Arguments ``["--user", NAME, "-a", SECRET]`` for a Redis tool (redis-benchmark), or ``[]`` without a password.

    redis-benchmark takes a password only on its command line, and every user of the host reads
    command lines in /proc/<pid>/cmdline (``ps``). So the tool never gets the stack's password:
    ``client`` (logged in with it) creates a user for this run with ACL SETUSER, with a random
    password, allowed :data:`TOOL_RULES` on ``keys`` and nothing else; :func:`drop_redis_tool_login`
    deletes it afterwards. What a neighbour may read in ``ps`` meanwhile opens nothing else.
    Commands a script calls are checked against the same rules (Redis 7 ACLs cover scripts).
    """
    if not password:
        return []
    name, secret = f"tool-{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{secret}",
                           *[f"~{key}" for key in keys], *TOOL_RULES)
    return ["--user", name, "-a", secret]


def drop_redis_tool_login(client, args: list[str]) -> None:
    """Delete the user :func:`redis_tool_login` made (nothing when it made none)."""
    if args:
        client.execute_command("ACL", "DELUSER", args[1])
