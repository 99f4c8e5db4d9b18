"""A real JupyterHub with three local learners: each runs notebook 12 and `seckill chaos mq-down`.

The issue's room test, the whole way: `seckill workshop init` writes the hub's config; three Unix
users are created for the test (seckill-t1 … t3, removed afterwards); the hub (jupyterhub from PyPI,
configurable-http-proxy from npm) spawns each learner's JupyterLab *as that user* through
start-learner.sh, which clones the course into their home. Everything a learner does then goes
through the hub's proxy, as their browser would: a session on `notebooks/12_stock_reservation.ipynb`
in their clone (their kernel executes every code cell over the kernel's websocket), and a second
kernel that runs `seckill chaos mq-down` the way a learner types it in a cell.

Round 1: the three run notebook 12 at once (each starts *their* stack: workshop mode, ports from
their uid). Round 2: learner 1 stops their broker (mq-down) while 2 and 3 run notebook 12's sale.
Round 3: learners 2 and 3 stop theirs while 1 sells. Asserted: no two learners listen on one port
(and each stack is in its uid's block), every notebook runs without an error (its own assertions:
100 sold of 100, oversold 0, duplicate users 0), every mq-down report holds its invariants, and a
broker that its learner did not stop is the same process before and after a neighbour's failure
lab. The room dashboard, behind the hub's proxy, shows the three. Before the rounds, the instructor
pushes a commit and each learner opens the nbgitpuller link `workshop init` wrote (the git-pull page,
its sync stream, its redirect to notebook 00): the commit lands in the clone they work in.

Needs root (to create users), jupyterhub and configurable-http-proxy (`make hub`), and a course
installation the learners can execute (a venv under /root is not: SECKILL_HUB_VENV, or `.hubvenv`
made by `make hub-venv`). Skips with one line saying which is missing. Heavy: about 10 minutes
on 2 busy cores; every wait is bounded. Timings are printed and saved as hub-timings.json.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import psutil
import pytest

from seckill import room
from seckill.config import AUTO_BASE, AUTO_BLOCKS, BLOCK_SIZE, Ports, settings
from seckill.course import workshop
from seckill.stack import processes

from conftest import SLOT
from test_workshop_room import dashboard_through_the_hub_login

REPO = Path(__file__).resolve().parent.parent
# uid mod 380 = 375, 376, 377: port blocks 32000, 32032, 32064, above every test slot's ports
# and below Linux's ephemeral range (32768), where the hub's random ports land.
LEARNERS = {"seckill-t1": 380 * 10 + 375, "seckill-t2": 380 * 10 + 376, "seckill-t3": 380 * 10 + 377}
HUB_PORT = 8800 + 10 * SLOT            # hub, its API, the proxy's API, the dashboard: 8800+10*slot …
NOTEBOOK = f"{workshop.COURSE_DIR}/notebooks/12_stock_reservation.ipynb"  # the server's root is the home
pytestmark = pytest.mark.timeout(1800)


def _hub_install() -> tuple[Path, dict[str, str]] | str:
    """The shared installation and the hub's tools, or why the test cannot run."""
    if os.geteuid() != 0:
        return "not root: creating the learners' Unix users needs root"
    candidates = [Path(p) for p in (os.environ.get("SECKILL_HUB_VENV"), sys.prefix, REPO / ".hubvenv") if p]
    chp = os.environ.get("SECKILL_CHP_DIR")
    tools = workshop.hub_tools()
    chp_found = tools["configurable-http-proxy"] or (shutil.which("configurable-http-proxy", path=chp) if chp
                                                      else None)
    for venv in candidates:
        bins = {name: venv / "bin" / name for name in ("python", "jupyterhub", "jupyterhub-singleuser")}
        if not all(p.exists() for p in bins.values()):
            continue
        real = Path(os.path.realpath(bins["python"]))
        # a learner must be able to reach the interpreter: every folder on the way world-searchable
        if all(os.stat(p).st_mode & 0o001 for p in [*real.parents, *venv.resolve().parents]):
            if not chp_found:
                node_bin = venv / "node_modules" / ".bin" / "configurable-http-proxy"
                chp_found = str(node_bin) if node_bin.exists() else None
            if not chp_found:
                return ("configurable-http-proxy not installed (npm install configurable-http-proxy; "
                        "`make hub` puts it in .venv/node_modules)")
            return venv, {"jupyterhub": str(bins["jupyterhub"]), "configurable-http-proxy": chp_found}
    if not tools["jupyterhub"]:
        return "jupyterhub not installed (hub hosts only: pip install -e .[hub], or `make hub`)"
    return ("no course installation the learners can execute (this one's Python is under a private "
            "home): `make hub-venv`, or SECKILL_HUB_VENV=<a venv with .[hub] installed>")


