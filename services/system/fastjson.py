"""JSON on the buy path: orjson or the standard library, chosen once at import by SECKILL_FAST_JSON.

The gateway turns JSON into objects and back several times per buy: the
request body, the reply, the order message for the queue (and, for a late
confirm, the pending marker in Redis). ``dumps`` and ``loads`` here are those
calls; callers stay plain and the environment picks the engine:

* ``SECKILL_FAST_JSON=1`` (the default): orjson (Rust) writes and reads.
* ``SECKILL_FAST_JSON=0``: the standard library, in the compact form
  Starlette's JSONResponse writes.

On by default because it measured faster: ``seckill bench --speedups`` on the
local-stock tier, 2 shared cores, three runs of 3-5 rounds each, gave on/off
×1.06, ×1.34, ×1.39 in items/s (medians) and 1-15 % less gateway CPU per
item; in-process, the JSON work of one buy (read the body, write the order
message and the reply) takes about 7 µs with orjson against 28 µs.

Both sides give the same result, which is what makes the switch a fair A/B
(``seckill bench --speedups``):

* ``dumps(obj) -> bytes``: compact UTF-8 JSON (``{"a":1,"b":"é"}``), byte for
  byte the same on both sides for what the gateway writes (dicts with str keys,
  str, int, bool, None). Floats are written in their shortest round-trip form
  by both, but the spelling may differ (``1e+16`` / ``1e16``): the same number.
  Raises TypeError for what JSON cannot hold (orjson.JSONEncodeError is one),
  and ValueError for NaN/Infinity on the standard side (orjson writes null).
* ``loads(data)``: ``data`` is bytes or str; raises ValueError (json's and
  orjson's JSONDecodeError, UnicodeDecodeError are all ValueErrors) for what
  is not JSON, RecursionError for nesting deeper than about 1,000 levels.
  orjson reads only strict UTF-8 RFC 8259 JSON; what it refuses (a UTF-16 body,
  a byte-order mark, NaN, a lone-surrogate escape like "\\ud800") is read again
  by the standard library, so a body is accepted or refused exactly as before
  and a bad one still gets the same error message. One difference is left:
  an integer beyond 64 bits comes back from orjson as a float. The buy body's
  only field is a string, and every id the gateway writes fits 64 bits.
"""

from __future__ import annotations

import json
import os
from typing import Any

from seckill.config import on_unless_off

ENV = "SECKILL_FAST_JSON"  # 1/on (default): orjson; 0/off: the standard library (the bench's A/B switch)


def enabled(environ=os.environ) -> bool:
    """orjson unless the environment says "0", "false", "off" or "no" (like SECKILL_BUY_FAST_LANE)."""
    return on_unless_off(ENV, environ)


def _std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _std_loads(data: bytes | str) -> Any:
    return json.loads(data)


if enabled():
    import orjson

    ENGINE = f"orjson {orjson.__version__}"

    def dumps(obj: Any) -> bytes:
        """``obj`` as compact UTF-8 JSON bytes (orjson)."""
        return orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        """The value ``data`` holds (orjson; what it refuses, the standard library decides)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data)  # the same verdict and message as before, or a value orjson is too strict for
else:
    ENGINE = "json (standard library)"
    dumps = _std_dumps
    loads = _std_loads
