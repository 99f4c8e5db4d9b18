"""The environment check: passes on this machine, and names each faked failure with its one fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seckill.stack import envcheck, processes
from seckill.config import settings

REPO = Path(__file__).resolve().parent.parent
SECKILL = [sys.executable, "-m", "seckill.cli"]


def test_this_machine_is_ready(stack_urls):
    report = envcheck.run()
    assert report.ok, str(report)
    assert report.find("python")[0].ok
    assert len(report.find("packages")) == len(envcheck.pinned_packages()) >= 20
    assert {c.name for c in report.find("servers")} == {"redis-server", "postgres", "rabbitmq-server", "nginx"}
    # the running test stack holds its ports: that is this course, not a conflict
    redis_port = settings().ports.redis
    [redis] = [c for c in report.find("ports") if c.name.endswith(f":{redis_port}")]
    assert redis.ok and "held by this course" in redis.found
    assert "ready" in report.summary() or report.warnings


def test_every_pin_of_pyproject_is_checked():
    pins = dict(envcheck.pinned_packages())
    assert pins["redis"] and pins["psycopg"] and pins["selenium"]  # extras like psycopg[binary] are read too


def test_missing_and_wrong_packages_are_named_with_a_pip_command(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = [\n'
                         '  "surely-not-installed-seckill-pkg==1.2.3",\n  "click==0.0.1",\n  "psutil==7.2.2",\n]\n')
    report = envcheck.run(pyproject=pyproject)
    missing, wrong, fine = report.find("packages")
    assert not missing.ok and missing.found == "not installed"
    assert missing.fix.endswith("-m pip install 'surely-not-installed-seckill-pkg==1.2.3'")
    assert not wrong.ok and "the course pins 0.0.1" in wrong.found and "'click==0.0.1'" in wrong.fix
    assert fine.ok
    assert not report.ok and {c.name for c in report.problems} == {"surely-not-installed-seckill-pkg", "click"}


def test_old_python_is_a_problem_with_a_fix():
    check = envcheck.check_python((3, 9, 18))
    assert not check.ok and "3.9.18 is too old" in check.found and "make lab PYTHON=python3.11" in check.fix
    assert envcheck.check_python((3, 12, 0)).ok


def test_missing_server_binaries_via_an_empty_bin_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SECKILL_BIN_PATH", str(tmp_path))
    checks = envcheck.check_servers()
    assert len(checks) == 4 and not any(c.ok for c in checks)
    for c in checks:
        assert f"not found in SECKILL_BIN_PATH={tmp_path}" in c.found
        assert c.fix.startswith("unset SECKILL_BIN_PATH")  # installed on this machine, hidden by the override
    # a binary placed in that folder is found again
    fake = tmp_path / "nginx"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert [c.ok for c in envcheck.check_servers() if c.name == "nginx"] == [True]


def test_a_binary_installed_nowhere_gets_an_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SECKILL_BIN_PATH", str(tmp_path))
    monkeypatch.setattr(envcheck, "_find_without_override", lambda name: None)  # as on a fresh machine
    monkeypatch.setenv("SECKILL_NO_INSTALL", "1")  # not allowed to apt as root: say the command instead
    [redis] = [c for c in envcheck.check_servers() if c.name == "redis-server"]
    assert not redis.ok
    if sys.platform.startswith("linux") and os.path.exists("/usr/bin/apt-get"):
        assert redis.fix == "sudo apt-get install -y redis-server"
    monkeypatch.delenv("SECKILL_NO_INSTALL")
    if os.geteuid() == 0 and os.path.exists("/usr/bin/apt-get"):
        [redis] = [c for c in envcheck.check_servers() if c.name == "redis-server"]
        assert redis.fix == "seckill install-servers"


def test_a_port_held_by_a_foreign_listener_is_named_with_a_way_out(monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("SECKILL_NGINX_PORT", str(port))
        checks = envcheck.check_ports(settings())
        [nginx] = [c for c in checks if c.name == f"nginx :{port}"]
        assert not nginx.ok and not nginx.warning
        assert f"pid {os.getpid()}" in nginx.found and "not by this course" in nginx.found
        assert f"kill {os.getpid()}" in nginx.fix and "export SECKILL_NGINX_PORT=" in nginx.fix
        moved_to = int(nginx.fix.split("export SECKILL_NGINX_PORT=")[1].split("`")[0])
        assert moved_to != port and not processes.port_open(moved_to)
    assert [c.ok for c in envcheck.check_ports(settings()) if c.name == f"nginx :{port}"] == [True]


def test_memory_too_low_fails_and_tight_memory_warns():
    low = envcheck.check_memory(200 * 2**20)
    assert not low.ok and not low.warning and "RabbitMQ" in low.found and "close other programs" in low.fix
    tight = envcheck.check_memory(1000 * 2**20)
    assert not tight.ok and tight.warning
    assert envcheck.check_memory(8 * 2**30).ok
    report = envcheck.run(available_memory=1000 * 2**20)
    assert report.ok and report.warnings  # a warning does not stop the course
    assert not envcheck.run(available_memory=200 * 2**20).ok


def test_little_disk_fails_with_a_fix(tmp_path):
    check = envcheck.check_disk(50 * 2**20, tmp_path / "not" / "yet")
    assert not check.ok and str(tmp_path) in check.found and "seckill reset" in check.fix
    assert envcheck.check_disk(5 * 2**30, tmp_path).ok


def test_report_renders_problems_first_with_fixes(tmp_path):
    report = envcheck.run(python=(3, 8, 0), available_memory=100 * 2**20)
    text = str(report)
    assert text.splitlines()[0].startswith("[FAIL] python")
    assert "fix: install Python 3.11+" in text and "2 problem(s) to fix" in text
    html = report._repr_html_()
    assert "fix · 修复" in html and "make lab PYTHON=python3.11" in html
    assert json.loads(json.dumps(report.as_dict()))["ok"] is False


def test_seckill_doctor(tmp_path, stack_urls):
    ok = subprocess.run([*SECKILL, "doctor"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "this machine is ready" in ok.stdout
    data = json.loads(subprocess.run([*SECKILL, "doctor", "--json"], capture_output=True, text=True,
                                     timeout=60).stdout)
    assert data["ok"] is True, [c for c in data["checks"] if not c["ok"]]
    assert len(data["checks"]) > 30
    broken = subprocess.run([*SECKILL, "doctor"], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, SECKILL_BIN_PATH=str(tmp_path)))
    assert broken.returncode == 1
    assert "[FAIL] servers: redis-server" in broken.stdout and "fix: unset SECKILL_BIN_PATH" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr


def test_require_lists_every_fix_and_renders_without_a_traceback():
    from seckill.errors import SeckillError

    report = envcheck.run(python=(3, 8, 0), available_memory=100 * 2**20)
    with pytest.raises(envcheck.NotReady) as info:
        report.require()
    text = str(info.value)
    assert text.startswith("Not ready yet: 2 problem(s)")
    assert "fix: install Python 3.11+" in text and "fix: free at least" in text
    shown = info.value._render_traceback_()  # what IPython prints instead of a traceback
    assert len(shown) == len(text.splitlines()) and not any("Traceback" in line for line in shown)
    assert isinstance(info.value, SeckillError)
    fine = envcheck.Report([envcheck.Check("python", "Python", True, "3.11.7")])
    assert fine.require() is fine and repr(fine) == str(fine)


def _bindable_port() -> int:
    """A port outside the ephemeral range that a server could bind now."""
    return processes.free_port_near(21_000 + os.getpid() % 500)


def test_a_port_held_by_an_outgoing_connection_is_taken_though_nothing_listens(monkeypatch):
    """A connect check says "free" here, and the server then fails to start: the check binds."""
    held = _bindable_port()
    with socket.socket() as listener, socket.socket() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.bind(("127.0.0.1", held))  # the local end of an outgoing connection, as the kernel would pick
        client.connect(listener.getsockname())
        assert not processes.port_open(held)  # nothing listens ...
        assert not processes.port_free(held)  # ... yet no server can bind it
        monkeypatch.setenv("SECKILL_NGINX_PORT", str(held))
        [nginx] = [c for c in envcheck.check_ports(settings()) if c.name == f"nginx :{held}"]
        assert not nginx.ok and "connection" in nginx.found, nginx
        moved_to = int(nginx.fix.split("export SECKILL_NGINX_PORT=")[1].split("`")[0])
        assert processes.port_free(moved_to) and moved_to not in processes.EPHEMERAL


def test_suggested_ports_stay_outside_the_ephemeral_range():
    for port in (18_000, 32_700, 40_000, 60_950):
        suggested = processes.free_port_near(port)
        assert suggested not in processes.EPHEMERAL and processes.port_free(suggested), (port, suggested)


def test_a_start_failure_is_one_line_quoting_the_logs_reason(tmp_path):
    script = "echo 'booting'; echo '# FATAL: could not bind IPv4 address: Address already in use'; " \
             "echo 'shutting down'; exit 3"
    with pytest.raises(processes.StartError) as caught:
        processes.start(tmp_path, "fake-server", ["sh", "-c", script], port=_bindable_port(), timeout=10)
    message = str(caught.value)
    assert "\n" not in message
    assert "fake-server exited while starting (code 3)" in message, message
    assert "FATAL: could not bind IPv4 address: Address already in use" in message, message
    assert str(tmp_path / "logs" / "fake-server.log") in message