def _kill_user_processes(uids: set[int], grace: float = 10.0) -> None:
    """Every process of the test's own users (nobody else's): TERM, then KILL after ``grace`` s."""
    def theirs():
        out = []
        for p in psutil.process_iter(["uids"]):
            try:
                if p.info["uids"] and p.info["uids"].real in uids:
                    out.append(p)
            except psutil.Error:
                pass
        return out
    procs = theirs()
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive + theirs():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(theirs(), timeout=grace)


def _remove_users() -> None:
    uids = set()
    for name in LEARNERS:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            pass
    if uids:
        _kill_user_processes(uids)
    for name in LEARNERS:
        if name in {u.pw_name for u in pwd.getpwall()}:
            subprocess.run(["userdel", "-r", name], capture_output=True, timeout=60)


@pytest.fixture
def learners():
    """Three Unix users with fixed uids (removed afterwards with their homes and processes)."""
    _remove_users()  # a crashed earlier run's leftovers
    for name, uid in LEARNERS.items():
        taken = [u.pw_name for u in pwd.getpwall() if u.pw_uid == uid]
        if taken:
            pytest.skip(f"uid {uid} is taken by {taken[0]}: the test needs uids {sorted(LEARNERS.values())}")
    try:
        for name, uid in LEARNERS.items():
            subprocess.run(["useradd", "--create-home", "--uid", str(uid), "--shell", "/bin/sh", name],
                           check=True, capture_output=True, timeout=60)
        yield {name: pwd.getpwnam(name) for name in LEARNERS}
    finally:
        _remove_users()


