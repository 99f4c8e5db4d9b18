"""Notebooks 00 and 01 in a real browser: JupyterLab headless, Chromium headless, Run All, look at the page.

nbclient (tests/test_notebooks.py) proves the cells run; only a browser proves the learner SEES them:
that JupyterLab renders the plotly charts (its plotly mime renderer is installed), that the widgets of
the calculator have their models (no "Error displaying widget"), and that moving a control redraws.

Debian's chromium and chromium-driver are used (installed by `make test` via
`seckill install-servers --with-tools`); selenium is given both paths, so selenium-manager never
downloads a browser or a driver. JupyterLab serves a temporary copy of notebooks/ (nothing is written
into the repository) with the test stack's SECKILL_* environment, a token, and its settings in a
temporary folder. Screenshots are kept in the test's tmp dir and in .run/test<slot>/screenshots/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from seckill.system import tiers
from seckill.config import settings

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"]
BAD_TEXT = ("Error displaying widget", "model not found", "No renderer could be found", "Javascript Error",
            "Failed to display")
pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lab_settings(folder: Path) -> None:
    """Every cell in the DOM (no virtual scrolling), no news or update checks (no network here)."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                            "checkForUpdates": False},
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> list[Path]:
    dirs = [tmp_path_factory.mktemp("screenshots"), settings().run_dir / "screenshots"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


@pytest.fixture(scope="module")
def lab(stack_urls, tmp_path_factory):
    """JupyterLab on a free port serving a copy of notebooks/; yields (base_url, token)."""
    root = tmp_path_factory.mktemp("lab")
    notebooks = root / "notebooks"
    shutil.copytree(REPO / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _lab_settings(root / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"), JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               JUPYTER_CONFIG_DIR=str(root / "config"),
               # no measurements yet, as for a new learner: the calculator starts from the seed's figures
               SECKILL_RESULTS_DIR=str(root / "results"))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "jupyter.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}); see {root / 'jupyter.log'}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within 90 s; see {root / 'jupyter.log'}")
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()  # the server shuts its kernels down
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        log.close()
        tiers.down(out=None)  # notebook 00 starts tier flask; never leave it behind after a failure


def headless_chromium(profile: Path):
    """A headless chromium under selenium with CHROME_FLAGS and a profile of its own (also the workshop
    dashboard tests'); pytest.fail names the package when chromium or its driver is missing."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: run `seckill install-servers --with-tools` "
                        f"(or `apt-get install -y {package}`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # belt and braces: selenium-manager must never download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# -- talking to JupyterLab through its own application object (exposed by --LabApp.expose_app_in_browser)

READY_JS = """
const app = window.jupyterapp; if (!app || !app.shell) return "no app";
const w = app.shell.currentWidget;
if (!w || !w.context || !w.context.path.endsWith(arguments[0])) return "opening";
if (!w.sessionContext.session || !w.sessionContext.session.kernel) return "no kernel";
return w.sessionContext.session.kernel.status;
"""

STATE_JS = """
const w = window.jupyterapp.shell.currentWidget;
let pending = 0, unrun = 0, code = 0; const errors = [];
for (const cell of w.content.widgets) {
  if (cell.model.type !== 'code') continue;
  code += 1;
  const prompt = cell.node.querySelector('.jp-InputPrompt');
  if (prompt && prompt.textContent.includes('*')) pending += 1;
  if (cell.model.executionCount === null) unrun += 1;
  for (const out of cell.model.outputs.toJSON()) {
    if (out.output_type === 'error') errors.push(out.ename + ': ' + out.evalue);
  }
}
return {pending, unrun, code, errors, status: w.sessionContext.session.kernel.status};
"""

DOM_JS = """
const node = window.jupyterapp.shell.currentWidget.node;
const count = (selector) => node.querySelectorAll(selector).length;
return {
  plotly: count('.js-plotly-plot .main-svg'),
  widgets: count('.jupyter-widgets'),
  sliders: count('.widget-slider'),
  toggles: count('.widget-toggle-buttons'),
  // JupyterLab shows image/svg+xml as an <img>: drawn when the browser decoded it (naturalWidth > 0)
  diagram: Array.from(node.querySelectorAll('.jp-RenderedSVG img')).filter(
      img => img.naturalWidth > 0 && decodeURIComponent(img.src).includes('seckill-architecture')).length,
  envcheck: count('.seckill-envcheck'),
  coursemap: count('.seckill-course-map tbody tr'),
  // the live verdict only: the calculator's static copy (for viewers without a kernel) has one too
  verdict: Array.from(node.querySelectorAll('.seckill-verdict')).filter(e => !e.closest('.seckill-static'))
                .map(e => e.innerText).join(' | '),
  static_shown: Array.from(node.querySelectorAll('.seckill-static')).filter(e => e.offsetParent !== null).length,
  text: node.innerText,
};
"""

# The text/html of the calculator's static copy as the notebook model holds it (what Save writes to the file).
SAVED_COPY_JS = """
const w = window.jupyterapp.shell.currentWidget;
const copies = [];
for (const cell of w.content.widgets) {
  if (cell.model.type !== 'code') continue;
  for (const out of cell.model.outputs.toJSON()) {
    const html = (out.data || {})['text/html'];
    const text = Array.isArray(html) ? html.join('') : (html || '');
    if (text.includes('seckill-static')) copies.push(text);
  }
}
return copies.join(' | ');
"""

MARK_CALCULATOR_JS = """
const found = window.jupyterapp.shell.currentWidget.node.querySelectorAll('.seckill-calculator');
if (found.length) found[0].dataset.seckillMark = 'seen';
return found.length;
"""
MARKED_CALCULATOR_JS = """
const found = window.jupyterapp.shell.currentWidget.node.querySelectorAll('.seckill-calculator');
return found.length === 1 && found[0].isConnected && found[0].dataset.seckillMark === 'seen';
"""


def _wait(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} within {timeout:.0f} s (last seen: {last!r})")


def run_all(driver, base: str, token: str, name: str, timeout: float) -> dict:
    """Open notebook `name`, run all cells, wait until they finish; returns the final cell state."""
    driver.get(f"{base}/lab/tree/{name}?token={token}")
    _wait(lambda: driver.execute_script(READY_JS, name) == "idle", 90, f"{name}: kernel idle")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        state = driver.execute_script(STATE_JS)
        done = state["pending"] == 0 and state["status"] == "idle" and (state["unrun"] == 0 or state["errors"])
        return state if done else None

    state = _wait(finished, timeout, f"{name}: all cells run")
    time.sleep(1.0)  # let the renderers (plotly, widgets) finish drawing the last outputs
    return state


def shoot(driver, dirs: list[Path], name: str, selector: str | None = None) -> None:
    if selector:
        driver.execute_script(
            "const e = window.jupyterapp.shell.currentWidget.node.querySelector(arguments[0]);"
            "if (e) e.scrollIntoView({block: 'start'});", selector)
        time.sleep(0.5)
    for d in dirs:
        path = d / f"{name}.png"
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")


def assert_clean(dom: dict, name: str) -> None:
    for bad in BAD_TEXT:
        assert bad not in dom["text"], f"{name}: the page says {bad!r}"


def test_start_here_renders_in_jupyterlab(lab, browser, screenshots):
    base, token = lab
    state = run_all(browser, base, token, "00_start_here.ipynb", timeout=150)
    assert not state["errors"], state["errors"]
    assert state["unrun"] == 0 and state["code"] >= 10
    dom = browser.execute_script(DOM_JS)
    assert dom["envcheck"] == 1, "the environment check table is missing"
    assert "this machine is ready" in dom["text"]
    assert dom["diagram"] == 1, "the architecture diagram did not render"
    assert dom["plotly"] >= 1, "the plotly chart did not render"
    assert dom["coursemap"] >= 7, "the course map table is missing rows"
    assert_clean(dom, "00_start_here")
    shoot(browser, screenshots, "00_start_here-envcheck", ".seckill-envcheck")
    shoot(browser, screenshots, "00_start_here-diagram", ".jp-RenderedSVG")
    shoot(browser, screenshots, "00_start_here-chart", ".js-plotly-plot")
    shoot(browser, screenshots, "00_start_here-course-map", ".seckill-course-map")


def test_capacity_calculator_renders_and_reacts(lab, browser, screenshots):
    base, token = lab
    state = run_all(browser, base, token, "01_requirements_and_capacity.ipynb", timeout=90)
    assert not state["errors"], state["errors"]
    assert state["unrun"] == 0
    dom = browser.execute_script(DOM_JS)
    assert dom["sliders"] >= 5 and dom["toggles"] >= 2, f"calculator widgets missing: {dom['sliders']} sliders"
    assert dom["plotly"] >= 2, f"expected the queue chart and the calculator chart, found {dom['plotly']}"
    assert "The bottleneck is app tier" in dom["verdict"], dom["verdict"]
    assert dom["static_shown"] == 0, "the calculator's static copy shows next to the live widget"
    sliders = dom["sliders"]
    # mark the calculator's DOM: a redraw must change its chart, never build the widget again
    assert browser.execute_script(MARK_CALCULATOR_JS) == 1, "expected exactly one calculator widget"
    assert "The bottleneck is app tier" in browser.execute_script(SAVED_COPY_JS)
    assert_clean(dom, "01_requirements_and_capacity")
    shoot(browser, screenshots, "01_calculator", ".widget-slider")

    # a click in the browser reaches the kernel and redraws: the design switch moves the bottleneck
    clicked = browser.execute_script("""
        const node = window.jupyterapp.shell.currentWidget.node;
        const button = Array.from(node.querySelectorAll('.widget-toggle-button'))
                            .find(b => b.innerText.includes('db-direct'));
        if (!button) return false; button.click(); return true;""")
    assert clicked, "the design toggle button was not found"
    seen = {"verdict": None}

    def redrawn():
        seen["verdict"] = browser.execute_script(DOM_JS)["verdict"]
        return seen["verdict"] if "The bottleneck is PostgreSQL" in seen["verdict"] else None

    try:
        _wait(redrawn, 30, "the verdict to name PostgreSQL as the bottleneck after switching to db-direct")
    except BaseException:
        shoot(browser, screenshots, "01_calculator-after-click", ".seckill-verdict")
        print("verdict after the click:", seen["verdict"])
        raise
    dom = browser.execute_script(DOM_JS)
    assert dom["plotly"] >= 2 and dom["static_shown"] == 0
    assert dom["sliders"] == sliders and browser.execute_script(MARKED_CALCULATOR_JS), \
        "the calculator widget was drawn again (a new view under the learner's mouse)"
    assert_clean(dom, "01_requirements_and_capacity after a click")

    # what the notebook would save: the static copy follows the click (update_display from the comm handler)
    def saved_copy_follows():
        copy = browser.execute_script(SAVED_COPY_JS)
        return "The bottleneck is PostgreSQL" in copy and "The bottleneck is app tier" not in copy

    _wait(saved_copy_follows, 15, "the saved static copy to name PostgreSQL (only) after the click")
    shoot(browser, screenshots, "01_calculator-db-direct", ".seckill-verdict")


REHEARSAL_JS = """
const node = window.jupyterapp.shell.currentWidget.node;
const eyes = Array.from(node.querySelectorAll('button')).filter(b => b.querySelector('.fa-eye'));
return {
  plays: node.querySelectorAll('.widget-play').length,
  bars: node.querySelectorAll('.widget-hprogress').length,
  textareas: node.querySelectorAll('.widget-textarea textarea').length,
  reveal_disabled: eyes.map(b => b.disabled),
  clock_labels: Array.from(node.querySelectorAll('.widget-play')).map(
      p => (p.parentElement.querySelector(':scope > .widget-label') || {}).innerText || ''),
  text: node.innerText,
};
"""


def test_rehearsal_clock_ticks_and_model_answers_wait_for_yours(lab, browser, screenshots):
    """Notebook 90 in a real browser: four clocks that run in the page, reveal refused until you wrote."""
    from selenium.webdriver.common.by import By

    base, token = lab
    state = run_all(browser, base, token, "90_interview_rehearsal.ipynb", timeout=120)
    assert not state["errors"], state["errors"]
    dom = browser.execute_script(REHEARSAL_JS)
    assert_clean(dom, "90_interview_rehearsal")
    assert dom["plays"] == 4 and dom["bars"] >= 4, dom  # 30 s, 60 s, 60 s, 30 s
    assert dom["reveal_disabled"] and all(dom["reveal_disabled"]), "a model answer can be revealed before writing"
    assert "30 s left" in dom["clock_labels"][0], dom["clock_labels"]

    # the first clock: press play, and the page counts down (Play ticks in the browser, the label in the kernel)
    play = browser.find_elements(By.CSS_SELECTOR, ".widget-play button")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", play)
    play.click()
    ticked = _wait(lambda: (lambda label: label if label and "30 s left" not in label else None)(
        browser.execute_script(REHEARSAL_JS)["clock_labels"][0]), 15, "the first clock to count down")
    assert "s left" in ticked or "Time's up" in ticked
    shoot(browser, screenshots, "90_rehearsal-clock", ".widget-play")

    # the first card: write an answer, and only then may the model answer be revealed
    eye = [b for b in browser.find_elements(By.CSS_SELECTOR, "button") if b.find_elements(By.CSS_SELECTOR, ".fa-eye")][0]
    card_text = eye.find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-vbox')][1]")
    answer = card_text.find_elements(By.CSS_SELECTOR, "textarea")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", answer)
    answer.send_keys("RabbitMQ: acks and confirms; Kafka for a log of events.")
    answer.send_keys("\t")  # leave the box: the widget syncs its value to the kernel
    _wait(lambda: eye.is_enabled() or None, 15, "the reveal button to open once an answer is written")
    eye.click()
    _wait(lambda: "Model answer" in card_text.text or None, 15, "the model answer after the reveal")
    shoot(browser, screenshots, "90_rehearsal-card", ".fa-eye")


# -- the learner's first hour: `make lab HEADLESS=1`, lab 10 written, labs 11-14 still skeletons -----------

OUTPUTS_JS = """
const w = window.jupyterapp.shell.currentWidget;
const errors = [], stderr = [], text = [];
w.content.widgets.forEach((cell, i) => {
  if (cell.model.type !== 'code') return;
  for (const out of cell.model.outputs.toJSON()) {
    if (out.output_type === 'error') errors.push({cell: i, ename: out.ename, traceback: out.traceback});
    if (out.output_type === 'stream' && out.name === 'stderr') stderr.push({cell: i, text: out.text});
    if (out.output_type === 'stream' && out.name === 'stdout') text.push(out.text);
  }
});
// JupyterLab renders an error's traceback (and stderr) under the stderr mime type
const shown = Array.from(w.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
                   .map(e => e.innerText);
return {errors, stderr, stdout: text.join(''), shown};
"""


@pytest.fixture(scope="module")
def first_hour(stack_urls, tmp_path_factory):
    """`make lab HEADLESS=1 PORT=…` as a learner runs it, with a workspace where lab 10 is done.

    The workspace is a copy of labs/ (SECKILL_LABS_DIR) whose token_bucket.py is the reference; the
    other labs are the generated skeletons. JupyterLab serves the repository's notebooks/ (as make lab
    does) with autosave off, so nothing is written into them. Yields (base_url, token).
    """
    root = tmp_path_factory.mktemp("first-hour")
    workspace = root / "labs"
    shutil.copytree(REPO / "labs", workspace, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "solutions" / "token_bucket.py", workspace / "token_bucket.py")
    _lab_settings(root / "settings")
    autosave = root / "settings" / "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
    autosave.parent.mkdir(parents=True, exist_ok=True)
    autosave.write_text(json.dumps({"autosave": False}))
    # The test drives JupyterLab through window.jupyterapp (as the other browser tests do via the flag).
    (root / "config").mkdir()
    (root / "config" / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {"expose_app_in_browser": True}}))
    from seckill.stack import processes

    port, token = processes.free_port_near(20_300 + os.getpid() % 500), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "SECKILL_IMPL"}  # a learner has none: their labs/
    env.update(SECKILL_LAB_TOKEN=token, SECKILL_LABS_DIR=str(workspace), PATH="/usr/bin:/bin",
               JUPYTERLAB_SETTINGS_DIR=str(root / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), JUPYTER_CONFIG_DIR=str(root / "config"))
    out = open(root / "make-lab.out", "w+")
    proc = subprocess.Popen(["make", "--no-print-directory", "lab", "HEADLESS=1", f"PORT={port}"], cwd=REPO,
                            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        def url_printed():
            if proc.poll() is not None:
                pytest.fail(f"make lab exited ({proc.returncode}): {(root / 'make-lab.out').read_text()}")
            lines = (root / "make-lab.out").read_text().splitlines()
            return lines and lines[-1].startswith("JupyterLab: http") and lines
        lines = _wait(url_printed, 180, "make lab to print the URL as its last line")
        assert f"http://127.0.0.1:{port}/lab?token={token}" in lines[-1]
        yield f"http://127.0.0.1:{port}", token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out.close()
        tiers.down(out=None)
    assert not subprocess.run(["git", "status", "--porcelain", "notebooks", "labs"], cwd=REPO, capture_output=True,
                              text=True).stdout, "the browser run wrote into the repository"


def test_lab_10_done_runs_to_the_end_in_the_real_system(first_hour, browser, screenshots):
    """Notebook 10 with a correct bucket and skeletons for labs 11-14: every cell runs, the sale succeeds,
    no error and nothing on stderr (no pink boxes), and the tier says whose code runs."""
    base, token = first_hour
    state = run_all(browser, base, token, "10_token_bucket.ipynb", timeout=280)
    outputs = browser.execute_script(OUTPUTS_JS)
    browser.execute_script("""
        const outs = Array.from(window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-OutputArea-output'));
        const tier = outs.find(o => o.innerText.includes('• code:'));
        if (tier) tier.scrollIntoView({block: 'start'});""")
    time.sleep(0.5)
    shoot(browser, screenshots, "10_first_hour-real-system")
    assert not state["errors"] and state["unrun"] == 0, state
    assert not outputs["stderr"], outputs["stderr"]
    assert "• code: token_bucket: yours (labs/) · rate_limit, stock, producer, consumer: reference" \
        in outputs["stdout"], outputs["stdout"][-2000:]
    assert "stopped gateway, order-service" in outputs["stdout"]
    dom = browser.execute_script(DOM_JS)
    assert_clean(dom, "10_token_bucket")
    assert dom["plotly"] >= 1
    assert tiers.current() is None, "the notebook left its tier running"


def test_lab_12_with_the_skeleton_stops_with_one_line(first_hour, browser, screenshots):
    base, token = first_hour
    run_all(browser, base, token, "12_stock_reservation.ipynb", timeout=200)
    outputs = browser.execute_script(OUTPUTS_JS)
    shoot(browser, screenshots, "12_skeleton-error", ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert len(outputs["errors"]) == 1, outputs["errors"]
    [error] = outputs["errors"]
    assert error["ename"] == "NotImplementedError" and len(error["traceback"]) == 1, error
    assert "labs/stock.py: StockCache." in error["traceback"][0] and "is not written yet" in error["traceback"][0]
    assert "notebooks/12_stock_reservation.ipynb, section" in error["traceback"][0]
    [shown] = outputs["shown"]
    assert len(shown.strip().splitlines()) == 1 and "concurrent" not in shown, shown
    assert not outputs["stderr"], outputs["stderr"]
    assert tiers.current() is None


# -- the Chinese edition, with JupyterLab's own interface in Chinese (jupyterlab-language-pack-zh-cn) -----

@pytest.fixture(scope="module")
def lab_zh(stack_urls, tmp_path_factory):
    """JupyterLab like `make lab LANG=zh`: interface locale zh_CN, serving a copy of notebooks/ (zh/ inside)."""
    from seckill.course.jupyterlab import overrides

    root = tmp_path_factory.mktemp("lab-zh")
    notebooks = root / "notebooks"
    shutil.copytree(REPO / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _lab_settings(root / "settings")
    locale = overrides("zh")["@jupyterlab/translation-extension:plugin"]
    (root / "settings" / "@jupyterlab" / "translation-extension").mkdir(parents=True, exist_ok=True)
    (root / "settings" / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps(locale))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"), JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               JUPYTER_CONFIG_DIR=str(root / "config"), SECKILL_RESULTS_DIR=str(root / "results"))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "jupyter.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: proc.poll() is None and _status_ok(f"{base}/api/status?token={token}"), 90,
              f"jupyter lab (zh) answering; see {root / 'jupyter.log'}")
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        log.close()
        tiers.down(out=None)


def _status_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


# Tofu test: with no font for a script, every character is drawn as the same box. Two different Chinese
# characters drawn in the notebook's font must differ; two private-use characters (no font has them) are the
# control that proves identical boxes are what tofu looks like here.
GLYPHS_JS = """
const md = window.jupyterapp.shell.currentWidget.node.querySelector('.jp-RenderedMarkdown');
const font = getComputedStyle(md).fontFamily;
const px = (ch) => { const c = document.createElement('canvas'); c.width = c.height = 48;
  const x = c.getContext('2d'); x.font = '40px ' + font; x.fillText(ch, 2, 42);
  return Array.from(x.getImageData(0, 0, 48, 48).data).join(','); };
return {font, cjk_distinct: px('秒') !== px('杀'), cjk_inked: px('秒') !== px(' '),
        tofu_control_same: px('\\ue000') === px('\\ue001'),
        menu: (document.querySelector('#jp-MainMenu') || document.querySelector('.lm-MenuBar') || {}).innerText || ''};
"""


def test_chinese_edition_in_jupyterlab_in_chinese(lab_zh, browser, screenshots):
    base, token = lab_zh
    state = run_all(browser, base, token, "zh/00_start_here.ipynb", timeout=150)
    assert not state["errors"], state["errors"]
    assert state["unrun"] == 0
    dom = browser.execute_script(DOM_JS)
    assert_clean(dom, "zh/00_start_here")
    assert "从这里开始" in dom["text"] and "这台机器准备好了吗" in dom["text"], dom["text"][:400]
    assert dom["plotly"] >= 1 and dom["coursemap"] >= 7
    glyphs = browser.execute_script(GLYPHS_JS)
    assert "文件" in glyphs["menu"] and "编辑" in glyphs["menu"], f"JupyterLab's menus are not Chinese: {glyphs['menu']!r}"
    assert glyphs["tofu_control_same"], "the tofu control failed: identical boxes are not detectable here"
    assert glyphs["cjk_distinct"] and glyphs["cjk_inked"], f"Chinese renders as tofu in {glyphs['font']!r}"
    shoot(browser, screenshots, "zh_00_start_here-top", ".jp-RenderedMarkdown")
    shoot(browser, screenshots, "zh_00_start_here-course-map", ".seckill-course-map")
