"""One Redis round trip per buy: the user limit, the IP limit and reserve_once in one script.

Why: the async gateway's buy awaits three scripts in sequence — the user
layer's fixed-window count, the IP layer's, then reserve_once. Auto-pipelining
(autopipeline.py) lets many buyers share each round trip, but every buyer
still waits three times and pays redis-py's per-command cost three times. Sent
as one script, a buy waits once and costs one command.

The script is built FROM the implementation's own scripts, so the lab
interface does not change and a learner's mistake still shows: each source
becomes the body of a Lua local function whose parameters are named ``KEYS``
and ``ARGV`` (shadowing Redis's globals), and a few lines after them call the
user layer, then the IP layer, then — only when both allow — reserve_once::

    local function fixed_window(KEYS, ARGV, ...)  <FIXED_WINDOW_LUA>  end
    local function reserve_once(KEYS, ARGV, ...)  <RESERVE_ONCE_LUA>  end
    for layer = 1, 2 do ... fixed_window({KEYS[layer]}, {ARGV[1]}) ... end
    return {0, reserve_once({unpack(KEYS, 3)}, {unpack(ARGV, 4)})}

A chunk is a valid function body (a ``return`` at its end returns from the
function), and the ``...`` keeps a chunk that reads its varargs valid.

The answers are exactly those of the separate path (AsyncLayeredLimiter.check,
then reserve_once): same order, same verdict, retry-after from the layer's
PTTL, and a limited request never reserves. When a layer's count is not a Lua
number (a stub returns nothing; a script may return a string), the script stops
right after that count and hands it to Python, which judges it as the separate
path does (``int(count)``: the same TypeError for a stub) and, when it passes,
finishes the buy with the separate scripts.

Tier local-stock sells from its own lease (local_stock.AsyncLocalStock), not
with reserve_once: there the reservation is the lease's claim (CLAIM_LUA, the
course's own script), wrapped the same way (:class:`AsyncLocalOneScript`).
While the instance holds units the buy is one script; when it holds none, the
script holds the two limit layers only and the stock leases a slice as before.

On by default; ``SECKILL_ONE_SCRIPT=0`` turns it off (:func:`enabled`). The
bench's ``--speedups`` measures it off and on in one run (name ``one-script``).
Measured on this course's 2-core machine, shared with other work (load 3-5),
5 rounds of 4 s of wrk each, medians: tier fastapi sold 292 → 381 items/s
(×1.31), local-stock 309 → 355 (×1.15); the gateway's CPU per item fell from
2.16 to 1.86 ms and from 2.16 to 1.88 ms. The limits-and-reservation step
alone, in one process at 64 buyers: 155 → 77 µs of CPU per buy.
"""

from __future__ import annotations

import re

import redis as redis_lib

from seckill.config import on_unless_off

ENV = "SECKILL_ONE_SCRIPT"

_FUNCTION = "local function {name}(KEYS, ARGV, ...)\n{body}\nend\n"

_LIMITS = """
-- KEYS[1] the user's counter, KEYS[2] the IP's; ARGV[1] window ms, ARGV[2] user limit, ARGV[3] IP limit
for layer = 1, 2 do
    local count = fixed_window({KEYS[layer]}, {ARGV[1]})
    if type(count) ~= 'number' then
        return {-layer, count}  -- not a number: Python judges it (nil truncates the table to {-layer})
    end
    -- Redis hands a Lua number to Python truncated toward zero; judge the same value
    if count >= 0 then count = math.floor(count) else count = math.ceil(count) end
    if count > tonumber(ARGV[1 + layer]) then
        return {layer, redis.call('PTTL', KEYS[layer])}
    end
end
"""

_RESERVE = """
-- both layers allow: reserve_once gets the keys from KEYS[3] on, the arguments from ARGV[4] on
return {0, reserve_once({unpack(KEYS, 3)}, {unpack(ARGV, 4)})}
"""


