# Your workspace. Generated from solutions/token_bucket.py by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/token_bucket.py and regenerate, never this file.
"""A token bucket: the classic in-process rate limiter.

The bucket holds up to `capacity` tokens and gains `refill_rate` tokens per
second. Each request spends tokens; when the bucket is empty the request is
rejected. That gives two knobs with clear meanings: `capacity` is the burst a
client may fire at once, `refill_rate` the rate it may sustain.

Why refill lazily instead of with a background timer? Because the bucket only
needs to know how full it is when someone asks. Computing "elapsed time x rate"
on each call is exact, costs nothing between requests and needs no thread.

Why inject the clock? So tests and the notebook can move time by hand instead
of sleeping, and so the bucket never mixes wall-clock jumps (NTP, DST) into its
arithmetic: the default is time.monotonic.

This bucket lives in one process. To limit across many gateway processes the
count must live in a shared store: see solutions/rate_limit.py.
"""

import threading
import time
from typing import Callable

NOTEBOOK = "notebooks/10_token_bucket.ipynb"

# Float sums drift: ten refills of 0.1 add up to 0.9999999999999999, not 1.0.
# Treat "short by less than this" as enough, so such a bucket is not off by one.
_EPSILON = 1e-9


class TokenBucket:
    """Allow bursts of up to `capacity`, and `refill_rate` requests per second after that.

    Thread-safe: one lock guards the refill-then-spend step, because two
    threads reading the same token count could both spend the last token.
    """

    def __init__(
        self,
        capacity: float,
        refill_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity!r}")
        if refill_rate < 0:
            raise ValueError(f"refill_rate must be >= 0, got {refill_rate!r}")
        self.capacity = float(capacity)
        self.refill_rate = float(refill_rate)
        self._clock = clock
        self._tokens = self.capacity  # a new client may burst right away
        self._last_refill = clock()
        self._lock = threading.Lock()

    def allow_request(self, tokens: float = 1) -> bool:
        """Spend `tokens` if the bucket has them; otherwise spend nothing and return False.

        A rejected request must not spend anything: a client hammering an empty
        bucket would otherwise push its own recovery further away.
        """
        if tokens <= 0:
            raise ValueError(f"tokens must be > 0, got {tokens!r}")
        raise NotImplementedError("TokenBucket.allow_request in labs/token_bucket.py is not written yet — see notebooks/10_token_bucket.ipynb")
