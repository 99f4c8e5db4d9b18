"""One check of one lab, run in a child process of the grader (see seckill.course.grader).

    python -m seckill.course.graders._child LAB PATH INDEX URLS_JSON FD      (results on file descriptor FD)

The learner's code runs here, never in the grader's (or the notebook kernel's) process: if it kills its
process, segfaults, prints without end or never returns, the grader reports that as this check's result
and goes on with the next check in a new child. Messages to the parent are JSON lines on fd FD:
{"event": "imported"} once the learner's module loaded (the check's clock starts then), then
{"event": "result", ...}; or {"event": "import_error", "where": ...}.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the grader dies, so nothing is left running."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def where(exc: BaseException, path: Path) -> str:
    """'line N: ExcType: message', the line being the deepest one in the learner's file."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"line {exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    message = f"{type(exc).__name__}: {exc}".strip()
    return f"line {frames[-1].lineno}: {message}" if frames else message


def learner_function(exc: BaseException, path: Path) -> str | None:
    """The qualified name of the deepest function of the learner's file in exc's traceback (or chain)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = None
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if Path(code.co_filename) == path and code.co_name != "<module>":
                name = getattr(code, "co_qualname", code.co_name)
            tb = tb.tb_next
        if name:
            return name
        exc = exc.__cause__ or exc.__context__
    return None


def load(module: str, path: Path):
    name = f"_seckill_graded_{module}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and enums look their module up here
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str]) -> int:
    lab, path, index, urls = argv[0], Path(argv[1]), int(argv[2]), json.loads(argv[3])
    _die_with_parent()
    out = os.fdopen(int(argv[4]), "w", buffering=1)

    def send(**message) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    from seckill.course.graders._base import CheckFailed, Context, not_implemented

    checks = importlib.import_module(f"seckill.course.graders.{lab}").CHECKS
    module = path.stem
    try:
        mod = load(module, path)
    except BaseException as exc:  # the learner's file: any error is a result
        send(event="import_error", where=where(exc, path))
        return 0
    send(event="imported", notebook=getattr(mod, "NOTEBOOK", None))
    check = checks[index]
    ctx = Context(urls=urls)
    try:
        check.func(ctx, mod)
        result = {"passed": True}
    except CheckFailed as exc:
        result = {"passed": False, "hint": exc.hint, "detail": exc.detail}
    except BaseException as exc:  # the learner's code raised: reported, never a traceback
        if not_implemented(exc):
            result = {"passed": False, "not_implemented": learner_function(exc, path) or "",
                      "detail": where(exc, path)}
        else:
            result = {"passed": False, "hint": check.hint, "detail": "raised " + where(exc, path)}
    finally:
        ctx.close()
    send(event="result", **result)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # the learner's threads (a stuck worker) must not keep the process alive
