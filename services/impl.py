"""Which implementation of the teachable pieces the services run: yours or ours.

``SECKILL_IMPL=solutions`` (the default) runs the reference in solutions/;
``SECKILL_IMPL=labs`` runs the learner's code in labs/, so their own token
bucket and Lua script face the load test. A path to a folder holding the same
modules works too (graders use it to try other implementations).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .errors import SeckillError

PIECES = ("token_bucket", "rate_limit", "stock", "producer", "consumer")


class ImplError(SeckillError):
    """SECKILL_IMPL names something we cannot import; the message says what to use."""


def current() -> str:
    return os.environ.get("SECKILL_IMPL", "solutions") or "solutions"


def learner() -> str:
    """The implementation a learner's notebook and the graders use by default: their own."""
    return os.environ.get("SECKILL_IMPL") or "labs"


def load(piece: str, impl: str | None = None) -> ModuleType:
    """Import ``piece`` (e.g. "stock") from the chosen implementation."""
    if piece not in PIECES:
        raise ImplError(f"unknown piece {piece!r}; the pieces are {', '.join(PIECES)}")
    impl = impl or current()
    if impl in ("solutions", "labs"):
        return importlib.import_module(f"{impl}.{piece}")
    folder = Path(impl).expanduser().resolve()
    path = folder / f"{piece}.py"
    if not path.is_file():
        raise ImplError(f"SECKILL_IMPL={impl!r}: use 'solutions', 'labs' or a folder holding {piece}.py")
    name = f"_seckill_impl_{abs(hash(str(folder)))}_{piece}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
