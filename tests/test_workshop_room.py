"""The room log, the instructor's dashboard (in a real headless browser), the plan and the hub config."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seckill.course import dashboard, workshop
from seckill import room
from seckill.config import settings

REPO = Path(__file__).resolve().parent.parent
SECKILL = str(Path(sys.executable).parent / "seckill")


def _as(monkeypatch, room_dir: Path, learner: str) -> None:
    monkeypatch.setenv(room.ENV, str(room_dir))
    monkeypatch.setenv("JUPYTERHUB_USER", learner)


def _load(tier: str, sell_through: float, oversold: int = 0, lost: int = 0, rps: float = 500.0) -> dict:
    stock = 300
    inv = {"initial_stock": stock, "orders": int(stock * sell_through) + oversold, "oversold": oversold,
           "lost": lost, "duplicate_users": 0, "ok": oversold == 0 and lost == 0}
    return room.load_event({"tier": tier, "label": tier, "requests_per_s": rps, "p99_ms": 40.0,
                            "success": inv["orders"], "users": 400}, inv)


def _room(tmp_path: Path, monkeypatch) -> Path:
    """Three learners' afternoons, written through room.record as their seckill would."""
    room_dir = tmp_path / "room"
    room_dir.mkdir()
    room_dir.chmod(0o1777)
    _as(monkeypatch, room_dir, "alice")
    room.record("stack", up=True, ports={"redis": 1, "postgres": 2, "amqp": 3})
    room.record("grade", lab="stock", passed=True, score="5/5")
    room.record("grade", lab="producer", passed=False, score="2/4")
    room.record("load", **_load("flask", 1.0))
    room.record("load", **_load("fastapi", 1.0))
    room.record("chaos", scenario="mq-down", ok=True)
    _as(monkeypatch, room_dir, "bob")
    room.record("grade", lab="stock", passed=True, score="5/5")
    room.record("load", **_load("local-stock", 1.0, oversold=3))   # fastest, but oversold: out
    room.record("load", **_load("flask-x4", 0.9))
    room.record("chaos", scenario="redis-down", ok=False)
    room.record("rehearsal")
    room.record("rehearsal")
    _as(monkeypatch, room_dir, "carol")
    room.record("grade", lab="stock", passed=False, score="1/5")
    room.record("load", **_load("db-direct", 1.0, lost=2))
    return room_dir


def test_record_appends_one_private_line_per_event_and_does_nothing_without_a_room(tmp_path, monkeypatch):
    monkeypatch.delenv(room.ENV, raising=False)
    assert room.record("grade", lab="stock") is False
    room_dir = _room(tmp_path, monkeypatch)
    files = sorted(p.name for p in room_dir.iterdir())
    assert files == ["alice.jsonl", "bob.jsonl", "carol.jsonl"]
    alice = room_dir / "alice.jsonl"
    assert stat.S_IMODE(alice.stat().st_mode) & 0o022 == 0, "others could write into alice's row"
    lines = alice.read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["kind"] for line in lines)


def test_a_room_that_cannot_be_written_warns_once_and_fails_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(room, "_warned", False)
    _as(monkeypatch, tmp_path / "no-such-dir", "dave")
    assert room.record("grade", lab="stock") is False
    assert room.record("grade", lab="stock") is False
    assert capsys.readouterr().err.count("cannot be written") == 1


def test_a_file_named_after_another_learner_is_not_shown_as_theirs(tmp_path, monkeypatch):
    room_dir = _room(tmp_path, monkeypatch)
    forged = room_dir / "alice.jsonl"
    os.chown(forged, 65534, 65534)  # owned by nobody, named alice: a forgery
    rooms = room.read(room_dir)
    assert "alice" not in rooms and set(rooms) == {"bob", "carol"}


