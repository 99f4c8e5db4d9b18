"""One script for the limits and the reservation (one_script.py) answers as the separate path does.

The same seeded sequence of buys goes to the separate path (AsyncLayeredLimiter.check, then
AsyncStock.reserve_once: three scripts) and to AsyncOneScript (one script), each on its own keys in the
real Redis, and every answer is compared call by call: user limited, IP limited with its retry-after,
sold out, already bought, reserved. After every call the stock and the buyers must be the same on both
sides, so a limited request that reserved shows at once. The wrong versions each test must catch are in
WRONG below, and the tests of the tests run them.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import urllib.error
import urllib.request

import pytest
import redis.asyncio as aioredis

from seckill.config import Limits
from seckill.system import impl, one_script, tiers
from seckill.system.autopipeline import AutoPipelineRedis
from seckill.system.gateway_async import AsyncLayeredLimiter, AsyncStock
from seckill.system.local_stock import AsyncLocalStock
from seckill.system.one_script import AsyncLocalOneScript, AsyncOneScript, combined_source

RATE_LIMIT = impl.load("rate_limit", "solutions")
STOCK = impl.load("stock", "solutions")
LIMITS = Limits(user_limit=3, ip_limit=9, window_s=60)  # a window no run outlasts: retry-after stays comparable
STOCKS = {1: 3, 2: 40}  # product: items (1 sells out; 2 cannot: the IPs allow 36 buys a window)
STEPS = 150


def _wrong(name: str, replacements: list[tuple[str, str]]):
    """A class maker: AsyncOneScript (or a subclass) whose script has ONE mistake (a text replacement)."""
    def source(fixed_window_lua, reserve_once_lua=None):
        text = combined_source(fixed_window_lua, reserve_once_lua)
        for right, wrong in replacements:
            if reserve_once_lua is None and "reserve_once" in right + wrong:
                continue  # the limits-only script (local-stock, no unit held) has no reserve_once to misplace
            assert right in text, f"{name}: {right!r} is no longer in the script"
            text = text.replace(right, wrong)
        return text
    return lambda base=AsyncOneScript: type(name, (base,), {"source": staticmethod(source)})


class KeepsTheUnitWhenLimited(AsyncLocalOneScript):
    """Wrong (local-stock): the unit taken from ``held`` before the script is not given back when limited."""

    async def limit_and_reserve(self, product_id, user_id, client_ip):
        held = self.stock._product(product_id).held
        verdict, outcome = await super().limit_and_reserve(product_id, user_id, client_ip)
        if not verdict.allowed and held > 0:
            self.stock._product(product_id).held -= 1
        return verdict, outcome


RESERVE = "reserve_once({unpack(KEYS, 3)}, {unpack(ARGV, 4)})"
WRONG = {
    "reserves before checking the limits": _wrong("ReserveFirst", [
        ("for layer = 1, 2 do", f"local reserved = {RESERVE}\nfor layer = 1, 2 do"),
        (f"return {{0, {RESERVE}}}", "return {0, reserved}")]),
    "checks the IP before the user": _wrong("IpFirst", [("for layer = 1, 2 do", "for _, layer in ipairs({2, 1}) do")]),
    "ignores the IP layer": _wrong("NoIpLayer", [("for layer = 1, 2 do", "for layer = 1, 1 do")]),
    "blocks at the limit, not above it": _wrong("OffByOne", [("if count > tonumber", "if count >= tonumber")]),
}
WRONG_LOCAL = {**{name: make(AsyncLocalOneScript) for name, make in WRONG.items()},
               "keeps the unit when limited": KeepsTheUnitWhenLimited}
WRONG = {name: make() for name, make in WRONG.items()}

# The learner may return the count as a string: the script hands it to Python, which judges it as the
# separate path's int() does (the fallback branch of AsyncOneScript.limit_and_reserve).
STRING_COUNT = RATE_LIMIT.FIXED_WINDOW_LUA.replace("return count", "return tostring(count)")


class Counting(AutoPipelineRedis):
    """The gateway's client, counting the commands asked for."""

    commands = 0

    async def execute_command(self, *args, **options):
        type(self).commands += 1
        return await super().execute_command(*args, **options)


def _client(url: str, cls=Counting):
    return cls.from_url(url, decode_responses=False, socket_connect_timeout=1, socket_timeout=10,
                        max_connections=64)


