"""One line, not a traceback, when a lab is unwritten or the learner's code crashes.

A skeleton in labs/ raises ``NotImplementedError("TokenBucket.allow_request in
labs/token_bucket.py is not written yet — see notebooks/10_token_bucket.ipynb")``
(tools/make_labs.py writes that message). Called from a thread pool, that one
fact arrives at the bottom of a 70-line traceback through concurrent.futures.
Here it becomes one line wherever it surfaces:

    labs/stock.py: StockCache.reserve_once is not written yet — notebooks/12_stock_reservation.ipynb,
    section "4 · The fix: one Lua script, `reserve_once`"

and an exception raised *inside* the learner's own code (a typo, a wrong key)
becomes "labs/stock.py line 88, in reserve_once: KeyError: 'stock'" with the
same pointer to the notebook.

:func:`install_in_kernel` (called by ``import seckill`` inside a Jupyter kernel)
registers an IPython handler for cells and a ``threading.excepthook`` for
threads. Everything else keeps its normal traceback: a bug in the course's own
code must stay debuggable.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # services/system/x.py → the checkout

# The skeleton's message, as tools/make_labs.py writes it.
SKELETON = re.compile(r"^(?P<function>[\w.]+) in (?P<file>labs/\w+\.py) is not written yet — see (?P<notebook>\S+)")


@lru_cache(maxsize=64)
def _sections(notebook: str) -> tuple[tuple[str, str], ...]:
    """(heading, markdown text under it) for each markdown cell of ``notebook``; empty if unreadable."""
    try:
        cells = json.loads((REPO_ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return ()
    found, heading = [], ""
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell.get("source", []))
        for line in text.splitlines():
            if line.startswith("##"):  # a section; the notebook's "# title" is not one
                heading = line.lstrip("#").strip()
                break
        found.append((heading, text))
    return tuple(found)


def section(notebook: str, function: str) -> str | None:
    """The heading of the first notebook section whose text names ``function`` (or its method name)."""
    short = function.rsplit(".", 1)[-1]
    sections = _sections(notebook)
    for name in (function, short):  # a heading that names it ("... implement `allow_request`") first
        for heading, _text in sections:
            if re.search(rf"\b{re.escape(name)}\b", heading):
                return heading
    for name in (function, short):  # then the first section that talks about it
        for heading, text in sections:
            if heading and re.search(rf"\b{re.escape(name)}\b", text):
                return heading
    return None


def _pointer(notebook: str | None, function: str) -> str:
    if not notebook:
        return ""
    where = section(notebook, function)
    return f" — {notebook}" + (f', section "{where}"' if where else "")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _labs_dir() -> Path:
    from seckill.system import impl

    return impl.labs_dir()


def _in_labs(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_labs_dir())
    except (OSError, ValueError):
        return False


def one_line(exc: BaseException) -> str | None:
    """The one-line account of ``exc`` if it comes from the learner's labs/, else None.

    An unwritten skeleton: what is missing, in which file, which notebook section
    explains it. A crash inside labs/ code: file, line, function and the error.
    The exception's cause/context chain is searched too (a wrapped stub).
    """
    for link in _chain(exc):
        if isinstance(link, NotImplementedError):
            match = SKELETON.match(str(link))
            if match:
                function = match["function"]
                return (f"{match['file']}: {function} is not written yet"
                        f"{_pointer(match['notebook'], function)}")
    for link in _chain(exc):
        frames = [f for f in traceback.extract_tb(link.__traceback__) if _in_labs(f.filename)]
        if frames:
            frame = frames[-1]  # the learner's line closest to the error
            rel = Path("labs") / Path(frame.filename).resolve().relative_to(_labs_dir())
            notebook = _notebook_of(Path(frame.filename))
            error = "".join(traceback.format_exception_only(type(link), link)).strip().splitlines()[-1]
            return f"{rel} line {frame.lineno}, in {frame.name}: {error}{_pointer(notebook, frame.name)}"
    return None


def _notebook_of(path: Path) -> str | None:
    """The lab module's NOTEBOOK constant, read from its text (no import: it may not even import)."""
    try:
        match = re.search(r'^NOTEBOOK = "([^"]+)"', path.read_text(encoding="utf-8"), re.M)
    except OSError:
        return None
    return match.group(1) if match else None


# -- where the line is shown ------------------------------------------------------------

def _ipython_handler(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler: one red line for labs/ errors, the usual traceback otherwise."""
    line = one_line(value) if value is not None else None
    if line is None:
        if issubclass(etype, SyntaxError):
            shell.showsyntaxerror()
        else:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)
        return []
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # %debug still reaches the frames
    stb = [f"\x1b[31m{etype.__name__}\x1b[0m: {line}"]
    shell._showtraceback(etype, value, stb)
    return stb


def _thread_hook(previous):
    def hook(args: threading.ExceptHookArgs) -> None:
        line = one_line(args.exc_value) if args.exc_value is not None else None
        if line is None:
            previous(args)
            return
        name = args.thread.name if args.thread is not None else "a thread"
        print(f"{args.exc_type.__name__} in {name}: {line}", file=sys.stderr, flush=True)
    hook.seckill_lab_errors = True
    return hook


def install_in_kernel() -> bool:
    """In a running IPython kernel, show labs/ errors as one line (cells and threads). Idempotent.

    Returns whether it installed (False outside IPython: scripts and services keep Python's behaviour).
    """
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return False
    if getattr(shell, "_seckill_lab_errors", False):
        return True
    if shell.custom_exceptions:  # someone else's handler: leave it alone
        return False
    shell.set_custom_exc((Exception,), _ipython_handler)
    if not getattr(threading.excepthook, "seckill_lab_errors", False):
        threading.excepthook = _thread_hook(threading.excepthook)
    shell._seckill_lab_errors = True
    return True