def test_per_learner_directories_name_the_learner_only_when_the_dashboard_is_told(tmp_path, monkeypatch):
    """Zero to JupyterHub: every pod is uid 1000 and mounts only room/<its user>/ (docs/workshop.md)."""
    root = tmp_path / "room"
    for learner in ("alice", "bob"):
        (root / learner).mkdir(parents=True)
    _as(monkeypatch, root / "alice", "alice")
    room.record("stack", up=True, ports={"redis": 1, "postgres": 2, "amqp": 3})  # ports of alice's pod, not ours
    room.record("load", **_load("flask", 1.0))
    _as(monkeypatch, root / "bob", "jovyan")  # the file's name is the pod's idea; the mount names the learner
    room.record("grade", lab="stock", passed=True, score="5/5")
    for file in root.rglob("*.jsonl"):
        os.chown(file, 1000, 100)
    monkeypatch.delenv(room.BY_DIR_ENV, raising=False)
    assert room.read(root) == {}, "sub-directories read without SECKILL_ROOM_BY_DIR: on one host anyone makes one"
    monkeypatch.setenv(room.BY_DIR_ENV, "1")
    assert set(room.read(root)) == {"alice", "bob"}
    snap = dashboard.snapshot(root)
    rows = {r["learner"]: r for r in snap["learners"]}
    assert rows["alice"]["stack_up"] is True, "probed a pod's ports from the dashboard's own loopback"
    assert rows["bob"]["labs"] == {"stock": {"passed": True, "score": "5/5"}}
    assert [r["learner"] for r in snap["leaderboard"]] == ["alice"]


def test_leaderboard_ranks_clean_runs_by_sell_through_then_tier_and_disqualifies_broken_ones(tmp_path, monkeypatch):
    rooms = room.read(_room(tmp_path, monkeypatch))
    ranked, disqualified = dashboard.leaderboard(rooms)
    assert [(r["learner"], r["tier"]) for r in ranked] == [("alice", "fastapi"), ("bob", "flask-x4")]
    assert {(d["learner"], d["tier"]) for d in disqualified} == {("bob", "local-stock"), ("carol", "db-direct")}
    rows = {r.learner: r for r in dashboard.rows(rooms, probe=False)}
    assert rows["alice"].labs == {"stock": {"passed": True, "score": "5/5"},
                                  "producer": {"passed": False, "score": "2/4"}}
    assert rows["alice"].chaos_done == ["mq-down"] and rows["bob"].chaos_failed == ["redis-down"]
    assert rows["bob"].rehearsals == 2 and rows["carol"].stack_up is None


def test_dashboard_in_a_real_browser_shows_three_learners_and_the_ladder(tmp_path, monkeypatch):
    from test_browser import headless_chromium

    room_dir = _room(tmp_path, monkeypatch)
    server = dashboard.make_server(room_dir, port=0, prefix="/services/room")
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    from selenium.webdriver.common.by import By

    driver = headless_chromium(tmp_path / "profile")
    try:
        driver.get(f"http://127.0.0.1:{port}/services/room/")
        learners = driver.find_elements(By.CSS_SELECTOR, "#learners tr[data-learner]")
        assert [r.get_attribute("data-learner") for r in learners] == ["alice", "bob", "carol"]
        text = {r.get_attribute("data-learner"): r.text for r in learners}
        assert "stock 5/5" in text["alice"] and "mq-down" in text["alice"] and "fastapi" in text["alice"]
        assert "BROKEN" in text["carol"] and "lost 2" in text["carol"]
        board = driver.find_elements(By.CSS_SELECTOR, "#leaderboard tr[data-learner]")
        assert [r.get_attribute("data-learner") for r in board] == ["alice", "bob"]
        assert "local-stock" in driver.find_element(By.ID, "disqualified").text
        for folder in (tmp_path, settings().run_dir / "screenshots"):
            folder.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(folder / "workshop-dashboard.png"))
        print(f"screenshot: {settings().run_dir / 'screenshots' / 'workshop-dashboard.png'}")
        data = json.loads(driver.execute_script(
            "return fetch('room.json').then(r => r.text())"))
        assert len(data["learners"]) == 3
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


# -- plan and init --------------------------------------------------------------------------

MEASURED = {
    "tier": "flask", "saved_at": "2026-11-30T04:00:00+00:00", "path": "x.json",
    "idle": {"redis": {"pss_mb": 10.0, "cpu_cores": 0.002}, "postgres": {"pss_mb": 40.0, "cpu_cores": 0.001},
             "rabbitmq": {"pss_mb": 110.0, "cpu_cores": 0.02}, "gateway": {"pss_mb": 90.0, "cpu_cores": 0.001},
             "order-service": {"pss_mb": 60.0, "cpu_cores": 0.001}},
    "load": {"redis": {"pss_mb": 12.0, "cpu_cores": 0.1}, "postgres": {"pss_mb": 60.0, "cpu_cores": 0.2},
             "rabbitmq": {"pss_mb": 140.0, "cpu_cores": 0.3}, "gateway": {"pss_mb": 120.0, "cpu_cores": 0.9},
             "order-service": {"pss_mb": 70.0, "cpu_cores": 0.2}},
    "generator": {"cpu_cores": 0.8}, "jupyterlab": {"pss_mb": 120.0, "cpu_cores": 0.01}, "kernel_pss_mb": 200.0,
    "host": {"cpu_count": 2, "mem_total_mb": 8000, "mem_available_mb": 4000},
}