def _paths(r, cls=None, fixed_window=RATE_LIMIT.FIXED_WINDOW_LUA, mode="reserve", rate_limit=RATE_LIMIT, stock=STOCK):
    """(separate, combined): each an async (product, user, ip) -> (verdict, outcome), on keys of its own.

    mode: "reserve" (tier fastapi: reserve_once in the script), "limits-only" (the script holds the layers,
    AsyncStock.reserve_once follows), "local" (tier local-stock: AsyncLocalOneScript, leases of 2 units).
    """
    rate_limit = type("rl", (), {"FIXED_WINDOW_LUA": fixed_window, "LimitVerdict": rate_limit.LimitVerdict})
    a_limiter = AsyncLayeredLimiter(r, rate_limit, LIMITS, prefix="rlA")
    local = mode == "local"
    a_stock = AsyncLocalStock(r, slice_size=2, instance="A") if local else AsyncStock(r, stock)

    async def separate(product_id, user_id, ip):
        verdict = await a_limiter.check(user_id, ip)
        if not verdict.allowed:
            return verdict, None
        return verdict, await a_stock.reserve_once(product_id + 100, user_id)

    b_limiter = AsyncLayeredLimiter(r, rate_limit, LIMITS, prefix="rlB")
    if local:
        b = (cls or AsyncLocalOneScript)(r, b_limiter, AsyncLocalStock(r, slice_size=2, instance="B"), fixed_window)
    else:
        b = (cls or AsyncOneScript)(r, b_limiter, AsyncStock(r, stock), fixed_window,
                                    stock.RESERVE_ONCE_LUA if mode == "reserve" else None)

    async def combined(product_id, user_id, ip):
        return await b.limit_and_reserve(product_id + 200, user_id, ip)
    return separate, combined


async def _state(r, side: int) -> dict:
    out = {}
    for product in STOCKS:
        out[product] = (await r.get(f"stock:{product + side}"), sorted(await r.smembers(f"buyers:{product + side}")),
                        sorted(await r.hvals(f"leases:{product + side}")))  # local-stock: units leased
    return out


def _kind(verdict, outcome) -> str:
    return f"limited:{verdict.layer}" if not verdict.allowed else str(outcome)


async def _compare(url: str, seed: int, **paths) -> tuple[list, set]:
    """Mismatches (step, what, separate, combined) over one seeded sequence, and the kinds of answer seen."""
    r = _client(url)
    for pattern in ("rlA:*", "rlB:*", "stock:[12]0[0-9]", "buyers:[12]0[0-9]", "lease*:[12]0[0-9]*"):
        async for key in r.scan_iter(pattern):
            await r.delete(key)
    for product, items in STOCKS.items():
        for side in (100, 200):
            await r.set(f"stock:{product + side}", items)
    separate, combined = _paths(r, **paths)
    rng = random.Random(seed)
    users, ips = [f"u{i}" for i in range(16)], [f"10.0.0.{i}" for i in range(4)]
    wrong, kinds = [], set()
    try:
        for step in range(STEPS):
            call = (rng.choice(list(STOCKS)), rng.choice(users), rng.choice(ips))
            (va, oa), (vb, ob) = await separate(*call), await combined(*call)
            kinds.add(_kind(va, oa))
            if (va.allowed, va.layer, oa) != (vb.allowed, vb.layer, ob):
                wrong.append((step, call, _kind(va, oa), _kind(vb, ob)))
            elif not va.allowed and not (0 < vb.retry_after <= LIMITS.window_s
                                         and abs(va.retry_after - vb.retry_after) < 1.0):
                wrong.append((step, call, f"retry after {va.retry_after}", f"retry after {vb.retry_after}"))
            if await _state(r, 100) != await _state(r, 200):
                wrong.append((step, call, "stock and buyers", "differ"))
    finally:
        await r.aclose()
    return wrong, kinds


EVERY_KIND = {"limited:user", "limited:ip", "ok", "sold_out", "already_bought"}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["reserve", "limits-only", "local"])
def test_same_answers_as_the_separate_path(stack_urls, seed, mode):
    wrong, kinds = asyncio.run(_compare(stack_urls["redis"], seed, mode=mode))
    assert wrong == []
    assert kinds == EVERY_KIND, f"the sequence missed {EVERY_KIND - kinds}: it proves less than it says"


@pytest.mark.parametrize("seed", range(2))
def test_a_count_returned_as_a_string_is_judged_as_the_separate_path_judges_it(stack_urls, seed):
    wrong, kinds = asyncio.run(_compare(stack_urls["redis"], seed, fixed_window=STRING_COUNT))
    assert wrong == [] and kinds == EVERY_KIND


@pytest.mark.parametrize("mode, mistake", [("reserve", m) for m in WRONG] + [("local", m) for m in WRONG_LOCAL])
def test_the_test_catches_each_wrong_script(stack_urls, mode, mistake):
    cls = (WRONG if mode == "reserve" else WRONG_LOCAL)[mistake]
    caught = [asyncio.run(_compare(stack_urls["redis"], seed, cls=cls, mode=mode))[0] != [] for seed in range(6)]
    assert all(caught), f"'{mistake}' passed seeds {[s for s, c in enumerate(caught) if not c]}"


