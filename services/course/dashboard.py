"""The instructor's room dashboard: one row per learner and the tier-ladder leaderboard.

Reads the room log (room.py: one file per learner, owned by them) on every request, so it is live
without any state of its own:

    seckill workshop dashboard --room /srv/seckill/room --port 18890   # then open http://127.0.0.1:18890/

``/`` is an HTML page that reloads itself every 5 s; ``/room.json`` the same data as JSON. Under
JupyterHub the hub starts it as a service (``seckill workshop init`` writes that), so it is at
``/services/room/`` behind the hub's proxy.

Leaderboard rule: a load test counts when its invariants hold (oversold 0, lost 0, nobody bought
twice, stores agree); any broken invariant disqualifies that run. Among counted runs the highest
sell-through wins, ties broken by the higher rung of the tier ladder, then by the earlier run. Raw
req/s is shown but never ranks: learners share one machine, so absolute throughput says more about
the neighbours than about the design.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from seckill.stack import processes
from seckill import room

# The tier ladder, bottom to top (tiers.TIERS order, without importing the running system).
LADDER = ("db-direct", "flask", "flask-x4", "fastapi", "local-stock")
STACK_PORTS = ("redis", "postgres", "amqp")


@dataclass
class Row:
    learner: str
    stack_up: bool | None = None          # None: never reported a stack
    labs: dict[str, dict] = field(default_factory=dict)   # lab -> {"passed", "score"} of the last grade
    load: dict | None = None              # the last load test (room.load_event)
    chaos_done: list[str] = field(default_factory=list)   # failure labs passed
    chaos_failed: list[str] = field(default_factory=list)  # tried, not (yet) passed
    rehearsals: int = 0
    last_seen: float | None = None


def _rank(tier: str | None) -> int:
    return LADDER.index(tier) if tier in LADDER else -1


def rows(rooms: dict[str, list[dict]], probe: bool = True) -> list[Row]:
    """One row per learner from their events (oldest first); ``probe`` checks the stack's ports."""
    out = []
    for learner, events in sorted(rooms.items()):
        row = Row(learner)
        for e in events:
            kind = e.get("kind")
            row.last_seen = max(row.last_seen or 0, float(e.get("t") or 0))
            if kind == "grade" and e.get("lab"):
                row.labs[str(e["lab"])] = {"passed": bool(e.get("passed")), "score": e.get("score")}
            elif kind == "load":
                row.load = e
            elif kind == "chaos" and e.get("scenario"):
                name = str(e["scenario"])
                if e.get("ok"):
                    row.chaos_done.append(name) if name not in row.chaos_done else None
                    row.chaos_failed = [c for c in row.chaos_failed if c != name]
                elif name not in row.chaos_done and name not in row.chaos_failed:
                    row.chaos_failed.append(name)
            elif kind == "rehearsal":
                row.rehearsals += 1
            elif kind == "stack":
                ports = [p for k, p in (e.get("ports") or {}).items() if k in STACK_PORTS and isinstance(p, int)]
                if not e.get("up"):
                    row.stack_up = False
                elif probe and ports:
                    row.stack_up = all(processes.port_open(p) for p in ports)
                else:
                    row.stack_up = bool(e.get("up"))
        out.append(row)
    return out


def leaderboard(rooms: dict[str, list[dict]]) -> tuple[list[dict], list[dict]]:
    """(ranked, disqualified): each learner's best counted load test, and the runs that broke an invariant."""
    best: dict[str, dict] = {}
    disqualified = []
    for learner, events in rooms.items():
        for e in events:
            if e.get("kind") != "load":
                continue
            run = {"learner": learner, **{k: e.get(k) for k in
                   ("tier", "sell_through", "oversold", "lost", "duplicate_users", "rps", "p99_ms", "t")}}
            if not (e.get("ok") and e.get("oversold") == 0 and e.get("lost") == 0):
                disqualified.append(run)
                continue
            key = (run["sell_through"] or 0, _rank(run["tier"]), -(run["t"] or 0))
            mine = best.get(learner)
            if mine is None or key > (mine["sell_through"] or 0, _rank(mine["tier"]), -(mine["t"] or 0)):
                best[learner] = run
    ranked = sorted(best.values(), key=lambda r: (-(r["sell_through"] or 0), -_rank(r["tier"]), r["t"] or 0))
    for place, run in enumerate(ranked, 1):
        run["place"] = place
    return ranked, disqualified


def snapshot(root: Path, probe: bool = True) -> dict:
    """The page's data. ``probe`` checks each stack's ports from here: not with SECKILL_ROOM_BY_DIR=1,
    where the stacks run in other pods (their loopback is not ours): their last event says."""
    probe = probe and not room.by_directory()
    rooms = room.read(root)
    ranked, disqualified = leaderboard(rooms)
    return {"room": str(root), "at": time.time(), "learners": [asdict(r) for r in rows(rooms, probe)],
            "leaderboard": ranked, "disqualified": disqualified}


# -- HTML -------------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "—"
    s = max(0, int(now - t))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago"