def enabled() -> bool:
    """On unless ``SECKILL_ONE_SCRIPT`` is 0/false/off/no (the bench's A/B switch)."""
    return on_unless_off(ENV)


def combined_source(fixed_window_lua: str, reserve_once_lua: str | None = None) -> str:
    """The one script: both limit layers, then (when given) reserve_once, from the scripts' own sources.

    Replies: ``{0, reserve_once's reply}`` (both layers allow; ``{0}`` without
    reserve_once or when it returned nil), ``{layer, pttl_ms}`` (layer 1 user,
    2 IP, over its limit: nothing reserved), ``{-layer, count}`` (that layer's
    count is not a number; the layers after it and reserve_once did not run).
    """
    source = _FUNCTION.format(name="fixed_window", body=fixed_window_lua)
    if reserve_once_lua is not None:
        source += _FUNCTION.format(name="reserve_once", body=reserve_once_lua)
    return source + _LIMITS + (_RESERVE if reserve_once_lua is not None else "return {0}\n")


def wrapped_lines(fixed_window_lua: str, reserve_once_lua: str | None = None) -> list[tuple[int, int]]:
    """(first line, last line) of each wrapped source in :func:`combined_source`'s text, in order."""
    spans, line = [], 1
    for body in (fixed_window_lua, reserve_once_lua):
        if body is None:
            continue
        lines = _FUNCTION.format(name="f", body=body).count("\n")  # the header, the body's lines, "end"
        spans.append((line + 1, line + lines - 2))
        line += lines
    return spans


_LINE = re.compile(r"user_script:(\d+)")


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


class AsyncOneScript:
    """``limit_and_reserve``: AsyncLayeredLimiter.check then stock.reserve_once, in one round trip.

    ``limiter`` is the gateway's AsyncLayeredLimiter (its layers, window and
    key prefix; its separate scripts finish a buy whose count was not a number).
    With ``reserve_once_lua`` (the implementation's, for AsyncStock) the
    reservation runs in the same script; without it the script holds the two
    layers and ``stock.reserve_once`` follows (AsyncLocalOneScript does that
    when its instance holds no unit).
    """

    source = staticmethod(combined_source)  # (the tests' wrong versions replace it)

    def __init__(self, redis, limiter, stock, fixed_window_lua: str, reserve_once_lua: str | None = None):
        self.limiter = limiter
        self.stock = stock
        self.reserves = reserve_once_lua is not None
        self._script = redis.register_script(self.source(fixed_window_lua, reserve_once_lua))
        self._spans = wrapped_lines(fixed_window_lua, reserve_once_lua)
        (_, self.user_limit), (_, self.ip_limit) = limiter.layers

    async def _run(self, script, spans: list[tuple[int, int]], keys: list, args: list):
        """Run one of our scripts; a Lua error names the line of the learner's own script, as it would alone.

        Inside the one script the learner's line 3 is line 3 plus the lines
        above it; the message is rewritten so it says ``user_script:3``, as
        the separate path's does.
        """
        try:
            return await script(keys=keys, args=args)
        except redis_lib.ResponseError as exc:
            def own_line(match: re.Match) -> str:
                line = int(match.group(1))
                for first, last in spans:
                    if first <= line <= last:
                        return f"user_script:{line - first + 1}"
                return match.group(0)
            message = _LINE.sub(own_line, str(exc))
            if message == str(exc):
                raise
            raise type(exc)(message) from exc

    def _limit_keys_args(self, user_id: str, client_ip: str) -> tuple[list, list]:
        prefix = self.limiter.prefix
        return ([f"{prefix}:user:{user_id}", f"{prefix}:ip:{client_ip}"],
                [self.limiter.window_ms, self.user_limit, self.ip_limit])

    async def limit_and_reserve(self, product_id: int, user_id: str, client_ip: str):
        """(verdict, reserve_once's outcome); the outcome is None when a layer said no (nothing reserved).

        Raises what the separate path raises (redis errors; TypeError/ValueError
        from ``int()`` of a count that is not an integer).
        """
        keys, args = self._limit_keys_args(user_id, client_ip)
        if self.reserves:
            keys += [f"stock:{product_id}", f"buyers:{product_id}"]
            args.append(user_id)
        return await self._answer(await self._run(self._script, self._spans, keys, args), keys, product_id, user_id, client_ip)

    async def _answer(self, reply, keys: list, product_id: int, user_id: str, client_ip: str):
        """The script's reply as (verdict, outcome); see :func:`combined_source` for its shapes."""
        code = int(reply[0])
        verdict = self.limiter.verdict
        if code > 0:  # a layer over its limit
            ttl_ms = int(reply[1])
            return verdict(False, self.limiter.layers[code - 1][0], ttl_ms / 1000 if ttl_ms > 0 else 0.0), None
        if code < 0:  # layer -code counted, but not a number: judge it in Python, as the separate path does
            layer = -code - 1
            name, limit = self.limiter.layers[layer]
            if int(reply[1] if len(reply) > 1 else None) > limit:
                ttl_ms = await self.limiter.redis.pttl(keys[layer])
                return verdict(False, name, ttl_ms / 1000 if ttl_ms > 0 else 0.0), None
            passed = await self.limiter.check(user_id, client_ip, first=layer + 1)
            if not passed.allowed:
                return passed, None
            return passed, await self.stock.reserve_once(product_id, user_id)
        allowed = verdict(True, None, 0.0)
        if not self.reserves:
            return allowed, await self.stock.reserve_once(product_id, user_id)
        return allowed, _text(reply[1] if len(reply) > 1 else None)


