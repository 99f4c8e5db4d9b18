"""The nbgitpuller link `seckill workshop init` prints works, against a real Jupyter server.

What a learner's browser does with the link, done by hand: the course is served as a git remote on
loopback (`git daemon`, read-only, over a bare clone of this checkout); a Jupyter server with the
nbgitpuller extension runs as the learner's server would under the hub (root: the learner's home,
base URL /user/<name>/, token auth); the link's /hub/user-redirect/ becomes that base URL, as the
hub's redirect does. Its git-pull page names what to sync and where to go afterwards (the page's
data attributes); the sync itself is the event stream the page's script opens (git-pull/api),
followed until it says finished. Then the page's redirect must open notebook 00 in JupyterLab.

First open: the course is cloned into ~/seckill, the folder start-learner.sh works in. Second open,
after the instructor pushed a commit: it is pulled, and the learner's own edit to labs/stock.py
stays (nbgitpuller merges, keeping the learner's side).

Skips when nbgitpuller is not installed (hub hosts: `pip install -e .[hub]`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

pytest.importorskip("nbgitpuller", reason="nbgitpuller not installed (hub hosts only: pip install -e .[hub])")
import requests  # noqa: E402

from seckill.course import workshop  # noqa: E402
from seckill.stack import processes  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SECKILL = str(Path(sys.executable).parent / "seckill")
HUB = "http://127.0.0.1:8000"
LEARNER = "learner"
pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_AUTHOR_NAME": "Instructor", "GIT_AUTHOR_EMAIL": "i@example.org",
                               "GIT_COMMITTER_NAME": "Instructor", "GIT_COMMITTER_EMAIL": "i@example.org"})
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if processes.port_open(port):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} did not listen on {port}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def remote(tmp_path):
    """This checkout's HEAD as branch main of a bare repository, served by `git daemon` on loopback."""
    served = tmp_path / "srv"
    bare = served / "seckill.git"
    _git("clone", "--quiet", "--bare", str(REPO), str(bare))
    _git("update-ref", "refs/heads/main", _git("rev-parse", "HEAD", cwd=REPO), cwd=bare)
    port = _free_port()
    log = tmp_path / "git-daemon.log"
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
                             f"--base-path={served}", str(served)], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, "git daemon", log)
        yield f"git://127.0.0.1:{port}/seckill.git", bare
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def learner_server(tmp_path):
    """A Jupyter server as the hub starts a learner's: root = their home, under /user/<name>/, a token."""
    home = tmp_path / "home"
    home.mkdir()
    port, token = _free_port(), "t-" + os.urandom(12).hex()
    log = tmp_path / "jupyter.log"
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config")}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={home}",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             f"--ServerApp.base_url=/user/{LEARNER}/", f"--IdentityProvider.token={token}",
                             "--ServerApp.open_browser=False", "--ServerApp.allow_root=True"],
                            cwd=home, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, "jupyter_server", log)
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        yield {"home": home, "base": f"http://127.0.0.1:{port}/user/{LEARNER}/", "http": session, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _printed_link(tmp_path: Path, repo: str) -> str:
    """The link `seckill workshop init` prints (the line `hand out   : …`)."""
    done = subprocess.run([SECKILL, "workshop", "init", "--dir", str(tmp_path / "hub"), "--learner", LEARNER,
                           "--auth", "dummy", "--repo", repo, "--hub-url", HUB], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    [link] = re.findall(r"^hand out\s*: (\S+)$", done.stdout, re.M)
    return link


def open_link(server: dict, link: str, timeout_s: float = 120) -> tuple[list[dict], str]:
    """What the browser does with the link: the git-pull page, its sync stream, then its redirect.

    Returns the stream's events and the URL the page redirects to when the sync finished.
    """
    prefix = f"{HUB}/hub/user-redirect/"
    assert link.startswith(prefix + "git-pull?"), link
    http = server["http"]
    page = http.get(server["base"] + link[len(prefix):], timeout=30)
    assert page.status_code == 200, page.text[:500]
    body = re.search(r"<body([^>]*)>", page.text, re.S).group(1)
    data = {k: urllib.parse.unquote(v) for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', body)}
    # as nbgitpuller's gitsync.js: sync through git-pull/api, then go to base-url + path
    params = {"_xsrf": data.get("xsrf", ""), "repo": data["repo"], "targetpath": data["targetpath"]}
    if "branch" in data:
        params["branch"] = data["branch"]
    origin = server["base"].split("/user/")[0]
    events = []
    deadline = time.monotonic() + timeout_s
    with http.get(origin + data["base-url"] + "git-pull/api", params=params, stream=True, timeout=30) as stream:
        assert stream.status_code == 200, stream.text[:500]
        for line in stream.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, f"the sync ran longer than {timeout_s:.0f} s: {events[-3:]}"
            if line and line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
                if events[-1].get("phase") in ("finished", "error"):
                    break
    assert events and events[-1]["phase"] == "finished", \
        f"nbgitpuller: {events[-1] if events else 'no event'}\n{server['log'].read_text()[-2000:]}"
    return events, origin + data["base-url"] + data["path"]


def test_the_printed_link_clones_the_course_then_pulls_and_keeps_the_learners_edit(tmp_path, remote, learner_server):
    url, bare = remote
    link = _printed_link(tmp_path, url)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["repo"] == [url] and query["branch"] == ["main"]
    start = (tmp_path / "hub" / "start-learner.sh").read_text()
    # the clone start-learner.sh makes is the one the link pulls into, under the root the server serves
    assert f'COURSE="$HOME/{query["targetpath"][0]}"' in start and '--ServerApp.root_dir="$HOME"' in start

    home, http = learner_server["home"], learner_server["http"]
    course = home / workshop.COURSE_DIR

    # first open: a fresh clone in ~/seckill, and the page then opens notebook 00 in JupyterLab
    _, redirect = open_link(learner_server, link)
    assert (course / "notebooks" / "00_start_here.ipynb").is_file(), sorted(p.name for p in home.iterdir())
    assert _git("rev-parse", "HEAD", cwd=course) == _git("rev-parse", "main", cwd=bare)
    assert redirect == learner_server["base"] + f"lab/tree/{workshop.COURSE_DIR}/notebooks/00_start_here.ipynb"
    assert http.get(redirect, timeout=30).status_code == 200
    notebook = http.get(learner_server["base"] + f"api/contents/{workshop.COURSE_DIR}/notebooks/00_start_here.ipynb",
                        timeout=30)
    assert notebook.status_code == 200 and notebook.json()["type"] == "notebook"

    # the learner works on a lab; the instructor pushes a fix to the same file and a new one
    stock = course / "labs" / "stock.py"
    stock.write_text(stock.read_text() + "\n# learner: my reservation, step 2\n")
    scratch = tmp_path / "instructor"
    _git("clone", "--quiet", "--branch", "main", str(bare), str(scratch))
    lines = (scratch / "labs" / "stock.py").read_text().splitlines(keepends=True)
    (scratch / "labs" / "stock.py").write_text("# instructor: a fix at the top\n" + "".join(lines))
    (scratch / "notebooks" / "extra_from_instructor.md").write_text("# added after the workshop began\n")
    _git("add", "-A", cwd=scratch)
    _git("commit", "--quiet", "-m", "a fix during the workshop", cwd=scratch)
    _git("push", "--quiet", "origin", "main", cwd=scratch)
    pushed = _git("rev-parse", "HEAD", cwd=scratch)

    # second open: pulled, merged, the learner's edit kept
    open_link(learner_server, link)
    subprocess.run(["git", "merge-base", "--is-ancestor", pushed, "HEAD"], cwd=course, check=True)
    assert (course / "notebooks" / "extra_from_instructor.md").is_file()
    text = stock.read_text()
    assert "# instructor: a fix at the top" in text and "# learner: my reservation, step 2" in text
    assert not list(home.glob("seckill*.git")) and [p.name for p in home.iterdir() if not p.name.startswith(".")] \
        == [workshop.COURSE_DIR], "a second clone beside the learner's"