def _limited_run(url: str, cls) -> tuple[list, int, int]:
    """One greedy user (3 allowed, 3 over), then 9 bots on its IP (6 allowed, 3 over the IP's 9)."""
    async def run():
        r = _client(url)
        async for key in r.scan_iter("rlB:*"):
            await r.delete(key)
        await r.delete("buyers:201")
        await r.set("stock:201", 100)
        _, combined = _paths(r, cls=cls)
        got = [await combined(1, "greedy", "10.9.9.9") for _ in range(6)]
        got += [await combined(1, f"bot{i}", "10.9.9.9") for i in range(9)]
        stock, buyers = await r.get("stock:201"), await r.smembers("buyers:201")
        await r.aclose()
        return [v.layer for v, outcome in got if not v.allowed], int(stock), len(buyers)
    return asyncio.run(run())


def test_a_limited_request_never_reserves(stack_urls):
    assert _limited_run(stack_urls["redis"], AsyncOneScript) == (["user"] * 3 + ["ip"] * 3, 100 - 7, 7)
    wrong = _limited_run(stack_urls["redis"], WRONG["reserves before checking the limits"])  # the test's test
    assert wrong != (["user"] * 3 + ["ip"] * 3, 100 - 7, 7)


def test_one_command_per_buy(stack_urls, redis_client):
    """The point of it: one command per buy (the separate path, three, is the test's own check)."""
    async def per_buy(reserves: bool, one: bool) -> float:
        r = _client(stack_urls["redis"])
        await r.set("stock:101", 1000)
        await r.set("stock:201", 1000)
        separate, combined = _paths(r, mode="reserve" if reserves else "limits-only")
        buy = combined if one else separate
        await buy(1, "warm", "10.1.1.1")  # loads the scripts (NOSCRIPT, SCRIPT LOAD)
        Counting.commands = 0
        for i in range(5):
            await buy(1, f"u{i}", f"10.1.1.{i}")
        await r.aclose()
        return Counting.commands / 5
    assert asyncio.run(per_buy(True, True)) == 1
    assert asyncio.run(per_buy(False, True)) == 2  # the two layers in one script, then reserve_once
    assert asyncio.run(per_buy(True, False)) == 3


def test_the_learners_stub_scripts_fail_the_same_way(stack_urls, redis_client):
    """labs/ skeletons: FIXED_WINDOW_LUA returns nothing, so both paths raise int(None)'s TypeError."""
    labs_rl, labs_stock = impl.load("rate_limit", "labs"), impl.load("stock", "labs")

    async def run(fixed_window):
        r = _client(stack_urls["redis"])
        await r.set("stock:101", 10)
        await r.set("stock:201", 10)
        separate, combined = _paths(r, fixed_window=fixed_window, rate_limit=labs_rl, stock=labs_stock)
        out = []
        for buy in (separate, combined):
            try:
                out.append(await buy(1, "u1", "10.2.2.2"))
            except Exception as exc:
                out.append(repr(exc))
        out.append((await r.get("stock:101"), await r.get("stock:201")))
        await r.aclose()
        return out
    a, b, stocks = asyncio.run(run(labs_rl.FIXED_WINDOW_LUA))
    assert a == b and a.startswith("TypeError(") and stocks == (b"10", b"10"), (a, b, stocks)
    # the learner's limit written, reserve_once still the stub: both see its nil
    a, b, stocks = asyncio.run(run(RATE_LIMIT.FIXED_WINDOW_LUA))
    assert a[1] is None and b[1] is None and a[0].allowed and b[0].allowed and stocks == (b"10", b"10")


def test_every_script_of_the_course_is_a_valid_function_body(redis_client):
    """SCRIPT LOAD compiles the combined script from the solutions' and the labs' sources."""
    for piece in ("solutions", "labs"):
        rl, st = impl.load("rate_limit", piece), impl.load("stock", piece)
        for source in (combined_source(rl.FIXED_WINDOW_LUA, st.RESERVE_ONCE_LUA), combined_source(rl.FIXED_WINDOW_LUA)):
            assert len(redis_client.script_load(source)) == 40


def test_the_switch(monkeypatch):
    monkeypatch.delenv(one_script.ENV, raising=False)
    assert one_script.enabled()  # on by default: measured faster (one_script.py says by how much)
    for off in ("0", "off", "false", "no"):
        monkeypatch.setenv(one_script.ENV, off)
        assert not one_script.enabled()
    monkeypatch.setenv(one_script.ENV, "1")
    assert one_script.enabled()