class AsyncLocalOneScript(AsyncOneScript):
    """Tier local-stock: the two limit layers and the lease's claim in one script.

    ``stock`` is the process's local_stock.AsyncLocalStock. Its reserve_once
    claims a unit of this instance's lease (CLAIM_LUA) when the instance holds
    one, else leases a slice first. Here a buy the instance holds a unit for is
    one script — limits, then the claim — with the stock's own bookkeeping
    around it (the unit taken from ``held`` before the await, given back when a
    layer says no or the user already bought); any other buy takes the base
    path: the limits in one script, then ``stock.reserve_once``.
    """

    def __init__(self, redis, limiter, stock, fixed_window_lua: str):
        from seckill.system.local_stock import CLAIM_LUA, leases_key

        super().__init__(redis, limiter, stock, fixed_window_lua)
        self._leases_key = leases_key
        self._with_claim = redis.register_script(self.source(fixed_window_lua, CLAIM_LUA))
        self._claim_spans = wrapped_lines(fixed_window_lua, CLAIM_LUA)

    async def limit_and_reserve(self, product_id: int, user_id: str, client_ip: str):
        state = self.stock._product(product_id)  # the stock's own per-product state (one event loop: no lock)
        if state.held <= 0:  # a slice to lease first, or sold out: as before
            return await super().limit_and_reserve(product_id, user_id, client_ip)
        state.held -= 1  # taken before the await, as reserve_once does
        keys, args = self._limit_keys_args(user_id, client_ip)
        keys += [f"buyers:{product_id}", self._leases_key(product_id)]
        args += [user_id, self.stock.instance]
        reply = await self._run(self._with_claim, self._claim_spans, keys, args)
        if int(reply[0]) != 0:  # a layer said no (or judged in Python): the unit is ours again
            state.held += 1
            return await self._answer(reply, keys, product_id, user_id, client_ip)
        allowed = self.limiter.verdict(True, None, 0.0)
        outcome = _text(reply[1])
        if outcome == "ok":
            return allowed, "ok"
        if outcome == "already_bought":
            state.held += 1
            return allowed, "already_bought"
        state.held = 0  # 'stale': our lease is gone, so are the units we counted; reserve_once leases afresh
        return allowed, await self.stock.reserve_once(product_id, user_id)
