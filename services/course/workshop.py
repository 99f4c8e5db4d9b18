"""Running the course for a room: measure one learner's cost, size the machine, write the hub's config.

    seckill workshop measure            # this machine: one stack + one tier, idle and under a notebook load test
    seckill workshop plan --learners 30 # machine size and settings for 30 learners, from that measurement
    seckill workshop init --dir /srv/seckill   # JupyterHub config, room log dir, nbgitpuller link

Memory is the proportional set size (PSS, psutil ``memory_full_info().pss``): a PostgreSQL's
workers share buffers, so summing RSS would count them many times. CPU is the share of one core
(1.0 = one core busy), from process CPU times over a measured interval; under load also the
busiest 2-second window of the servers, the tier and the load generator together (``burst_cores``):
the notebooks' load test is a burst of seconds, and a room's cores must carry the bursts.

The plan is arithmetic on those figures, shown with its assumptions so an instructor can redo it:
memory = learners × (stack + tier + JupyterLab + kernel) × headroom, cores = idle × learners +
load × learners testing at once. It also gives the settings that make the stacks fit side by side:
each RabbitMQ gets an absolute memory high-watermark (its default, 40 % of the *machine's* RAM, is
fine alone and wrong thirty times over), each PostgreSQL a smaller shared_buffers, and the load
tests a size scaled to the cores a learner gets. Load-test verdicts in the room rely on ratios and
invariants (sell-through, oversold, lost), never on absolute req/s.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from seckill.stack import processes
from seckill.measure import results
from seckill.config import AUTO_BLOCKS, BLOCK_SIZE, REPO_ROOT, settings
from seckill.errors import SeckillError

KIND = "workshop"
# The notebooks' load test (notebooks 20 and 21): what a learner runs, hence what a room must carry.
NOTEBOOK_LOAD = dict(users=400, spawn_rate=400, duration_s=6, requests_per_user=4, stock=300)
HEADROOM = 1.3          # memory: page cache, the hub, spikes
LOAD_OVERLAP = 0.25     # share of a room load-testing in the same minute (a lab step staggered by reading)
MB = 1024 * 1024
# The learner's clone of the course: ~/seckill, under a JupyterLab whose root is the home folder
# (start-learner.sh clones it on the first start; the nbgitpuller link pulls into it).
COURSE_DIR = "seckill"


class WorkshopError(SeckillError):
    """A workshop command cannot do what was asked; the message says what to do."""


# -- measuring -----------------------------------------------------------------------------

def _tree(procs: list[psutil.Process]) -> list[psutil.Process]:
    seen: dict[int, psutil.Process] = {}
    for p in procs:
        try:
            for q in [p, *p.children(recursive=True)]:
                seen[q.pid] = q
        except psutil.NoSuchProcess:
            continue
    return list(seen.values())


def _pss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def sample(groups: dict[str, list[psutil.Process]], seconds: float) -> dict[str, dict[str, float]]:
    """Per group: PSS in MB (the peak seen) and CPU in cores, averaged over ``seconds``."""
    before = {g: _cpu_seconds(ps) for g, ps in groups.items()}
    peak = {g: _pss(ps) for g, ps in groups.items()}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(min(1.0, max(0.05, seconds - (time.monotonic() - t0))))
        for g, ps in groups.items():
            peak[g] = max(peak[g], _pss(ps))
    elapsed = time.monotonic() - t0
    return {g: {"pss_mb": round(peak[g] / MB, 1),
                "cpu_cores": round((_cpu_seconds(ps) - before[g]) / elapsed, 3)}
            for g, ps in groups.items()}


def _services(run_dir: Path) -> dict[str, list[psutil.Process]]:
    groups: dict[str, list[psutil.Process]] = {}
    for p in processes.ours(run_dir):
        name = processes._environ(p).get(processes.SERVICE, "?")
        groups.setdefault(name, []).append(p)
    return {k: _tree(v) for k, v in groups.items()}


def _jupyterlab_cost(seconds: float = 3.0) -> dict[str, float] | None:
    """Start a JupyterLab server (no browser) briefly and measure it; None if it does not come up."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(8)
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                             "--ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root"],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        up = processes.wait_until(lambda: processes.port_open(port), timeout=60, interval=0.5)
        if not up:
            return None
        time.sleep(2)  # settle after the first request handlers load
        return sample({"lab": _tree([psutil.Process(proc.pid)])}, seconds)["lab"]
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def measure(tier: str = "flask", idle_s: float = 5.0, out=None) -> dict[str, Any]:
    """Measure one stack, one running tier, a kernel and a JupyterLab server on this machine; save it."""
    from seckill.measure import loadtest
    from seckill import stack
    from seckill.system import tiers

    say = (lambda text: print(text, file=out, flush=True)) if out else (lambda text: None)
    s = settings()
    say("• starting the stack and tier " + tier + " …")
    stack.up(out=None)
    tiers.up(tier, out=None)
    try:
        say(f"• idle: sampling {idle_s:.0f} s …")
        groups = _services(s.run_dir)
        idle = sample(groups, idle_s)
        say(f"• under the notebooks' load test ({NOTEBOOK_LOAD['users']} users, {NOTEBOOK_LOAD['duration_s']} s) …")
        product_id = 900_000 + secrets.randbelow(99_999)
        groups = _services(s.run_dir)
        me = psutil.Process()
        before_cpu = {g: _cpu_seconds(ps) for g, ps in groups.items()}
        before_gen = _cpu_seconds([me])
        peak = {g: _pss(ps) for g, ps in groups.items()}
        # The burst lasts seconds inside a longer run (spawn, drain, checks): besides the average,
        # keep the busiest 2-s window of everything involved (servers, tier, locust's processes).
        window: list[tuple[float, float]] = []
        busiest = [0.0]
        t0 = time.monotonic()
        stop = threading.Event()

        def everything() -> float:
            return (sum(_cpu_seconds(ps) for ps in groups.values())
                    + _cpu_seconds([me, *me.children(recursive=True)]))

        def watch():
            while not stop.wait(0.5):
                for g, ps in groups.items():
                    peak[g] = max(peak[g], _pss(ps))
                window.append((time.monotonic(), everything()))
                while len(window) > 1 and window[-1][0] - window[0][0] > 2.0:
                    (ta, ca), (tb, cb) = window[0], window[-1]
                    busiest[0] = max(busiest[0], (cb - ca) / (tb - ta))
                    window.pop(0)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            result = loadtest.run(tier, product_id=product_id, progress=False, **NOTEBOOK_LOAD)
        finally:
            stop.set()
            watcher.join(5)
        elapsed = time.monotonic() - t0
        load = {g: {"pss_mb": round(peak[g] / MB, 1),
                    "cpu_cores": round((_cpu_seconds(ps) - before_cpu[g]) / elapsed, 3)}
                for g, ps in groups.items()}
        generator = {"cpu_cores": round((_cpu_seconds([me]) - before_gen) / elapsed, 3)}
        burst_cores = round(busiest[0], 2)
    finally:
        tiers.down(out=None)
    say("• a JupyterLab server, briefly …")
    lab = _jupyterlab_cost()
    kernel_mb = round(_pss([psutil.Process()]) / MB, 1)
    record = {
        "tier": tier, "idle": idle, "load": load, "generator": generator, "burst_cores": burst_cores, "jupyterlab": lab,
        "kernel_pss_mb": kernel_mb, "load_test": dict(NOTEBOOK_LOAD),
        "load_result": {"sell_through": round(result.invariants.get("orders", 0) / NOTEBOOK_LOAD["stock"], 3),
                        "ok": bool(result.invariants.get("ok")), "elapsed_s": round(elapsed, 1),
                        "rps": result.summary.get("requests_per_s")},
        "host": {"cpu_count": os.cpu_count(), "mem_total_mb": round(psutil.virtual_memory().total / MB),
                 "mem_available_mb": round(psutil.virtual_memory().available / MB)},
    }
    record["path"] = str(results.save(KIND, "measure", record))
    return record