def render(snap: dict) -> str:
    now = snap["at"]
    body = []
    for r in snap["learners"]:
        up = {None: "—", True: '<span class="pass">up</span>', False: '<span class="fail">down</span>'}[r["stack_up"]]
        labs = " ".join(f'<span class="{"pass" if v["passed"] else "fail"}">{_e(k)} {_e(v["score"])}</span>'
                        for k, v in sorted(r["labs"].items())) or "—"
        load = r["load"]
        if load:
            inv = "ok" if load.get("ok") else "BROKEN"
            load_txt = (f'{_e(load.get("tier"))}: sell-through {_e(load.get("sell_through"))}, '
                        f'oversold {_e(load.get("oversold"))}, lost {_e(load.get("lost"))} '
                        f'<span class="{"pass" if load.get("ok") else "fail"}">{inv}</span>')
        else:
            load_txt = "—"
        chaos = ", ".join(_e(c) for c in r["chaos_done"]) or "—"
        if r["chaos_failed"]:
            chaos += f' <span class="fail">(trying: {", ".join(_e(c) for c in r["chaos_failed"])})</span>'
        body.append(f'<tr data-learner="{_e(r["learner"])}"><td>{_e(r["learner"])}</td><td>{up}</td>'
                    f'<td>{labs}</td><td>{load_txt}</td><td>{chaos}</td><td>{r["rehearsals"]}</td>'
                    f'<td>{_ago(r["last_seen"], now)}</td></tr>')
    board = [f'<tr data-learner="{_e(x["learner"])}"><td>{x["place"]}</td><td>{_e(x["learner"])}</td>'
             f'<td>{_e(x["tier"])}</td><td>{_e(x["sell_through"])}</td><td>{_e(x["rps"])}</td>'
             f'<td>{_e(x["p99_ms"])}</td></tr>' for x in snap["leaderboard"]]
    dq = [f'<li>{_e(x["learner"])} on {_e(x["tier"])}: oversold {_e(x["oversold"])}, lost {_e(x["lost"])}, '
          f'bought twice {_e(x["duplicate_users"])}</li>' for x in snap["disqualified"]]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>seckill room</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }} table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} .pass {{ color: #17692b; }} .fail {{ color: #b00020; font-weight: bold; }}
</style></head><body>
<h1>seckill room</h1>
<p>Room log <code>{_e(snap["room"])}</code> · {len(snap["learners"])} learners · reloads every 5 s</p>
<h2>Learners</h2>
<table id="learners"><tr><th>learner</th><th>stack</th><th>labs (last grade)</th><th>last load test</th>
<th>failure labs done</th><th>rehearsals</th><th>last seen</th></tr>
{"".join(body) or '<tr><td colspan="7">no learner has reported yet</td></tr>'}
</table>
<h2>Tier ladder</h2>
<p>Highest sell-through with every invariant holding wins (ties: the higher tier, then the earlier run).
req/s and p99 are shown, never ranked: everyone shares this machine.</p>
<table id="leaderboard"><tr><th>#</th><th>learner</th><th>tier</th><th>sell-through</th><th>req/s</th><th>p99 ms</th></tr>
{"".join(board) or '<tr><td colspan="6">no clean load test yet</td></tr>'}
</table>
<h2>Disqualified runs</h2>
<ul id="disqualified">{"".join(dq) or "<li>none</li>"}</ul>
</body></html>
"""


# -- serving ------------------------------------------------------------------------------

def make_server(root: Path, host: str = "127.0.0.1", port: int = 18890, prefix: str = "") -> ThreadingHTTPServer:
    """An HTTP server for the dashboard (``prefix``: the path JupyterHub proxies, e.g. /services/room)."""
    prefix = prefix.rstrip("/")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if prefix and path.startswith(prefix):
                path = path[len(prefix):]
            if path in ("", "/"):
                data, ctype = render(snapshot(root)).encode(), "text/html; charset=utf-8"
            elif path == "/room.json":
                data, ctype = json.dumps(snapshot(root), default=str).encode(), "application/json"
            else:
                self.send_error(404, "only / and /room.json are here")
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet: one line per request would flood the terminal
            pass

    return ThreadingHTTPServer((host, port), Handler)


def serve_behind_hub(root: Path, host: str = "127.0.0.1", port: int = 18890) -> None:
    """Serve the dashboard as a JupyterHub service behind the hub's login (blocks until stopped).

    Uses jupyterhub's own OAuth client (``HubOAuthenticated`` handlers on tornado): a browser without
    the service's cookie is sent to the hub's login and back through ``<prefix>/oauth_callback``; an
    API client may send ``Authorization: token …`` instead. Only users and services whose token carries
    ``access:services!service=<name>`` see the room (the hub's default for the service's own
    prefix). Needs the environment the hub gives a managed service (JUPYTERHUB_API_TOKEN,
    JUPYTERHUB_SERVICE_PREFIX, …): raises RuntimeError without it. jupyterhub is optional (the
    `hub` extra), so it is imported here only.
    """
    import asyncio
    import os
    import secrets

    if not os.environ.get("JUPYTERHUB_API_TOKEN") or not os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        raise RuntimeError("--hub-auth runs only as a JupyterHub service (JUPYTERHUB_API_TOKEN is not set); "
                           "start it from the hub's config, or drop --hub-auth")
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from tornado import web

    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"].rstrip("/")

    class Page(HubOAuthenticated, web.RequestHandler):
        @web.authenticated
        def get(self, what: str = "") -> None:
            self.set_header("Cache-Control", "no-store")
            if what == "room.json":
                self.set_header("Content-Type", "application/json")
                self.finish(json.dumps(snapshot(root), default=str))
            else:
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(render(snapshot(root)))

    app = web.Application([(rf"{prefix}/oauth_callback", HubOAuthCallbackHandler),
                           (rf"{prefix}/?", Page), (rf"{prefix}/(room\.json)", Page)],
                          cookie_secret=secrets.token_bytes(32))

    async def main() -> None:
        app.listen(port, host)
        await asyncio.Event().wait()

    asyncio.run(main())