def test_plan_grows_with_the_room_and_gives_settings_that_fit(tmp_path):
    small, big = workshop.plan(5, MEASURED), workshop.plan(30, MEASURED)
    assert big["machine"]["memory_gb"] > small["machine"]["memory_gb"]
    assert big["machine"]["cores"] > small["machine"]["cores"]
    # 30 × (160 stack + 150 tier + 120 lab + 200 kernel) + 8 testing × the load's extra, × 1.3 headroom
    assert big["machine"]["memory_gb"] == 25
    assert int(big["settings"]["SECKILL_RABBITMQ_WATERMARK_MB"]) >= 2 * 140
    assert int(big["settings"]["SECKILL_PG_SHARED_BUFFERS_MB"]) < 128
    assert big["load_test"]["users"] <= 400
    assert "req/s" in workshop.plan_text(big)
    with pytest.raises(workshop.WorkshopError, match="port blocks"):
        workshop.plan(1000, MEASURED)


def test_plan_without_a_measurement_says_what_to_run(tmp_path):
    env = dict(os.environ, SECKILL_RESULTS_DIR=str(tmp_path / "empty"))
    result = subprocess.run([SECKILL, "workshop", "plan", "--learners", "30"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == ("seckill: no measurement yet: run `seckill workshop measure` first "
                                     "(about a minute)")


def test_init_writes_a_hub_config_that_loads_a_room_dir_and_a_link(tmp_path):
    result = subprocess.run([SECKILL, "workshop", "init", "--dir", str(tmp_path / "hub"), "--learner", "alice",
                             "--learner", "bob", "--admin", "teacher", "--repo", "https://example.org/seckill.git"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    hub = tmp_path / "hub"
    assert stat.S_IMODE((hub / "room").stat().st_mode) == 0o1777
    link = (hub / "nbgitpuller-link.txt").read_text().strip()
    assert link.startswith("http://127.0.0.1:8000/hub/user-redirect/git-pull?repo=https%3A%2F%2Fexample.org")
    assert "urlpath=lab%2Ftree%2Fseckill%2Fnotebooks%2F00_start_here.ipynb" in link
    # nbgitpuller clones into <server root>/<targetpath>: the home folder's ~/seckill, start-learner.sh's clone
    # (that it works for real: tests/test_workshop_gitpuller.py, where nbgitpuller is installed)
    assert "targetpath=seckill&" in link
    config = hub / "jupyterhub_config.py"

    class C(dict):
        def __getattr__(self, name):
            return self.setdefault(name, C())

        def __setattr__(self, name, value):
            self[name] = value

    c = C()
    exec(compile(config.read_text(), str(config), "exec"), {"get_config": lambda: c})
    assert c.Authenticator.allowed_users == {"alice", "bob"}
    assert c.Spawner.environment["SECKILL_WORKSHOP"] == "1"
    assert c.Spawner.environment["SECKILL_ROOM_LOG"] == str(hub / "room")
    assert c.JupyterHub.services[0]["name"] == "room"
    start = (hub / "start-learner.sh").read_text()
    assert "git clone" in start and "jupyterhub-singleuser" in start
    assert 'COURSE="$HOME/seckill"' in start and '--ServerApp.root_dir="$HOME"' in start
    assert c.Spawner.default_url == "/lab/tree/seckill/notebooks"
    subprocess.run(["sh", "-n", str(hub / "start-learner.sh")], check=True)


def _hub_tools() -> dict:
    tools = workshop.hub_tools()
    chp = os.environ.get("SECKILL_CHP_DIR")  # a local `npm install configurable-http-proxy`
    if chp and not tools["configurable-http-proxy"]:
        tools["configurable-http-proxy"] = shutil.which("configurable-http-proxy", path=chp)
    return tools


def test_jupyterhub_starts_with_the_written_config_and_proxies_the_room_dashboard(tmp_path, monkeypatch):
    """The real hub (jupyterhub from PyPI, configurable-http-proxy from npm) on the written config."""
    import signal
    import socket
    import time
    import urllib.error
    import urllib.request

    tools = _hub_tools()
    missing = [k for k in ("jupyterhub", "configurable-http-proxy") if not tools[k]]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (hub hosts only: pip install jupyterhub; "
                    f"npm install configurable-http-proxy, SECKILL_CHP_DIR=its node_modules/.bin)")
    ports = []
    for _ in range(4):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    hub_port, dash_port, api_port, proxy_api = ports
    hub = tmp_path / "hub"
    files = workshop.init(hub, learners=["alice", "bob", "carol"], admins=["teacher"], repo=str(REPO),
                          hub_url=f"http://127.0.0.1:{hub_port}", authenticator="dummy", dashboard_port=dash_port,
                          hub_api_port=api_port, proxy_api_port=proxy_api)
    token = __import__("secrets").token_hex(24)
    with open(files["config"], "a") as config:  # an API client allowed to see the room, as a logged-in user is
        config.write(f"\nc.JupyterHub.services.append({{'name': 'tester', 'api_token': {token!r}}})\n"
                     "c.JupyterHub.load_roles.append({'name': 'tester', 'services': ['tester'], "
                     "'scopes': ['access:services!service=room']})\n"
                     "c.DummyAuthenticator.password = 'room-test'\n")
    room_dir = Path(files["room"])
    for learner in ("alice", "bob", "carol"):
        _as(monkeypatch, room_dir, learner)
        room.record("grade", lab="stock", passed=True, score="5/5")
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(tools["configurable-http-proxy"]).parent),
                                                 str(Path(sys.executable).parent), os.environ["PATH"]]))
    proc = subprocess.Popen([tools["jupyterhub"], "-f", files["config"]], cwd=hub, env=env,
                            stdout=open(hub / "hub.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, page = time.monotonic() + 120, ""
        url = f"http://127.0.0.1:{hub_port}/services/room/"
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5) as reply:
                    page = reply.read().decode()
                    break
            except OSError:
                time.sleep(1)
        assert page, f"the hub did not serve /services/room/ in time; log: {(hub / 'hub.log').read_text()[-1500:]}"
        assert all(f'data-learner="{n}"' in page for n in ("alice", "bob", "carol"))

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        # without a login the room is not shown: the service sends the browser to the hub's login
        try:
            urllib.request.build_opener(NoRedirect).open(url, timeout=10)
            raise AssertionError("the room dashboard answered without a login")
        except urllib.error.HTTPError as exc:
            assert exc.code == 302 and "/hub/api/oauth2/authorize" in exc.headers["Location"], exc.headers
        dashboard_through_the_hub_login(f"http://127.0.0.1:{hub_port}", tmp_path, "room-test",
                                        {n: "stock 5/5" for n in ("alice", "bob", "carol")})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def dashboard_through_the_hub_login(hub_url: str, tmp_path: Path, password: str, rows_show: dict[str, str],
                                    shot: str = "workshop-dashboard-hub.png") -> None:
    """The facilitator's way in: a headless chromium logs in at the hub as `teacher` (DummyAuthenticator
    with ``password``), opens the room and finds one row per learner in ``rows_show`` containing its
    text; the screenshot is kept in the run dir's screenshots/."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from test_browser import headless_chromium

    driver = headless_chromium(tmp_path / "hub-profile")
    try:
        driver.set_page_load_timeout(60)
        driver.get(f"{hub_url}/services/room/")  # not logged in: the hub's login page, then back here
        WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "username_input")))
        driver.find_element(By.ID, "username_input").send_keys("teacher")
        driver.find_element(By.ID, "password_input").send_keys(password)
        driver.find_element(By.ID, "login_submit").click()
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.ID, "learners")))
        assert driver.current_url.startswith(f"{hub_url}/services/room/"), driver.current_url
        rows = {r.get_attribute("data-learner"): r.text
                for r in driver.find_elements(By.CSS_SELECTOR, "#learners tr[data-learner]")}
        assert sorted(rows) == sorted(rows_show), rows
        assert all(text in rows[n] for n, text in rows_show.items()), rows
        for folder in (tmp_path, settings().run_dir / "screenshots"):
            folder.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(folder / shot))
        print(f"screenshot: {settings().run_dir / 'screenshots' / shot}")
    finally:
        driver.quit()


def test_dashboard_behind_the_hub_outside_a_hub_says_so_in_one_line(tmp_path):
    (tmp_path / "room").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    result = subprocess.run([SECKILL, "workshop", "dashboard", "--room", str(tmp_path / "room"), "--hub-auth"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("seckill: --hub-auth runs only as a JupyterHub service"), result.stderr
    assert "Traceback" not in result.stderr