class Hub:
    """The hub's REST API and each learner's Jupyter Server, both through the hub's proxy."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base.rstrip("/"), token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def api(self, session, method: str, path: str, **kw):
        async with session.request(method, f"{self.base}{path}", headers=self._headers(), **kw) as reply:
            text = await reply.text()
            if reply.status >= 400:
                raise AssertionError(f"{method} {path}: HTTP {reply.status} {text[:500]}")
            return json.loads(text) if text else None

    async def start_server(self, session, user: str, timeout: float = 300) -> float:
        """Ask the hub to spawn ``user``'s server; seconds until the hub says it is ready."""
        t0 = time.monotonic()
        await self.api(session, "POST", f"/hub/api/users/{user}/server")
        while time.monotonic() - t0 < timeout:
            info = await self.api(session, "GET", f"/hub/api/users/{user}")
            server = (info.get("servers") or {}).get("", {})
            if server.get("ready"):
                return time.monotonic() - t0
            await asyncio.sleep(1)
        raise AssertionError(f"{user}'s server was not ready after {timeout:.0f} s")

    async def execute(self, session, user: str, kernel_id: str, code: str, timeout: float) -> dict:
        """Run ``code`` in the learner's kernel over its websocket: stdout, stderr, errors (bounded)."""
        url = f"{self.base}/user/{user}/api/kernels/{kernel_id}/channels"
        sid = uuid.uuid4().hex
        out = {"stdout": "", "stderr": "", "errors": []}
        async with session.ws_connect(url, headers=self._headers(), params={"session_id": sid},
                                      max_msg_size=0, heartbeat=30) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send_json({
                "header": {"msg_id": msg_id, "username": user, "session": sid, "msg_type": "execute_request",
                           "version": "5.3", "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}})
            replied = idle = False
            deadline = time.monotonic() + timeout
            while not (replied and idle):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{user}: a cell ran longer than {timeout:.0f} s:\n{code[:300]}")
                msg = await ws.receive_json(timeout=left)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out[content["name"]] += content["text"]
                elif kind == "error":
                    out["errors"].append(f"{content['ename']}: {content['evalue']}")
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
                elif kind == "execute_reply":
                    replied = True
                    if content["status"] != "ok" and not out["errors"]:
                        out["errors"].append(f"{content.get('ename')}: {content.get('evalue')}")
        return out

    async def run_notebook(self, session, user: str, path: str, cell_timeout: float = 400) -> dict:
        """What JupyterLab does: open a session on ``path`` in the learner's clone, run every code cell."""
        t0 = time.monotonic()
        nb = (await self.api(session, "GET", f"/user/{user}/api/contents/{path}", params={"content": "1"}))["content"]
        sess = await self.api(session, "POST", f"/user/{user}/api/sessions",
                              json={"path": path, "type": "notebook", "name": Path(path).name,
                                    "kernel": {"name": "python3"}})
        result = {"cells": 0, "errors": [], "stderr": ""}
        try:
            for cell in nb["cells"]:
                if cell["cell_type"] != "code":
                    continue
                out = await self.execute(session, user, sess["kernel"]["id"], "".join(cell["source"]), cell_timeout)
                result["cells"] += 1
                result["stderr"] += out["stderr"]
                if out["errors"]:
                    result["errors"] = out["errors"] + [f"in cell {cell.get('id')}"]
                    break
        finally:
            await self.api(session, "DELETE", f"/user/{user}/api/sessions/{sess['id']}")
        result["seconds"] = time.monotonic() - t0
        return result

    async def open_link(self, session, user: str, link: str, timeout: float = 120) -> str:
        """What the learner's browser does with the nbgitpuller link: the git-pull page (under /user/<name>/,
        where /hub/user-redirect/ sends them), the sync stream its script opens, until it says finished;
        returns the URL the page then redirects to."""
        import aiohttp

        prefix = "/hub/user-redirect/"
        async with session.get(f"{self.base}/user/{user}/{link[link.index(prefix) + len(prefix):]}",
                               headers=self._headers()) as reply:
            page = await reply.text()
            if reply.status != 200:
                raise AssertionError(f"{user}: the git-pull page answered {reply.status} (is nbgitpuller in the "
                                     f"learners' installation? make hub-venv): {page[:300]}")
        body = re.search(r"<body([^>]*)>", page, re.S).group(1)
        data = {k: urllib.parse.unquote(v) for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', body)}
        params = {"repo": data["repo"], "targetpath": data["targetpath"]}
        if "branch" in data:
            params["branch"] = data["branch"]
        last = None
        async with session.get(f"{self.base}{data['base-url']}git-pull/api", params=params, headers=self._headers(),
                               timeout=aiohttp.ClientTimeout(total=timeout)) as stream:
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    last = json.loads(line[len("data: "):])
                    if last.get("phase") in ("finished", "error"):
                        break
        if not last or last.get("phase") != "finished":
            raise AssertionError(f"{user}: nbgitpuller did not finish: {last}")
        return f"{self.base}{data['base-url']}{data['path']}"

    async def run_command(self, session, user: str, args: list[str], timeout: float = 600) -> dict:
        """A learner's `!seckill …` in a fresh kernel of their server; its stdout and exit code."""
        t0 = time.monotonic()
        kernel = await self.api(session, "POST", f"/user/{user}/api/kernels", json={"name": "python3"})
        code = ("import subprocess\n"
                f"r = subprocess.run({args!r}, capture_output=True, text=True, timeout={timeout - 30})\n"
                "print(r.stdout, end=''); print('EXIT', r.returncode); print(r.stderr[-2000:])")
        try:
            out = await self.execute(session, user, kernel["id"], code, timeout)
        finally:
            await self.api(session, "DELETE", f"/user/{user}/api/kernels/{kernel['id']}")
        body, _, rest = out["stdout"].rpartition("EXIT ")
        return {"stdout": body, "exit": int(rest.split()[0]) if rest else None, "tail": rest,
                "errors": out["errors"], "seconds": time.monotonic() - t0}


INSTRUCTOR_FILE = "notebooks/from_the_instructor.md"


def _instructor_pushes(bare: Path, scratch: Path) -> None:
    """A new commit on the bare remote's main (a file of its own), readable by the learners."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Instructor", "GIT_AUTHOR_EMAIL": "i@example.org",
           "GIT_COMMITTER_NAME": "Instructor", "GIT_COMMITTER_EMAIL": "i@example.org"}
    subprocess.run(["git", "clone", "--quiet", "--branch", "main", str(bare), str(scratch)], check=True, timeout=120)
    (scratch / INSTRUCTOR_FILE).write_text("# Added during the workshop\n")
    for args in (["add", INSTRUCTOR_FILE], ["commit", "--quiet", "-m", "during the workshop"],
                 ["push", "--quiet", "origin", "main"]):
        subprocess.run(["git", *args], cwd=scratch, env=env, check=True, timeout=120)
    subprocess.run(["chmod", "-R", "a+rX", str(bare)], check=True)


def _listening(uid: int) -> set[int]:
    """TCP ports the processes of ``uid`` listen on."""
    pids = {p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid}
    return {c.laddr.port for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.pid in pids}


def _run_dir(user: pwd.struct_passwd) -> Path:
    return Path(user.pw_dir) / ".local" / "state" / "seckill"


def _broker(user: pwd.struct_passwd) -> int | None:
    proc = processes.load(_run_dir(user), "rabbitmq")
    return proc.pid if proc else None


def test_three_learners_on_a_real_hub_run_notebook_12_and_mq_down_at_once(learners, tmp_path):
    found = _hub_install()
    if isinstance(found, str):
        pytest.skip(found)
    venv, tools = found
    aiohttp = pytest.importorskip("aiohttp")
    names = list(learners)
    timings: dict = {"learners": {n: {} for n in names}}
    hub_dir = Path(tempfile.mkdtemp(prefix="seckill-hub-"))
    hub_dir.chmod(0o755)  # the learners run start-learner.sh and write into room/ from here
    proc = None
    try:
        bare = hub_dir / "seckill.git"  # what a workshop clones from GitHub: here, this checkout's HEAD
        subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO), str(bare)], check=True, timeout=120)
        subprocess.run(["chmod", "-R", "a+rX", str(bare)], check=True)
        for user in learners.values():  # git refuses a repository owned by someone else unless told
            gitconfig = Path(user.pw_dir) / ".gitconfig"
            gitconfig.write_text(f"[safe]\n\tdirectory = {bare}\n")
            os.chown(gitconfig, user.pw_uid, user.pw_gid)
        files = workshop.init(hub_dir, learners=names, admins=["teacher"], repo=str(bare),
                              hub_url=f"http://127.0.0.1:{HUB_PORT}", authenticator="dummy",
                              hub_api_port=HUB_PORT + 1, proxy_api_port=HUB_PORT + 2, dashboard_port=HUB_PORT + 3,
                              settings_env={"SECKILL_IMPL": "solutions"}, venv=venv)
        token = secrets.token_hex(24)
        with open(files["config"], "a") as config:  # the test's own API client: start servers, use them
            config.write(f"\nc.JupyterHub.services.append({{'name': 'tester', 'api_token': {token!r}}})\n"
                         "c.JupyterHub.load_roles.append({'name': 'tester', 'services': ['tester'], 'scopes': "
                         "['admin:servers', 'access:servers', 'read:users', 'admin:users', 'access:services']})\n"
                         "c.DummyAuthenticator.password = 'room-test'\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECKILL_")}
        env["PATH"] = os.pathsep.join([str(Path(tools["configurable-http-proxy"]).parent), str(venv / "bin"),
                                       env["PATH"]])
        t0 = time.monotonic()
        proc = subprocess.Popen([tools["jupyterhub"], "-f", files["config"]], cwd=hub_dir, env=env,
                                stdout=open(hub_dir / "hub.log", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        hub = Hub(f"http://127.0.0.1:{HUB_PORT}", token)

        def log_tail() -> str:
            return (hub_dir / "hub.log").read_text(errors="replace")[-3000:]

        async def scenario():
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=900)) as http:
                while True:  # the hub answers through its proxy
                    assert proc.poll() is None, f"the hub exited:\n{log_tail()}"
                    assert time.monotonic() - t0 < 120, f"the hub did not answer in 120 s:\n{log_tail()}"
                    try:
                        await hub.api(http, "GET", "/hub/api/")
                        break
                    except (aiohttp.ClientError, AssertionError):
                        await asyncio.sleep(0.5)
                timings["hub_start_s"] = time.monotonic() - t0

                t1 = time.monotonic()
                spawn = await asyncio.gather(*(hub.start_server(http, n) for n in names))
                timings["servers_all_ready_s"] = time.monotonic() - t1
                for n, s in zip(names, spawn):
                    timings["learners"][n]["server_ready_s"] = s

                # the instructor pushes a commit after the learners' first start (their clones predate it);
                # each opens the nbgitpuller link `workshop init` wrote: it pulls into their ~/seckill
                _instructor_pushes(bare, hub_dir / "instructor")
                t1 = time.monotonic()
                landed = await asyncio.gather(*(hub.open_link(http, n, files["link"]) for n in names))
                timings["link_opened_all_s"] = time.monotonic() - t1
                for n, url in zip(names, landed):
                    assert url == f"{hub.base}/user/{n}/lab/tree/{workshop.COURSE_DIR}/notebooks/00_start_here.ipynb"
                    async with http.get(url, headers=hub._headers()) as reply:
                        assert reply.status == 200, f"{n}: the link's notebook 00 answered {reply.status}"

                async def round_(breakers: list[str]) -> dict:
                    sellers = [n for n in names if n not in breakers]
                    before = {n: _broker(learners[n]) for n in names}
                    t = time.monotonic()
                    jobs = [hub.run_notebook(http, n, NOTEBOOK) for n in sellers]
                    jobs += [hub.run_command(http, n, ["seckill", "chaos", "mq-down", "--tier", "flask", "--json"])
                             for n in breakers]
                    done = dict(zip(sellers + breakers, await asyncio.gather(*jobs)))
                    wall = time.monotonic() - t
                    after = {n: _broker(learners[n]) for n in names}
                    alive = {n: bool(processes.alive(_run_dir(learners[n]), processes.load(_run_dir(learners[n]),
                                                                                            "rabbitmq")))
                             for n in names}
                    return {"before": before, "after": after, "alive": alive, "done": done, "wall_s": wall}

                first = await round_([])
                second = await round_(names[:1])
                third = await round_(names[1:])
                room_page = None
                async with http.get(f"{hub.base}/services/room/room.json", headers=hub._headers()) as reply:
                    if reply.status == 200:
                        room_page = json.loads(await reply.text())
                return first, second, third, room_page

        first, second, third, room_page = asyncio.run(asyncio.wait_for(scenario(), 1500))
        for n, u in learners.items():  # the link pulled the instructor's commit into the clone they work in
            assert (Path(u.pw_dir) / workshop.COURSE_DIR / INSTRUCTOR_FILE).is_file(), f"{n}'s clone was not pulled"
        timings["rounds"] = {i: {n: {k: v for k, v in r.items() if k != "stdout"} for n, r in rnd["done"].items()}
                             for i, rnd in enumerate((first, second, third), 1)}

        # round 1: everyone's notebook 12 ran clean, each stack in its own uid's block, no shared port
        for n, res in first["done"].items():
            assert not res["errors"], f"{n}'s notebook 12 failed: {res['errors']}\nhub log:\n{log_tail()}"
            timings["learners"][n]["notebook12_first_s"] = res["seconds"]
        listening = {n: _listening(u.pw_uid) for n, u in learners.items()}
        for n, u in learners.items():
            block = Ports.block(AUTO_BASE + (u.pw_uid % AUTO_BLOCKS) * BLOCK_SIZE)
            stack_ports = {block.redis, block.postgres, block.amqp}
            assert stack_ports <= listening[n], f"{n}'s stack is not on its uid's block: {sorted(listening[n])}"
            others = set().union(*(listening[m] for m in names if m != n))
            assert not listening[n] & others, f"{n} shares ports {sorted(listening[n] & others)}"

        # rounds 2 and 3: a failure lab stops only its own learner's broker; the neighbours sell on
        for rnd, breakers in ((second, names[:1]), (third, names[1:])):
            for n, res in rnd["done"].items():
                if n in breakers:
                    assert res["exit"] == 0 and not res["errors"], f"{n}'s mq-down: {res}"
                    report = json.loads(res["stdout"])
                    assert report["ok"], (n, [c for c in report["checks"] if not c["held"]])
                    assert rnd["after"][n] != rnd["before"][n], f"{n}'s mq-down did not restart their broker"
                    assert rnd["alive"][n], f"{n}'s broker is not back after their mq-down"
                    timings["learners"][n]["mq_down_s"] = res["seconds"]
                else:
                    assert not res["errors"], f"{n}'s notebook 12 failed beside a neighbour's mq-down: {res}"
                    assert rnd["after"][n] == rnd["before"][n], f"{n}'s broker changed: a neighbour touched it"
                    assert rnd["alive"][n], f"{n}'s broker is gone: a neighbour's failure lab stopped it"
                    timings["learners"][n].setdefault("notebook12_beside_mq_down_s", []).append(res["seconds"])
        timings["round_s"] = [first["wall_s"], second["wall_s"], third["wall_s"]]

        # the room log reached the dashboard behind the hub's proxy
        assert room_page, "the hub did not serve /services/room/room.json"
        rows = {r["learner"]: r for r in room_page["learners"]}
        assert set(rows) == set(names), sorted(rows)
        assert all("mq-down" in rows[n]["chaos_done"] for n in names), {n: rows[n]["chaos_done"] for n in names}
        # and the facilitator reads it in a browser, logged in at the hub (screenshot kept)
        dashboard_through_the_hub_login(hub.base, tmp_path, "room-test", {n: "mq-down" for n in names},
                                        shot="workshop-dashboard-hub-3-learners.png")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        print("hub timings:", json.dumps(timings, indent=1, default=str))
        out = settings().run_dir / "hub-timings.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(timings, indent=1, default=str))
        for n, u in learners.items():  # their stacks, stopped by their own seckill (then the fixture sweeps)
            subprocess.run([shutil.which("runuser") or "/usr/sbin/runuser", "-u", n, "--", str(venv / "bin" / "seckill"), "down"],
                           env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": u.pw_dir, "SECKILL_WORKSHOP": "1"},
                           capture_output=True, timeout=180, cwd="/")
        shutil.rmtree(hub_dir, ignore_errors=True)
