# Your workspace. Generated from solutions/rate_limit.py by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/rate_limit.py and regenerate, never this file.
"""Rate limits shared by every gateway process, kept in Redis.

A token bucket in one process (solutions/token_bucket.py) cannot stop a user
whose requests are spread over eight gateway workers: each worker sees an
eighth of the traffic. The count has to live in one place that all workers
share, and Redis is the natural place: one network round trip per check.

Each check must be ONE atomic step. "GET the count, compare, INCR" done as
three commands lets two workers read the same count and both let a request
through. A Lua script runs inside Redis with nothing interleaved, so the
read-compare-write cannot be split.

Two algorithms, compared in the notebook:

* Fixed window (RedisRateLimiter): one counter per key per window. Cheap (one
  integer), but a client can fire `limit` requests at the end of one window and
  `limit` more at the start of the next: up to 2 x limit in a short burst.
* Sliding window (SlidingWindowLimiter): a log of request times in a sorted
  set. Exact ("at most `limit` in any `window_s`"), but stores one entry per
  request.

LayeredLimiter stacks a per-user limit on a per-IP limit, the way a flash-sale
gateway protects itself from one greedy user and from one greedy network.
"""

import uuid
from dataclasses import dataclass

import redis as redis_lib

NOTEBOOK = "notebooks/11_rate_limits.ipynb"

FIXED_WINDOW_LUA = """
-- KEYS[1]: the counter key, ARGV[1]: the window length in milliseconds.
-- Count this request and return the count; start the window's expiry
-- when the counter is new.
"""

SLIDING_WINDOW_LUA = """
-- KEYS[1]: the log (a sorted set of request times in ms).
-- ARGV[1]: window in ms, ARGV[2]: limit, ARGV[3]: a member unique to this call.
-- The time comes from the Redis server, so all gateways share one clock.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""

SLIDING_RETRY_AFTER_LUA = """
-- Milliseconds until the oldest request in a full log leaves the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local since = now - window
if redis.call('ZCOUNT', KEYS[1], '(' .. since, '+inf') < tonumber(ARGV[2]) then
    return 0
end
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return math.max(0, tonumber(oldest[2]) + window - now)
"""


def _window_ms(window_s: float) -> int:
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    return max(1, round(window_s * 1000))


def _check_limit(limit: int) -> int:
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r}")
    return limit


class RedisRateLimiter:
    """Fixed window: at most `limit` calls of allow(key) per key per `window_s` seconds.

    The window starts at a key's first request and the key expires when the
    window ends, so idle keys clean themselves up.
    """

    def __init__(self, redis: redis_lib.Redis, limit: int, window_s: float, prefix: str = "rl") -> None:
        self.redis = redis
        self.limit = _check_limit(limit)
        self.window_s = window_s
        self.prefix = prefix
        self._window_ms = _window_ms(window_s)
        self._count_request = redis.register_script(FIXED_WINDOW_LUA)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def allow(self, key: str) -> bool:
        """Count one request for `key`; True while the window's count is within the limit."""
        raise NotImplementedError("RedisRateLimiter.allow in labs/rate_limit.py is not written yet — see notebooks/11_rate_limits.ipynb")

    def retry_after(self, key: str) -> float:
        """Seconds until `key`'s window resets (0.0 when it has no window running).

        A blocked client should be told this (HTTP Retry-After) rather than
        left to retry at once and make the storm worse.
        """
        raise NotImplementedError("RedisRateLimiter.retry_after in labs/rate_limit.py is not written yet — see notebooks/11_rate_limits.ipynb")


class SlidingWindowLimiter:
    """Sliding window: at most `limit` calls of allow(key) in ANY `window_s` seconds.

    Same interface as RedisRateLimiter, so the notebook can swap one for the
    other. Each allowed request is a sorted-set member scored by its time; a
    check drops the members older than the window and counts the rest.
    """

    def __init__(self, redis: redis_lib.Redis, limit: int, window_s: float, prefix: str = "rl") -> None:
        self.redis = redis
        self.limit = _check_limit(limit)
        self.window_s = window_s
        self.prefix = prefix
        self._window_ms = _window_ms(window_s)
        self._log_request = redis.register_script(SLIDING_WINDOW_LUA)
        self._wait_ms = redis.register_script(SLIDING_RETRY_AFTER_LUA)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def allow(self, key: str) -> bool:
        """Log one request for `key` if fewer than `limit` happened in the last window."""
        # Two requests in the same millisecond must be two members, not one:
        # a sorted set keeps each member once, so the member must be unique.
        member = uuid.uuid4().hex
        allowed = self._log_request(keys=[self._key(key)], args=[self._window_ms, self.limit, member])
        return int(allowed) == 1

    def retry_after(self, key: str) -> float:
        """Seconds until a slot frees up for `key` (0.0 when one is free now)."""
        wait_ms = self._wait_ms(keys=[self._key(key)], args=[self._window_ms, self.limit])
        return int(wait_ms) / 1000


@dataclass(frozen=True)
class LimitVerdict:
    """The answer of LayeredLimiter.check: allowed or not, which layer said no, when to retry."""

    allowed: bool
    layer: str | None  # "user" or "ip" when blocked, None when allowed
    retry_after: float  # seconds; 0.0 when allowed


class LayeredLimiter:
    """A per-user limit in front of a per-IP limit.

    The user layer is checked first, and the IP layer only when the user
    passed. Order matters: a user blocked for their own excess must not also
    use up the budget of the IP they share with others (an office, a campus,
    a mobile carrier's NAT). The IP layer catches what the user layer cannot:
    one machine inventing many user ids.
    """

    def __init__(self, redis: redis_lib.Redis, user_limit: int = 5, ip_limit: int = 100, window_s: float = 10) -> None:
        self.user_limiter = RedisRateLimiter(redis, user_limit, window_s)
        self.ip_limiter = RedisRateLimiter(redis, ip_limit, window_s)

    def check(self, user_id: str, client_ip: str) -> LimitVerdict:
        """Count this request against the user, then the IP; say which layer (if any) blocks it."""
        raise NotImplementedError("LayeredLimiter.check in labs/rate_limit.py is not written yet — see notebooks/11_rate_limits.ipynb")
