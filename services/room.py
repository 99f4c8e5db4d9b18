"""The workshop room log: every learner's results, appended where the instructor's dashboard reads them.

``SECKILL_ROOM_LOG`` names a directory the hub provides (``seckill workshop init`` makes it, mode
1777 like /tmp: anyone may create a file, the sticky bit stops anyone deleting or renaming another's).
Each learner's ``seckill`` appends one JSON line per event to ``<dir>/<user>.jsonl``, created mode
0644, so only its owner can write it and everyone (the dashboard) can read it. The dashboard names a
row by the file's *owner uid*, never by what a line claims, so no learner can write into another's
row. Unset (self-study), nothing is written.

One event (a line, kept under 4 KiB so one O_APPEND write() is never interleaved with another)::

    {"t": 1764474000.1, "kind": "grade", "lab": "stock", "passed": true, "score": "5/5"}
    {"t": …, "kind": "load", "tier": "async", "sell_through": 1.0, "oversold": 0, "lost": 0, "ok": true,
     "rps": 812.3, "p99_ms": 41.0, "success": 200, "stock": 200}
    {"t": …, "kind": "chaos", "scenario": "mq-down", "ok": true}
    {"t": …, "kind": "rehearsal", "cards": 3}
    {"t": …, "kind": "stack", "up": true, "ports": {"redis": 20000, "postgres": 20003, "amqp": 20004}}

Writing never fails the learner's command: a room log that cannot be written is reported once on
stderr and skipped (the learner's own results/ keep everything).

Zero to JupyterHub (docs/workshop.md): every learner's pod runs as the same uid (1000), so a file's
owner names nobody. There each pod mounts only its own sub-directory of the shared room volume
(``subPath: "{username}"``), and the dashboard, started with ``SECKILL_ROOM_BY_DIR=1``, names a row by
that directory. Off by default: in a 1777 room on one host anyone may make a directory named after
someone else.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
import time
from pathlib import Path
from typing import Any

ENV = "SECKILL_ROOM_LOG"
BY_DIR_ENV = "SECKILL_ROOM_BY_DIR"  # the dashboard's side: one sub-directory per learner (Zero to JupyterHub)
MAX_LINE = 4000  # below PIPE_BUF-sized writes that O_APPEND keeps whole on local filesystems
_warned = False


def room_dir() -> Path | None:
    raw = os.environ.get(ENV)
    return Path(raw) if raw else None


def _user() -> str:
    """The learner's name: JupyterHub's user name, else the Unix one (the reader checks the file's owner)."""
    if os.environ.get("JUPYTERHUB_USER"):
        return os.environ["JUPYTERHUB_USER"]
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def record(kind: str, **fields: Any) -> bool:
    """Append one event of this user to the room log; returns whether it was written."""
    global _warned
    root = room_dir()
    if root is None:
        return False
    event = {"t": round(time.time(), 3), "kind": kind, **fields}
    line = json.dumps(event, default=str, allow_nan=False, separators=(",", ":"))
    if len(line) > MAX_LINE:
        line = json.dumps({"t": event["t"], "kind": kind, "truncated": True})
    try:
        fd = os.open(root / f"{_user()}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        return True
    except (OSError, ValueError) as exc:
        if not _warned:
            print(f"seckill: the room log {root} cannot be written ({exc}); ask the facilitator, "
                  f"or unset {ENV}", file=sys.stderr)
            _warned = True
        return False


def load_event(summary: dict, inv: dict) -> dict:
    """The room's view of one load test: ratios and invariants, absolute req/s only as information."""
    stock = inv.get("initial_stock") or summary.get("stock") or 0
    orders = inv.get("orders") or 0
    return {"tier": summary.get("tier"), "label": summary.get("label"),
            "sell_through": round(orders / stock, 4) if stock else None,
            "oversold": inv.get("oversold"), "lost": inv.get("lost"),
            "duplicate_users": inv.get("duplicate_users"), "ok": bool(inv.get("ok")),
            "rps": summary.get("requests_per_s"), "p99_ms": summary.get("p99_ms"),
            "success": summary.get("success"), "stock": stock, "users": summary.get("users")}


# -- reading (the dashboard) ----------------------------------------------------------------

def by_directory() -> bool:
    """SECKILL_ROOM_BY_DIR=1: learners are the room's sub-directories (each pod mounts only its own)."""
    return (os.environ.get(BY_DIR_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def read(root: Path) -> dict[str, list[dict]]:
    """Every learner's events, by the user that owns each file; a broken line is skipped.

    With SECKILL_ROOM_BY_DIR=1, by sub-directory instead: ``<root>/<learner>/*.jsonl`` (oldest first).
    """
    rooms: dict[str, list[dict]] = {}
    if by_directory():
        for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            events = [e for file in sorted(folder.glob("*.jsonl")) for e in _events(file)]
            rooms[folder.name] = sorted(events, key=lambda e: float(e.get("t") or 0))
        return rooms
    for file in sorted(Path(root).glob("*.jsonl")):
        try:
            owner = pwd.getpwuid(file.stat().st_uid).pw_name
        except KeyError:
            owner = str(file.stat().st_uid)
        if file.stem != owner and owner != "root":
            continue  # a file named after someone else: not theirs, never shown as theirs
        rooms[file.stem] = _events(file)
    return rooms


def _events(file: Path) -> list[dict]:
    try:
        text = file.read_text(errors="replace")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "kind" in event:
            events.append(event)
    return events
