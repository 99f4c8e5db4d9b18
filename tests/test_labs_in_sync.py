"""labs/ is what tools/make_labs.py generates from solutions/, with the same interface.

A developer test: it fails when someone edited solutions/ and forgot to run
`python tools/make_labs.py` (or edited labs/ by hand).
"""

import ast
import importlib
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(path.stem for path in (ROOT / "solutions").glob("*.py") if path.stem != "__init__")
DEAD_URL_PORT = 9  # nothing listens there; the stubs must raise before any I/O


def load_make_labs():
    spec = importlib.util.spec_from_file_location("make_labs", ROOT / "tools" / "make_labs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labs_are_generated_from_solutions():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_labs.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_solution_module_has_a_lab():
    labs = sorted(path.stem for path in (ROOT / "labs").glob("*.py") if path.stem != "__init__")
    assert labs == MODULES
    assert MODULES  # the glob found something


def public_interface(module) -> dict[str, str]:
    """{'Class.method': 'signature'} for everything a module defines (not imports) and exposes."""

    def signature(obj) -> str:  # "-> labs.stock.Reservation" and "-> solutions.stock.Reservation" match
        return str(inspect.signature(obj)).replace(f"{module.__name__}.", "")

    interface = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            interface[name] = signature(obj)
        elif inspect.isclass(obj):
            interface[name] = signature(obj) if not issubclass(obj, BaseException) else "exception"
            for attr, member in vars(obj).items():
                public = not attr.startswith("_") or attr in ("__init__", "__enter__", "__exit__", "__call__")
                if public and inspect.isfunction(member):
                    interface[f"{name}.{attr}"] = signature(member)
                elif public and isinstance(member, property):
                    interface[f"{name}.{attr}"] = "property"
    return interface


@pytest.mark.parametrize("name", MODULES)
def test_lab_has_the_same_interface(name):
    solution = importlib.import_module(f"solutions.{name}")
    lab = importlib.import_module(f"labs.{name}")
    expected = public_interface(solution)
    assert expected, f"solutions.{name} exposes nothing?"
    assert public_interface(lab) == expected
    assert lab.NOTEBOOK == solution.NOTEBOOK


def lab_stubs() -> dict[str, str]:
    """{'Class.method': notebook} for every stub the generator wrote into labs/."""
    stubs = {}
    for name in MODULES:
        source = (ROOT / "labs" / f"{name}.py").read_text(encoding="utf-8")
        notebook = importlib.import_module(f"labs.{name}").NOTEBOOK
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Raise) and "NotImplementedError" in ast.unparse(node):
                message = ast.unparse(node)
                assert notebook in message, f"labs/{name}.py: {message} does not name {notebook}"
                assert f" in labs/{name}.py is not written yet" in message, message
                stubs[message.split("NotImplementedError(")[1].strip("'\"").split(" ")[0]] = notebook
    return stubs


ORDER = {"order_id": "o-1", "user_id": "u-1", "product_id": 1, "created_at": "2024-11-11T00:00:00+00:00"}


def stub_calls():
    """{'Class.method': (lab module, call)}: one call per stub, on lab objects that never reach a server."""
    from labs import consumer, producer, rate_limit, stock, token_bucket

    dead_redis = redis.Redis(port=DEAD_URL_PORT)  # connects lazily: never, here
    amqp = f"amqp://guest:guest@127.0.0.1:{DEAD_URL_PORT}/%2F"
    pg = f"postgresql://nobody@127.0.0.1:{DEAD_URL_PORT}/none"
    limiter = rate_limit.RedisRateLimiter(dead_redis, limit=1, window_s=1)
    cache = stock.StockCache(dead_redis)
    order_producer = producer.OrderProducer(amqp)
    order_consumer = consumer.OrderConsumer(amqp, pg)
    return {
        "TokenBucket.allow_request": (token_bucket, lambda: token_bucket.TokenBucket(1, 1).allow_request()),
        "RedisRateLimiter.allow": (rate_limit, lambda: limiter.allow("k")),
        "RedisRateLimiter.retry_after": (rate_limit, lambda: limiter.retry_after("k")),
        "LayeredLimiter.check": (rate_limit, lambda: rate_limit.LayeredLimiter(dead_redis).check("u", "10.0.0.1")),
        "StockCache.try_reserve": (stock, lambda: cache.try_reserve(1)),
        "StockCache.reserve_once": (stock, lambda: cache.reserve_once(1, "u")),
        "StockCache.release": (stock, lambda: cache.release(1, "u")),
        "OrderProducer._open_channel": (producer, lambda: order_producer._open_channel()),
        "OrderProducer.send_order": (producer, lambda: order_producer.send_order(ORDER)),
        "OrderConsumer.handle": (consumer, lambda: order_consumer.handle(ORDER)),
        # Not a stub itself: the lab's version loops over handle().
        "OrderConsumer.handle_batch": (consumer, lambda: order_consumer.handle_batch([ORDER])),
        "OrderConsumer._write_then_ack": (consumer, lambda: order_consumer._write_then_ack(None, [(1, ORDER)])),
    }


def test_every_stub_raises_not_implemented_naming_its_notebook():
    calls = stub_calls()
    assert set(lab_stubs()) <= set(calls), "add a call for each new stub to stub_calls()"
    for name, (module, call) in calls.items():
        with pytest.raises(NotImplementedError) as caught:
            call()
        assert module.NOTEBOOK in str(caught.value), name


# -- the generator itself ------------------------------------------------------

SAMPLE = '''"""A module."""
NOTEBOOK = "notebooks/99_sample.ipynb"

# BEGIN SOLUTION
# LAB: SCRIPT = "write me"
SCRIPT = "the answer"
# END SOLUTION


class Thing:
    def work(self, x: int) -> int:
        """Doc stays."""
        # BEGIN SOLUTION
        return x * 2
        # END SOLUTION

    def start(self) -> list:
        # BEGIN SOLUTION
        # LAB: return []
        return [1, 2]
        # END SOLUTION
'''

SAMPLE_LAB_BODY = '''"""A module."""
NOTEBOOK = "notebooks/99_sample.ipynb"

SCRIPT = "write me"


class Thing:
    def work(self, x: int) -> int:
        """Doc stays."""
        raise NotImplementedError("Thing.work in labs/sample.py is not written yet — see notebooks/99_sample.ipynb")

    def start(self) -> list:
        return []
'''


def test_generator_replaces_blocks():
    make_labs = load_make_labs()
    lab = make_labs.make_lab(SAMPLE, "sample.py")
    assert lab.startswith("# Your workspace. Generated from solutions/sample.py by tools/make_labs.py;")
    assert lab.split('"""A module."""', 1)[1] == SAMPLE_LAB_BODY.split('"""A module."""', 1)[1]


@pytest.mark.parametrize(
    "source",
    [
        'NOTEBOOK = "n"\n# BEGIN SOLUTION\nX = 1\n# END SOLUTION\n',  # module level, no LAB lines
        'NOTEBOOK = "n"\ndef f():\n    # BEGIN SOLUTION\n    return 1\n',  # never ended
        'NOTEBOOK = "n"\ndef f():\n    # END SOLUTION\n    return 1\n',  # never begun
        "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",  # no NOTEBOOK
    ],
)
def test_generator_refuses_broken_markers(source):
    make_labs = load_make_labs()
    with pytest.raises(make_labs.MarkerError):
        make_labs.make_lab(source, "broken.py")
