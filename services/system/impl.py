"""Which implementation of the teachable pieces the services run: yours or ours.

``SECKILL_IMPL=solutions`` (the default) runs the reference in solutions/;
``SECKILL_IMPL=labs`` runs the learner's code in labs/, so their own token
bucket and Lua script face the load test. A path to a folder holding the same
modules works too (graders use it to try other implementations).

The running system (gateways, order service, tiers started with ``labs``) uses
:func:`running`: each piece comes from labs/ when the learner has started it
(the file is no longer the generated skeleton) and from solutions/ otherwise,
so lab 10's bucket runs in the real system before labs 11-14 are written.
:func:`describe` says which is which in one line. A notebook's own experiments
keep :func:`load`, which never substitutes: the learner sees their own code.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from seckill.errors import SeckillError

PIECES = ("token_bucket", "rate_limit", "stock", "producer", "consumer")
REPO_ROOT = Path(__file__).resolve().parents[2]  # services/system/x.py → the checkout


class ImplError(SeckillError):
    """SECKILL_IMPL names something we cannot import; the message says what to use."""


def current() -> str:
    return os.environ.get("SECKILL_IMPL", "solutions") or "solutions"


def learner() -> str:
    """The implementation a learner's notebook and the graders use by default: their own."""
    return os.environ.get("SECKILL_IMPL") or "labs"


class _FolderFinder(importlib.abc.MetaPathFinder):
    """Finds the modules load() imported from a folder again, so importlib.reload() works on them too."""

    files: dict[str, Path] = {}

    @classmethod
    def install(cls) -> None:
        if not any(isinstance(f, cls) for f in sys.meta_path):
            sys.meta_path.append(cls())

    def find_spec(self, name, path=None, target=None):
        file = self.files.get(name)
        return importlib.util.spec_from_file_location(name, file) if file else None


def labs_dir() -> Path:
    """The learner's workspace: labs/ of this checkout, or $SECKILL_LABS_DIR (tests use a copy)."""
    return Path(os.environ.get("SECKILL_LABS_DIR") or REPO_ROOT / "labs").expanduser().resolve()


def load(piece: str, impl: str | None = None) -> ModuleType:
    """Import ``piece`` (e.g. "stock") from the chosen implementation."""
    if piece not in PIECES:
        raise ImplError(f"unknown piece {piece!r}; the pieces are {', '.join(PIECES)}")
    impl = impl or current()
    if impl == "labs" and labs_dir() != REPO_ROOT / "labs":
        impl = str(labs_dir())
    if impl in ("solutions", "labs"):
        return importlib.import_module(f"{impl}.{piece}")
    folder = Path(impl).expanduser().resolve()
    path = folder / f"{piece}.py"
    if not path.is_file():
        raise ImplError(f"SECKILL_IMPL={impl!r}: use 'solutions', 'labs' or a folder holding {piece}.py")
    name = f"_seckill_impl_{abs(hash(str(folder)))}_{piece}"
    if name in sys.modules:
        return sys.modules[name]
    _FolderFinder.install()
    _FolderFinder.files[name] = path
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _make_labs() -> ModuleType:
    """tools/make_labs.py, which knows what the untouched skeleton of each lab looks like."""
    name = "_seckill_make_labs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "make_labs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def started(piece: str, folder: Path | None = None, solutions_dir: Path | None = None) -> bool:
    """Has the learner started ``piece``: is labs/<piece>.py anything but the generated skeleton?

    An untouched skeleton only raises NotImplementedError, so the running system
    uses the reference for it. A file the learner edited counts as theirs, even
    half-written: they are working on it and want to see it run (or fail).
    """
    folder = folder or labs_dir()
    solutions_dir = solutions_dir or REPO_ROOT / "solutions"
    lab = folder / f"{piece}.py"
    if not lab.is_file():
        return False
    solution = solutions_dir / f"{piece}.py"
    try:
        skeleton = _make_labs().make_lab(solution.read_text(encoding="utf-8"), solution.name)
    except (OSError, ImportError):  # no generator or reference at hand: the learner's file is all we have
        return True
    return lab.read_text(encoding="utf-8") != skeleton


def choice(piece: str, impl: str | None = None) -> str:
    """Where the running system takes ``piece`` from: "labs" or "solutions" (or impl's folder)."""
    impl = impl or current()
    if impl != "labs":
        return impl
    return "labs" if started(piece) else "solutions"


def running(piece: str, impl: str | None = None) -> ModuleType:
    """The module the running system uses for ``piece`` (see :func:`choice`)."""
    return load(piece, choice(piece, impl))


def describe(impl: str | None = None) -> str:
    """One line: whose code each piece runs, e.g.
    "token_bucket: yours · rate_limit, stock, producer, consumer: reference"."""
    impl = impl or current()
    if impl == "solutions":
        return "all pieces: reference (solutions/)"
    if impl != "labs":
        return f"all pieces: {impl}"
    yours = [p for p in PIECES if choice(p, impl) == "labs"]
    ours = [p for p in PIECES if p not in yours]
    parts = []
    if yours:
        parts.append(f"{', '.join(yours)}: yours (labs/)")
    if ours:
        parts.append(f"{', '.join(ours)}: reference (solutions/)")
    return " · ".join(parts)