def test_plain_client_too(stack_urls):
    """Without auto-pipelining (SECKILL_REDIS_AUTOPIPELINE=0) the answers are the same."""
    async def run():
        r = _client(stack_urls["redis"], cls=aioredis.Redis)
        await r.set("stock:101", 3)
        await r.set("stock:201", 3)
        separate, combined = _paths(r)
        got = []
        for user in ("a", "b", "a", "c", "d"):
            got.append([_kind(*await buy(1, user, "10.3.3.3")) for buy in (separate, combined)])
        await r.aclose()
        return got
    got = asyncio.run(run())
    assert all(a == b for a, b in got) and [a for a, _ in got] == ["ok", "ok", "already_bought", "ok", "sold_out"]


# -- the tiers, switched on -----------------------------------------------------------------------------

TIER_LIMITS = {"bucket_capacity": 100_000.0, "bucket_rate": 100_000.0, "user_limit": 2, "ip_limit": 5}
# (user, client IP) in order: bought, already bought, user over 2, bought, bought (the last of 3), sold out,
# the IP's 6th counted request, a sold-out answer on another IP
TIER_CALLS = [("a", "10.7.0.1"), ("a", "10.7.0.1"), ("a", "10.7.0.1"), ("b", "10.7.0.1"), ("c", "10.7.0.1"),
              ("d", "10.7.0.1"), ("g", "10.7.0.1"), ("e", "10.7.0.2")]


def _post(base_url: str, product_id: int, user: str, ip: str) -> tuple[int, str, str | None]:
    request = urllib.request.Request(f"{base_url}/api/seckill/{product_id}", data=json.dumps({"user_id": user}).encode(),
                                     headers={"Content-Type": "application/json", "X-Forwarded-For": ip})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, "ok", None
    except urllib.error.HTTPError as err:
        body = json.loads(err.read())
        return err.code, body.get("layer") or body.get("error"), err.headers.get("Retry-After")


def _evalsha_calls(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize("name", ["fastapi", "local-stock"])
def test_the_tier_answers_the_same_with_one_script_and_sends_one_script_per_buy(s, stack_urls, redis_client, name):
    from seckill.system.sale import create_sale

    got, scripts = {}, {}
    for flag in ("0", "1"):
        state = tiers.up(name, limits=TIER_LIMITS, out=None, extra_env={one_script.ENV: flag}, load_test=True)
        try:
            # local-stock: each worker leases its own slice, so a sold-out answer depends on the worker a
            # request lands on; there the stock is ample (its sold-out flag is test_local_stock's)
            create_sale(s, 601, 3 if name == "fastapi" else 100, force=True)
            create_sale(s, 602, 100, force=True)
            for key in redis_client.scan_iter("rl:*"):  # the other run's counters
                redis_client.delete(key)
            _post(state["base_url"], 602, "warm-up", "10.7.9.9")  # loads the script(s) into Redis
            redis_client.config_resetstat()
            got[flag] = [_post(state["base_url"], 601, user, ip) for user, ip in TIER_CALLS]
            scripts[flag] = _evalsha_calls(redis_client)
        finally:
            tiers.down(out=None)
    assert got["1"] == got["0"], got
    expected = [(200, "ok", None), (409, "already_bought", None), (429, "user", "10"), (200, "ok", None),
                (200, "ok", None), (409, "sold_out", None), (429, "ip", "10"), (409, "sold_out", None)]
    if name == "local-stock":
        expected[4:6] = [(200, "ok", None)] * 2
        expected[7] = (200, "ok", None)
    assert [(status, what) for status, what, _ in got["1"]] == [(status, what) for status, what, _ in expected]
    assert all(after is None or 0 < int(after) <= 10 for _, _, after in got["1"])
    if name == "fastapi":  # one script per request, where the separate path runs up to three
        assert scripts["1"] == len(TIER_CALLS) < scripts["0"], scripts
    else:  # one script per request, plus, per worker, its first buy's slice: limits, lease, claim
        assert scripts["1"] <= len(TIER_CALLS) + 2 * 2 < scripts["0"], scripts


def test_a_lua_error_in_the_learners_script_names_its_own_line(stack_urls, redis_client):
    """A runtime error at line 3 of reserve_once says user_script:3 on both paths (not its line in the one script)."""
    broken = type("stock", (), {"RELEASE_LUA": STOCK.RELEASE_LUA, "RESERVE_ONCE_LUA": STOCK.RESERVE_ONCE_LUA.replace(
        "if redis.call('SISMEMBER'", "if no_such_table.x == 1 then return 'x' end\nif redis.call('SISMEMBER'")})

    async def run():
        r = _client(stack_urls["redis"])
        separate, combined = _paths(r, stock=broken)
        out = []
        for buy in (separate, combined):
            try:
                await buy(1, "u1", "10.4.4.4")
                out.append("no error")
            except Exception as exc:
                out.append((type(exc).__name__, re.sub(r"script: \w+, ", "", str(exc))))
        await r.aclose()
        return out
    a, b = asyncio.run(run())
    assert a == b and "user_script:3:" in a[1] and "no_such_table" in a[1], (a, b)