def latest_measure() -> dict[str, Any]:
    """The newest `seckill workshop measure` of this machine (results/workshop-measure-*.json)."""
    files = sorted(results.results_dir().glob(f"{KIND}-measure-*.json"))
    if not files:
        raise WorkshopError("no measurement yet: run `seckill workshop measure` first (about a minute)")
    try:
        return json.loads(files[-1].read_text())
    except ValueError:
        raise WorkshopError(f"{files[-1]} is not valid JSON; delete it and run `seckill workshop measure`") from None


# -- planning ------------------------------------------------------------------------------

def _sum(groups: dict[str, dict[str, float]], key: str) -> float:
    return sum(v.get(key, 0.0) for v in groups.values())


STACK = ("redis", "postgres", "rabbitmq")


def plan(learners: int, m: dict[str, Any], overlap: float = LOAD_OVERLAP) -> dict[str, Any]:
    """Machine size and settings for ``learners`` from measurement ``m`` (see module docstring)."""
    if learners < 1:
        raise WorkshopError("--learners must be at least 1")
    if learners > AUTO_BLOCKS:
        raise WorkshopError(f"{learners} learners need more than the {AUTO_BLOCKS} automatic port blocks "
                            f"on one host; give learners SECKILL_PORT_BASE by hand or use Zero to JupyterHub")
    idle, load = m["idle"], m["load"]
    stack_idle_mb = sum(idle.get(k, {}).get("pss_mb", 0) for k in STACK)
    tier_idle_mb = _sum(idle, "pss_mb") - stack_idle_mb
    peak_mb = _sum(load, "pss_mb")
    lab_mb = (m.get("jupyterlab") or {}).get("pss_mb") or 150.0
    kernel_mb = m.get("kernel_pss_mb") or 150.0
    per_learner_mb = peak_mb + lab_mb + kernel_mb
    testing = max(1, math.ceil(learners * overlap))
    mem_mb = (learners * (stack_idle_mb + tier_idle_mb + lab_mb + kernel_mb)
              + testing * max(0.0, peak_mb - stack_idle_mb - tier_idle_mb)) * HEADROOM
    idle_cores = _sum(idle, "cpu_cores") + ((m.get("jupyterlab") or {}).get("cpu_cores") or 0)
    # a learner's load test at its busiest (servers + generator), else the run's average
    load_cores = m.get("burst_cores") or (_sum(load, "cpu_cores") + m["generator"]["cpu_cores"])
    cores = learners * idle_cores + testing * load_cores
    broker_mb = load.get("rabbitmq", {}).get("pss_mb") or idle.get("rabbitmq", {}).get("pss_mb") or 150
    watermark_mb = int(max(256, math.ceil(broker_mb * 2 / 64) * 64))
    shared_buffers_mb = 128 if learners <= 4 else (32 if learners <= 40 else 16)
    # Load-test size: the cores one learner gets while testing, against what the test used here.
    host_cores = m["host"]["cpu_count"] or 1
    share = max(0.05, min(1.0, (max(math.ceil(cores), host_cores) / max(testing, 1)) / max(load_cores, 0.01)))
    users = max(50, int(NOTEBOOK_LOAD["users"] * share) // 10 * 10)
    return {
        "learners": learners, "load_testing_at_once": testing, "overlap": overlap,
        "per_learner": {"stack_idle_mb": round(stack_idle_mb), "tier_idle_mb": round(tier_idle_mb),
                        "under_load_mb": round(peak_mb), "jupyterlab_mb": round(lab_mb), "kernel_mb": round(kernel_mb),
                        "total_peak_mb": round(per_learner_mb), "idle_cores": round(idle_cores, 3),
                        "load_cores": round(load_cores, 2)},
        "machine": {"memory_gb": math.ceil(mem_mb / 1024), "cores": max(2, math.ceil(cores)),
                    "disk_gb": math.ceil(learners * 0.3 + 10)},
        "settings": {"SECKILL_WORKSHOP": "1", "SECKILL_RABBITMQ_WATERMARK_MB": str(watermark_mb),
                     "SECKILL_PG_SHARED_BUFFERS_MB": str(shared_buffers_mb),
                     "SECKILL_ROOM_LOG": "/srv/seckill/room"},
        "load_test": {**NOTEBOOK_LOAD, "users": min(NOTEBOOK_LOAD["users"], users),
                      "spawn_rate": min(NOTEBOOK_LOAD["users"], users)},
        "ports": {"block_size": BLOCK_SIZE, "blocks_available": AUTO_BLOCKS},
        "measured": {"tier": m.get("tier"), "saved_at": m.get("saved_at"), "host": m.get("host"),
                     "path": m.get("path")},
    }


def plan_text(p: dict[str, Any]) -> str:
    pl, mach = p["per_learner"], p["machine"]
    lines = [
        f"Workshop plan for {p['learners']} learners (measured on this machine: {p['measured']['host']['cpu_count']} cores, "
        f"tier {p['measured']['tier']}, {p['measured']['saved_at']})",
        "",
        f"  one learner, idle:   stack {pl['stack_idle_mb']} MB + tier {pl['tier_idle_mb']} MB + JupyterLab "
        f"{pl['jupyterlab_mb']} MB + kernel {pl['kernel_mb']} MB; {pl['idle_cores']} cores",
        f"  one learner testing: {pl['under_load_mb']} MB for stack and tier, {pl['load_cores']} cores "
        f"(servers + load generator)",
        f"  at once: all idle, {p['load_testing_at_once']} load-testing ({p['overlap']:.0%} of the room)",
        "",
        f"  machine: {mach['memory_gb']} GB RAM, {mach['cores']} cores, {mach['disk_gb']} GB disk "
        f"(memory × {HEADROOM} headroom)",
        "",
        "  settings for every learner (seckill workshop init writes them into the hub config):",
        *[f"    {k}={v}" for k, v in p["settings"].items()],
        "  load tests in the notebooks, scaled to the cores a learner gets:",
        f"    users={p['load_test']['users']} spawn_rate={p['load_test']['spawn_rate']} "
        f"duration_s={p['load_test']['duration_s']} stock={p['load_test']['stock']}",
        "  verdicts compare ratios and invariants (sell-through, oversold 0, lost 0), never req/s:",
        "  everyone's req/s depends on what the neighbours run.",
    ]
    return "\n".join(lines)


# -- the hub ------------------------------------------------------------------------------------

HUB_CONFIG = '''\
# JupyterHub for a seckill workshop, written by `seckill workshop init` ({when}).
# Start it as root (local users need it):  jupyterhub -f {config}
# Learners log in with their Unix account (PAM); each gets a JupyterLab on their home, with a
# clone of the course in ~/{course}, using the course installed once in {venv}. The nbgitpuller
# link (nbgitpuller-link.txt) pulls the instructor's later commits into that same clone.
c = get_config()  # noqa: F821 (JupyterHub provides it)

c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_api_port}"      # the hub's own API, loopback only
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
{proxy_command}
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.db_url = {db!r}
c.JupyterHub.pid_file = {pid!r}
c.JupyterHub.authenticator_class = {authenticator!r}
c.Authenticator.allowed_users = set({learners!r})
c.Authenticator.admin_users = set({admins!r})
{extra_auth}
c.Spawner.default_url = "/lab/tree/{course}/notebooks"
c.Spawner.cmd = [{start!r}]            # clones the course on first start, then jupyterhub-singleuser
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 180
c.Spawner.environment = {environment!r}
# every learner's seckill appends its results here; the dashboard reads it
c.JupyterHub.services = [{{
    "name": "room",
    "url": "http://127.0.0.1:{dashboard_port}",
    "command": [{python!r}, "-m", "seckill.cli", "workshop", "dashboard", "--room", {room!r},
                "--port", "{dashboard_port}", "--prefix", "/services/room", "--hub-auth"],  # behind the hub's login
    "display": True,
    "oauth_no_confirm": True,   # our own service: no "authorize access?" page after the hub's login
}}]
c.JupyterHub.load_roles = [{{"name": "user", "scopes": ["self", "access:services!service=room"]}}]
'''

START_LEARNER = '''\
#!/bin/sh
# A learner's JupyterLab under the hub: their own clone of the course, the shared installation.
# The server's root is the home folder, as nbgitpuller expects: its link clones or pulls into
# ~/{course} (targetpath), the clone made here on the first start.
set -e
COURSE="$HOME/{course}"
if [ ! -d "$COURSE/.git" ]; then
    git clone --quiet --branch {branch} {repo} "$COURSE"
fi
cd "$COURSE"
export PATH="{venv}/bin:$PATH"
export SECKILL_LABS_DIR="$COURSE/labs" SECKILL_RESULTS_DIR="$COURSE/results"
exec "{venv}/bin/jupyterhub-singleuser" --ServerApp.root_dir="$HOME" "$@"
'''


def nbgitpuller_link(hub_url: str, repo: str, branch: str = "main", path: str = "notebooks/00_start_here.ipynb") -> str:
    """The link to hand out: it clones or pulls ``repo`` into ~/COURSE_DIR and opens ``path`` there in JupyterLab.

    ``/hub/user-redirect/`` sends each learner to their own server (``/user/<name>/``), starting it if
    needed; nbgitpuller's ``git-pull`` page then clones ``branch`` of ``repo`` into the server's root
    (the home folder) under ``targetpath``, or, when that clone exists, fetches and merges (a
    learner's own edits win where both changed the same lines), and finally opens ``urlpath``.
    ``targetpath`` is given, not left to nbgitpuller: its default is the URL's last part, ``.git``
    included, which would be a second clone beside the one the learner's server works in.
    """
    query = urllib.parse.urlencode({"repo": repo, "branch": branch, "targetpath": COURSE_DIR,
                                    "urlpath": f"lab/tree/{COURSE_DIR}/{path}"})
    return f"{hub_url.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def init(directory: Path, *, learners: list[str], admins: list[str], repo: str, hub_url: str = "http://127.0.0.1:8000",
         settings_env: dict[str, str] | None = None, authenticator: str = "pam", dashboard_port: int = 18890,
         branch: str = "main", hub_api_port: int = 8081, proxy_api_port: int = 8001,
         venv: Path | None = None) -> dict[str, str]:
    """Write the hub's files into ``directory``; returns their paths and the nbgitpuller link.

    ``venv`` is the shared installation every learner's server runs from (default: this one); it
    must be readable and executable by the learners, so not under a 0700 home such as /root.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    room_dir = directory / "room"
    room_dir.mkdir(exist_ok=True)
    room_dir.chmod(0o1777)  # anyone may add their own file; the sticky bit: no one removes another's
    venv = Path(venv or sys.prefix)
    start = directory / "start-learner.sh"
    start.write_text(START_LEARNER.format(repo=_shell_quote(repo), branch=_shell_quote(branch), venv=venv,
                                          course=COURSE_DIR))
    start.chmod(0o755)
    env = {"SECKILL_WORKSHOP": "1", "SECKILL_ROOM_LOG": str(room_dir), "SECKILL_IMPL": "labs",
           **(settings_env or {})}
    env["SECKILL_ROOM_LOG"] = str(room_dir)
    auth = {"pam": "jupyterhub.auth.PAMAuthenticator", "dummy": "jupyterhub.auth.DummyAuthenticator"}
    if authenticator not in auth:
        raise WorkshopError(f"--auth {authenticator!r}: use pam (Unix passwords) or dummy (tests only)")
    extra = ('c.DummyAuthenticator.password = ' + repr(secrets.token_urlsafe(12)) + '  # tests only'
             if authenticator == "dummy" else "")
    chp = hub_tools()["configurable-http-proxy"]  # found now (e.g. .venv/node_modules): no PATH to set later
    proxy_command = (f"c.ConfigurableHTTPProxy.command = [{chp!r}]" if chp
                     else "# configurable-http-proxy: found on the hub's PATH (npm install -g configurable-http-proxy)")
    config = directory / "jupyterhub_config.py"
    config.write_text(HUB_CONFIG.format(
        when=time.strftime("%Y-%m-%d %H:%M"), config=str(config), venv=str(venv),
        bind_url=hub_url, cookie=str(directory / "jupyterhub_cookie_secret"),
        db=f"sqlite:///{directory / 'jupyterhub.sqlite'}", pid=str(directory / "jupyterhub.pid"),
        authenticator=auth[authenticator], learners=sorted(learners), admins=sorted(admins), extra_auth=extra,
        start=str(start), environment=env, course=COURSE_DIR, dashboard_port=dashboard_port, hub_api_port=hub_api_port,
        proxy_api_port=proxy_api_port, python=str(venv / "bin" / "python"), proxy_command=proxy_command,
        room=str(room_dir)))
    link = nbgitpuller_link(hub_url, repo, branch)
    (directory / "nbgitpuller-link.txt").write_text(link + "\n")
    return {"config": str(config), "start": str(start), "room": str(room_dir), "link": link,
            "dashboard": f"{hub_url.rstrip('/')}/services/room/"}


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def hub_tools() -> dict[str, str | None]:
    """Where jupyterhub and configurable-http-proxy are (None: not installed).

    Looked up in this installation's bin/, then its node_modules/.bin/ (`make hub` runs
    `npm install --prefix .venv configurable-http-proxy`), then PATH.
    """
    places = [Path(sys.prefix) / "bin", Path(sys.prefix) / "node_modules" / ".bin"]
    found = {}
    for name in ("jupyterhub", "jupyterhub-singleuser", "configurable-http-proxy"):
        local = [str(p / name) for p in places if (p / name).exists()]
        found[name] = local[0] if local else shutil.which(name)
    return found
